import * as crypto from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { HttpProblem } from './problem.js';

/**
 * Bearer tokens with per-prefix scopes.
 *
 * Tokens file (`--tokens FILE`, `REVKIT_TOKENS_FILE`): a JSON array
 *
 *     [
 *       { "name": "ops",    "token": "…", "scopes": [{ "prefix": "",     "access": "admin" }] },
 *       { "name": "app",    "token": "…", "scopes": [{ "prefix": "app/", "access": "write" }] },
 *       { "name": "viewer", "token": "…", "scopes": [{ "prefix": "app/public/", "access": "read" }] }
 *     ]
 *
 * `access` is `read`, `write` or `admin`; admin implies write implies read.
 * A scope covers every key that starts with its `prefix` ("" covers all).
 * Listing and watching need the requested prefix to lie inside one scope.
 * `admin` (on any prefix) also opens `/metrics`. Tokens must be at least 16
 * characters. Presented tokens are compared in constant time (SHA-256 of
 * both sides, `timingSafeEqual` against every configured token).
 */
export type Access = 'read' | 'write' | 'admin';

export interface Scope {
  prefix: string;
  access: Access;
}

export interface TokenSpec {
  token: string;
  name?: string;
  scopes: Scope[];
}

export interface Principal {
  name: string;
  scopes: Scope[];
}

const RANK: Record<Access, number> = { read: 1, write: 2, admin: 3 };
export const MIN_TOKEN_LENGTH = 16;

export function parseTokens(json: unknown, source = 'tokens'): TokenSpec[] {
  if (!Array.isArray(json)) throw new Error(`${source}: expected a JSON array of { token, name?, scopes: [{ prefix, access }] }`);
  const seen = new Set<string>();
  return json.map((t, i) => {
    const where = `${source}[${i}]`;
    if (typeof t !== 'object' || t === null) throw new Error(`${where}: expected an object`);
    const { token, name, scopes } = t as Record<string, unknown>;
    if (typeof token !== 'string' || token.length < MIN_TOKEN_LENGTH || /[\s\x00-\x1f\x7f]/.test(token)) {
      throw new Error(`${where}.token: a string of at least ${MIN_TOKEN_LENGTH} printable characters without spaces`);
    }
    if (seen.has(token)) throw new Error(`${where}.token: the same token appears twice`);
    seen.add(token);
    if (name !== undefined && typeof name !== 'string') throw new Error(`${where}.name: a string`);
    if (!Array.isArray(scopes) || scopes.length === 0) throw new Error(`${where}.scopes: a non-empty array of { prefix, access }`);
    const parsed = scopes.map((s, j): Scope => {
      const { prefix, access } = (s ?? {}) as Record<string, unknown>;
      if (typeof prefix !== 'string') throw new Error(`${where}.scopes[${j}].prefix: a string ("" for every key)`);
      if (access !== 'read' && access !== 'write' && access !== 'admin') throw new Error(`${where}.scopes[${j}].access: "read", "write" or "admin"`);
      return { prefix, access };
    });
    return { token, name: name ?? `token-${i}`, scopes: parsed };
  });
}

export async function loadTokensFile(path: string): Promise<TokenSpec[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read tokens file ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`tokens file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return parseTokens(json, path);
}

// Every request hashes the token it presents; crypto.hash (Node ≥ 20.12) does so without a Hash object per call.
const digest: (token: string) => Buffer = typeof crypto.hash === 'function'
  ? (token) => crypto.hash('sha256', token, 'buffer')
  : (token) => crypto.createHash('sha256').update(token, 'utf8').digest();

export class Authenticator {
  private readonly entries: Array<{ hash: Buffer; principal: Principal }>;

  /** `null`: no authentication at all (every request is an admin). */
  constructor(tokens: TokenSpec[] | null) {
    this.entries = (tokens ?? []).map((t) => ({ hash: digest(t.token), principal: { name: t.name ?? 'token', scopes: t.scopes } }));
    this.enabled = tokens !== null;
  }

  readonly enabled: boolean;

  static readonly anonymousAdmin: Principal = { name: 'anonymous', scopes: [{ prefix: '', access: 'admin' }] };

  private readonly lastOn = new WeakMap<object, { header: string; principal: Principal }>();

  /**
   * authenticate(), remembered per connection: a keep-alive client sends the same
   * header on every request, and hashing it each time was about a quarter of the
   * time the server's own code took per conditional PUT (profiled under load).
   * The header is compared with the one this connection last presented in time
   * that depends on the lengths only, so on a connection shared by several clients
   * (behind a proxy) one learns at most whether its header is as long as another's;
   * a different header is authenticated afresh, and only a valid one is remembered.
   * Tokens never change while the server runs, so a remembered principal cannot go stale.
   */
  authenticateOn(connection: object, header: string | undefined): Principal {
    if (!this.enabled || header === undefined) return this.authenticate(header);
    const last = this.lastOn.get(connection);
    if (last !== undefined && sameText(last.header, header)) return last.principal;
    const principal = this.authenticate(header);
    this.lastOn.set(connection, { header, principal });
    return principal;
  }

  /** The principal of an Authorization header; throws 401 without one or with a bad one. */
  authenticate(header: string | undefined): Principal {
    if (!this.enabled) return Authenticator.anonymousAdmin;
    const challenge = 'Bearer realm="revkit"';
    if (header === undefined || header === '') {
      throw new HttpProblem(401, 'this server needs a bearer token: Authorization: Bearer <token>', {}, { 'www-authenticate': challenge });
    }
    const m = /^Bearer[ \t]+([\x21-\x7e]+)[ \t]*$/i.exec(header);
    if (!m) throw new HttpProblem(401, 'the Authorization header must be "Bearer <token>"', {}, { 'www-authenticate': `${challenge}, error="invalid_request"` });
    const presented = digest(m[1] as string);
    let found: Principal | undefined;
    // Compare against every token, without stopping early.
    for (const e of this.entries) if (crypto.timingSafeEqual(e.hash, presented) && !found) found = e.principal;
    if (!found) throw new HttpProblem(401, 'the bearer token is not valid', {}, { 'www-authenticate': `${challenge}, error="invalid_token"` });
    return found;
  }
}

/** Equal strings, compared in time that depends on their length only. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** True when one scope of `principal` grants `need` on every key starting with `keyOrPrefix`. */
export function allows(principal: Principal, need: Access, keyOrPrefix: string): boolean {
  for (const s of principal.scopes) if (RANK[s.access] >= RANK[need] && keyOrPrefix.startsWith(s.prefix)) return true;
  return false;
}

export function hasAnyAdmin(principal: Principal): boolean {
  return principal.scopes.some((s) => s.access === 'admin');
}

export function requireAccess(principal: Principal, need: Access, keyOrPrefix: string, what = 'key'): void {
  if (!allows(principal, need, keyOrPrefix)) {
    const scope = `${need} on ${what} ${JSON.stringify(keyOrPrefix)}`;
    throw new HttpProblem(403, `the token "${principal.name}" has no ${need} access to ${what} ${JSON.stringify(keyOrPrefix)}`, { access: need, scope });
  }
}
