import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ForbiddenError, UnauthorizedError } from '../src/core/index.js';
import { HttpStore, parseTokens, type Access, type RevkitServer } from '../src/server/index.js';
import { problemIssue, startServer } from './server-helpers.js';

const tokens = parseTokens([
  { name: 'reader', token: 'reader-token-aaaaaaaaaaaa', scopes: [{ prefix: 'app/', access: 'read' }] },
  { name: 'writer', token: 'writer-token-bbbbbbbbbbbb', scopes: [{ prefix: 'app/', access: 'write' }] },
  { name: 'admin-app', token: 'appadmin-token-cccccccccc', scopes: [{ prefix: 'app/', access: 'admin' }] },
  { name: 'mixed', token: 'mixed-token-dddddddddddd', scopes: [{ prefix: 'app/public/', access: 'read' }, { prefix: 'other/', access: 'write' }] },
  { name: 'root-reader', token: 'rootread-token-eeeeeeeeee', scopes: [{ prefix: '', access: 'read' }] },
]);
const ROOT = 'root-admin-token-ffffffffff';

type Who = { name: string; token: string | undefined; scopes: Array<{ prefix: string; access: Access }> };
const principals: Who[] = [
  { name: 'no token', token: undefined, scopes: [] },
  { name: 'bad token', token: 'not-a-valid-token-0000000', scopes: [] },
  ...tokens.map((t) => ({ name: t.name as string, token: t.token, scopes: t.scopes })),
  { name: 'root admin', token: ROOT, scopes: [{ prefix: '', access: 'admin' }] },
];

interface Route {
  name: string;
  method: string;
  path: string;
  body?: unknown;
  contentType?: string;
  /** null: public. Otherwise the access needed and on which key or prefix. */
  need: null | { access: Access | 'any' | 'admin-any'; on: string };
}

const routes: Route[] = [
  { name: 'GET key', method: 'GET', path: '/v1/kv/app/x', need: { access: 'read', on: 'app/x' } },
  { name: 'HEAD key', method: 'HEAD', path: '/v1/kv/app/x', need: { access: 'read', on: 'app/x' } },
  { name: 'GET public key', method: 'GET', path: '/v1/kv/app/public/y', need: { access: 'read', on: 'app/public/y' } },
  { name: 'GET other key', method: 'GET', path: '/v1/kv/other/z', need: { access: 'read', on: 'other/z' } },
  { name: 'PUT key', method: 'PUT', path: '/v1/kv/app/x', body: 1, need: { access: 'write', on: 'app/x' } },
  { name: 'PUT other key', method: 'PUT', path: '/v1/kv/other/z', body: 1, need: { access: 'write', on: 'other/z' } },
  { name: 'DELETE key', method: 'DELETE', path: '/v1/kv/app/gone', need: { access: 'write', on: 'app/gone' } },
  { name: 'PATCH key', method: 'PATCH', path: '/v1/kv/app/p', body: { a: 1 }, contentType: 'application/merge-patch+json', need: { access: 'write', on: 'app/p' } },
  { name: 'history', method: 'GET', path: '/v1/kv/app/x/history', need: { access: 'read', on: 'app/x' } },
  { name: 'list app/', method: 'GET', path: '/v1/kv?prefix=app/', need: { access: 'read', on: 'app/' } },
  { name: 'list all', method: 'GET', path: '/v1/kv', need: { access: 'read', on: '' } },
  { name: 'txn set app/', method: 'POST', path: '/v1/txn', body: { ops: [{ op: 'set', key: 'app/t', value: 1 }] }, need: { access: 'write', on: 'app/t' } },
  { name: 'txn check other/', method: 'POST', path: '/v1/txn', body: { ops: [{ op: 'check', key: 'other/c', revision: null }] }, need: { access: 'read', on: 'other/c' } },
  { name: 'watch app/', method: 'GET', path: '/v1/watch?prefix=app/', need: { access: 'read', on: 'app/' } },
  { name: 'watch all', method: 'GET', path: '/v1/watch', need: { access: 'read', on: '' } },
  { name: 'watch key', method: 'GET', path: '/v1/watch?key=app/x', need: { access: 'read', on: 'app/x' } },
  { name: 'info', method: 'GET', path: '/v1/info', need: { access: 'any', on: '' } },
  { name: 'metrics', method: 'GET', path: '/metrics', need: { access: 'admin-any', on: '' } },
  { name: 'healthz', method: 'GET', path: '/healthz', need: null },
  { name: 'readyz', method: 'GET', path: '/readyz', need: null },
  { name: 'openapi', method: 'GET', path: '/openapi.json', need: null },
];

