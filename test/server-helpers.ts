import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll } from 'vitest';
import { open } from '../src/open.js';
import { dropPostgresStore } from '../src/postgres/index.js';
import { createServer, HttpStore, type CreateServerOptions, type RevkitServer } from '../src/server/index.js';

export const ADMIN = 'admin-token-0123456789abcdef';

export interface StoreTarget {
  name: string;
  /** A fresh, isolated store URL. */
  url(): string;
}

const tmp = mkdtempSync(join(tmpdir(), 'revkit-server-'));
/** Like libpq, default to the OS user when the URL names none. */
const PG_URL = process.env.REVKIT_PG_URL ?? `postgres://${encodeURIComponent(process.env.PGUSER || process.env.USER || userInfo().username)}@127.0.0.1:5432/test`;
const id = () => randomBytes(5).toString('hex');

/** The PostgreSQL stores this test file made (their table prefixes), dropped after its last test. */
const pgPrefixes = new Set<string>();

async function dropPgStores(): Promise<void> {
  if (pgPrefixes.size === 0) return;
  // A store still open somewhere holds no lock between statements; a stuck one fails the drop instead of hanging it.
  const client = new pg.Client({ connectionString: PG_URL, options: '-c lock_timeout=10000' });
  client.on('error', () => undefined);
  await client.connect();
  try {
    for (const prefix of pgPrefixes) await dropPostgresStore(client, { prefix });
    pgPrefixes.clear();
  } finally {
    await client.end();
  }
}

/**
 * memory always; sqlite and postgres once their backends exist (they throw "not built yet" until then).
 * Call it at the top of a test file: the PostgreSQL stores its URLs name are dropped after the file's last test.
 */
export async function storeTargets(): Promise<StoreTarget[]> {
  afterAll(dropPgStores, 60_000);
  const targets: StoreTarget[] = [{ name: 'memory', url: () => 'memory:' }];
  const candidates: StoreTarget[] = [
    { name: 'sqlite', url: () => `sqlite:${join(tmp, `${id()}.db`)}` },
    {
      name: 'postgres',
      url: () => {
        const prefix = `srv_${id()}_`;
        pgPrefixes.add(prefix);
        return `${PG_URL}?prefix=${prefix}`;
      },
    },
  ];
  for (const c of candidates) {
    try {
      const s = await open(c.url());
      await s.get('probe');
      await s.close();
      targets.push(c);
    } catch (err) {
      const msg = String((err as Error).message);
      if (!/not built yet|not installed/.test(msg)) console.warn(`[server tests] ${c.name} unavailable: ${msg}`);
    }
  }
  return targets;
}

export async function startServer(options: Partial<CreateServerOptions> & { store: CreateServerOptions['store'] }): Promise<{ server: RevkitServer; url: string }> {
  const server = await createServer({ adminToken: ADMIN, ...options });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  return { server, url };
}

/** An HttpStore on its own server; closing the store closes the server. */
export async function servedStore(storeUrl: string, options: Partial<CreateServerOptions> = {}): Promise<HttpStore> {
  const { server, url } = await startServer({ store: storeUrl, ...options });
  const store = await HttpStore.fromUrl(`${url}?token=${ADMIN}`);
  const close = store.close.bind(store);
  store.close = async () => {
    await close();
    await server.close();
  };
  return store;
}

export interface Res {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

export async function req(base: string, method: string, path: string, init: { headers?: Record<string, string>; body?: unknown; token?: string | null; raw?: string } = {}): Promise<Res> {
  const headers: Record<string, string> = { ...init.headers };
  const token = init.token === undefined ? ADMIN : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined = init.raw;
  if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Checks an RFC 9457 body; returns a reason when it is not one. */
export function problemIssue(status: number, contentType: string | null, text: string): string | null {
  if (!contentType?.startsWith('application/problem+json')) return `content-type ${contentType}`;
  let p: any;
  try {
    p = JSON.parse(text);
  } catch {
    return 'body is not JSON';
  }
  if (typeof p !== 'object' || p === null) return 'body is not an object';
  for (const f of ['type', 'title', 'detail', 'code']) if (typeof p[f] !== 'string' || p[f] === '') return `missing ${f}`;
  if (p.status !== status) return `status ${p.status} ≠ ${status}`;
  if (!/^ERR_[A-Z_]+$/.test(p.code)) return `code ${p.code}`;
  if (/\n\s+at /.test(text)) return 'stack trace in body';
  return null;
}
