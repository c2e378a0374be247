import * as crypto from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '../core/errors.js';
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
 * visible ASCII characters (what a `Bearer` header can carry). Presented tokens are compared in constant time (SHA-256 of
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

/** What a token must be, for messages. */
export const TOKEN_RULE = `at least ${MIN_TOKEN_LENGTH} visible ASCII characters (! to ~: no spaces, control or non-ASCII characters)`;

/**
 * Why `token` could never be presented as `Authorization: Bearer <token>`
 * (authenticate() takes visible ASCII only), or undefined. Never quotes the
 * token: the message goes to logs.
 */
export function unusableToken(token: string): string | undefined {
  if (token === '') return 'is empty';
  if (token.trim() !== token) return 'has whitespace around it (a trailing newline?)';
  if (/[\x00-\x1f\x7f]/.test(token)) return 'contains a control character (a tab, a newline…)';
  if (/\s/.test(token)) return 'contains whitespace';
  if (/[^\x21-\x7e]/.test(token)) return 'contains a character outside visible ASCII';
  return undefined;
}

/** unusableToken(), and the minimum length that `revkit serve` and tokens files require. */
export function tokenProblem(token: string): string | undefined {
  return unusableToken(token) ?? (token.length < MIN_TOKEN_LENGTH ? `has ${token.length} characters` : undefined);
}

/** Throws InvalidArgumentError (ERR_INVALID_ARGUMENT) naming the entry and what is wrong, never the token. */
export function parseTokens(json: unknown, source = 'tokens'): TokenSpec[] {
  const invalid = (message: string) => new InvalidArgumentError(message);
  if (!Array.isArray(json)) throw invalid(`${source}: expected a JSON array of { token, name?, scopes: [{ prefix, access }] }`);
  const seen = new Set<string>();
  return json.map((t, i) => {
    const where = `${source}[${i}]`;
    if (typeof t !== 'object' || t === null) throw invalid(`${where}: expected an object`);
    const { token, name, scopes } = t as Record<string, unknown>;
    if (typeof token !== 'string') throw invalid(`${where}.token: a string of ${TOKEN_RULE}`);
    const problem = tokenProblem(token);
    if (problem !== undefined) throw invalid(`${where}.token ${problem}: a token is ${TOKEN_RULE}`);
    if (seen.has(token)) throw invalid(`${where}.token: the same token appears twice`);
    seen.add(token);
    if (name !== undefined && typeof name !== 'string') throw invalid(`${where}.name: a string`);
    if (!Array.isArray(scopes) || scopes.length === 0) throw invalid(`${where}.scopes: a non-empty array of { prefix, access }`);
    const parsed = scopes.map((s, j): Scope => {
      const { prefix, access } = (s ?? {}) as Record<string, unknown>;
      if (typeof prefix !== 'string') throw invalid(`${where}.scopes[${j}].prefix: a string ("" for every key)`);
      if (access !== 'read' && access !== 'write' && access !== 'admin') throw invalid(`${where}.scopes[${j}].access: "read", "write" or "admin"`);
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
    throw new InvalidArgumentError(`tokens file ${path} is not valid JSON: ${(err as Error).message}`);
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
    // A token no request can present would be accepted here and then never match: refuse it.
    // One token twice (an admin token that is also a tokens-file entry) would get the first entry's scopes only.
    const seen = new Map<string, string>();
    for (const t of tokens ?? []) {
      const problem = typeof t.token === 'string' ? unusableToken(t.token) : 'is not a string';
      if (problem !== undefined) throw new InvalidArgumentError(`the token ${JSON.stringify(t.name ?? 'token')} ${problem}: a bearer token is visible ASCII (! to ~)`);
      const name = t.name ?? 'token';
      const other = seen.get(t.token);
      if (other !== undefined) {
        throw new InvalidArgumentError(`the tokens ${JSON.stringify(other)} and ${JSON.stringify(name)} are the same token: every token must be different (a request presenting it would get the scopes of one of them only)`);
      }
      seen.set(t.token, name);
    }
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