const RANK: Record<Access, number> = { read: 1, write: 2, admin: 3 };

function expected(who: Who, route: Route): 'ok' | 401 | 403 {
  if (route.need === null) return 'ok';
  if (who.scopes.length === 0) return 401;
  const { access, on } = route.need;
  if (access === 'any') return 'ok';
  if (access === 'admin-any') return who.scopes.some((s) => s.access === 'admin') ? 'ok' : 403;
  return who.scopes.some((s) => RANK[s.access] >= RANK[access] && on.startsWith(s.prefix)) ? 'ok' : 403;
}

describe('auth matrix: every route × every scope', () => {
  let server: RevkitServer;
  let base: string;
  beforeAll(async () => {
    ({ server, url: base } = await startServer({ store: 'memory:', tokens, adminToken: ROOT }));
  });
  afterAll(() => server.close());

  for (const route of routes) {
    for (const who of principals) {
      const want = expected(who, route);
      it(`${route.name} as ${who.name} → ${want}`, async () => {
        const headers: Record<string, string> = {};
        if (who.token) headers.authorization = `Bearer ${who.token}`;
        if (route.body !== undefined) headers['content-type'] = route.contentType ?? 'application/json';
        const controller = new AbortController();
        const res = await fetch(base + route.path, { method: route.method, headers, signal: controller.signal, ...(route.body !== undefined ? { body: JSON.stringify(route.body) } : {}) });
        const text = route.path.startsWith('/v1/watch') && res.status === 200 ? '' : await res.text();
        controller.abort();
        if (want === 'ok') {
          expect([401, 403], `${res.status} ${text}`).not.toContain(res.status);
          expect(res.status).toBeLessThan(500);
        } else {
          expect(res.status, text).toBe(want);
          if (route.method !== 'HEAD') {
            expect(problemIssue(want, res.headers.get('content-type'), text)).toBeNull();
            expect(JSON.parse(text).code).toBe(want === 401 ? 'ERR_UNAUTHORIZED' : 'ERR_FORBIDDEN');
          }
          if (want === 401) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
        }
      });
    }
  }

  it('malformed Authorization headers are 401', async () => {
    for (const h of ['Basic abc', 'Bearer', 'Bearer  ', `Bearer ${ROOT} extra`, ROOT]) {
      const res = await fetch(`${base}/v1/kv/app/x`, { headers: { authorization: h } });
      expect(res.status, h).toBe(401);
    }
    expect((await fetch(`${base}/v1/kv/app/x`, { headers: { authorization: `bearer ${ROOT}` } })).status).not.toBe(401);
  });

  it('HttpStore: 401 is UnauthorizedError and 403 is ForbiddenError naming the scope needed, each a one-line message', async () => {
    const stranger = new HttpStore({ url: base, token: 'not-a-valid-token-0000000' });
    const unauthorized = await stranger.get('app/x').catch((e: unknown) => e);
    expect(UnauthorizedError.is(unauthorized), String(unauthorized)).toBe(true);
    expect((unauthorized as Error).message).toMatch(/^not authenticated by the revkit server .*: the bearer token is not valid$/);
    const anonymous = new HttpStore({ url: base });
    expect(UnauthorizedError.is(await anonymous.list().catch((e: unknown) => e))).toBe(true);

    const reader = new HttpStore({ url: base, token: 'reader-token-aaaaaaaaaaaa' });
    const forbidden = await reader.put('app/x', 1).catch((e: unknown) => e);
    expect(ForbiddenError.is(forbidden), String(forbidden)).toBe(true);
    expect((forbidden as ForbiddenError).scope).toBe('write on key "app/x"');
    expect((forbidden as Error).message).toMatch(/^forbidden by the revkit server .*: the token "reader" has no write access to key "app\/x"$/);
    expect(ForbiddenError.is(await reader.update('app/y', () => 1).catch((e: unknown) => e))).toBe(true);
    for (const e of [unauthorized, forbidden]) expect((e as Error).message).not.toContain('\n');
    await Promise.all([stranger.close(), anonymous.close(), reader.close()]);
  });

  it('a tokens file is validated', () => {
    expect(() => parseTokens({})).toThrow(/array/);
    expect(() => parseTokens([{ token: 'short', scopes: [{ prefix: '', access: 'read' }] }])).toThrow(/at least 16/);
    expect(() => parseTokens([{ token: 'x'.repeat(20), scopes: [{ prefix: '', access: 'root' }] }])).toThrow(/access/);
    expect(() => parseTokens([{ token: 'x'.repeat(20), scopes: [] }])).toThrow(/scopes/);
  });
});
