import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RevkitServer } from '../src/server/index.js';
import { ADMIN, problemIssue, req, startServer, storeTargets, type Res } from './server-helpers.js';

function expectProblem(r: Res, status: number, code: string): void {
  expect(r.status, r.text).toBe(status);
  expect(problemIssue(status, r.headers.get('content-type'), r.text)).toBeNull();
  expect(r.json.code).toBe(code);
}

const enc = encodeURIComponent;

for (const target of await storeTargets()) {
  describe(`server over HTTP → ${target.name}`, () => {
    let server: RevkitServer;
    let base: string;
    let strict: { server: RevkitServer; url: string };
    beforeAll(async () => {
      ({ server, url: base } = await startServer({
        store: target.url(),
        limits: { maxValueBytes: 64 * 1024, maxBodyBytes: 128 * 1024, maxPageSize: 5 },
        validate: (key, value) => (key.startsWith('validated/') && (typeof value !== 'object' || value === null || (value as { n?: unknown }).n === -1) ? 'n must not be -1' : undefined),
      }));
      strict = await startServer({ store: target.url(), requirePreconditions: true });
    });
    afterAll(async () => {
      await server.close();
      await strict.server.close();
    });

    describe('keys', () => {
      it('PUT creates (201) then updates (200); GET returns the value itself with a strong ETag', async () => {
        const c = await req(base, 'PUT', '/v1/kv/k1', { body: { a: 1 } });
        expect(c.status).toBe(201);
        expect(c.headers.get('etag')).toBe(`"${c.json.revision}"`);
        expect(c.json).toMatchObject({ key: 'k1', createdRevision: c.json.revision });
        const u = await req(base, 'PUT', '/v1/kv/k1', { body: [1, 'two'] });
        expect(u.status).toBe(200);
        expect(u.json.revision).toBeGreaterThan(c.json.revision);
        const g = await req(base, 'GET', '/v1/kv/k1');
        expect(g.status).toBe(200);
        expect(g.headers.get('content-type')).toMatch(/^application\/json/);
        expect(g.json).toEqual([1, 'two']);
        expect(g.headers.get('etag')).toBe(`"${u.json.revision}"`);
        expect(g.headers.get('revkit-created-revision')).toBe(String(c.json.revision));
        const h = await fetch(`${base}/v1/kv/k1`, { method: 'HEAD', headers: { authorization: `Bearer ${ADMIN}` } });
        expect(h.status).toBe(200);
        expect(h.headers.get('etag')).toBe(`"${u.json.revision}"`);
      });

      it('scalars and null round-trip as bodies', async () => {
        for (const [i, v] of [0, 'text', null, false, {}, []].entries()) {
          expect((await req(base, 'PUT', `/v1/kv/scalar/${i}`, { body: v, raw: JSON.stringify(v), headers: { 'content-type': 'application/json' } })).status).toBe(201);
          const g = await req(base, 'GET', `/v1/kv/scalar/${i}`);
          expect(g.text).toBe(JSON.stringify(v));
        }
      });

      it('DELETE writes a tombstone: GET is 404 naming its revision; a second DELETE is 404', async () => {
        const p = await req(base, 'PUT', '/v1/kv/gone', { body: 1 });
        const d = await req(base, 'DELETE', '/v1/kv/gone');
        expect(d.status).toBe(200);
        expect(d.json).toMatchObject({ key: 'gone', deleted: true });
        expect(d.json.revision).toBeGreaterThan(p.json.revision);
        expect(d.headers.get('etag')).toBe(`"${d.json.revision}"`);
        const g = await req(base, 'GET', '/v1/kv/gone');
        expectProblem(g, 404, 'ERR_NOT_FOUND');
        expect(g.json).toMatchObject({ deleted: true, revision: d.json.revision, currentEtag: `"${d.json.revision}"` });
        expectProblem(await req(base, 'DELETE', '/v1/kv/gone'), 404, 'ERR_NOT_FOUND');
        expectProblem(await req(base, 'GET', '/v1/kv/never'), 404, 'ERR_NOT_FOUND');
      });

      it('keys are percent-encoded, `/` levels allowed either way; unicode and __proto__ keys work', async () => {
        const keys = ['a/b/c', 'ключ/значение', 'emoji/😀', '__proto__', 'constructor', 'sp ace+plus', 'pct/%2F/lit', '?q#h'];
        for (const [i, k] of keys.entries()) {
          const r = await req(base, 'PUT', `/v1/kv/${enc(k)}`, { body: { i } });
          expect(r.status, `${k}: ${r.text}`).toBe(201);
          expect(r.json.key).toBe(k);
        }
        for (const [i, k] of keys.entries()) expect((await req(base, 'GET', `/v1/kv/${enc(k)}`)).json).toEqual({ i });
        // literal slashes name the same key as %2F
        expect((await req(base, 'GET', '/v1/kv/a/b/c')).json).toEqual({ i: 0 });
        expect(({} as Record<string, unknown>).i).toBeUndefined();
      });

      it('history: newest first with deletions; a key whose last level is "history" is reached with %2F', async () => {
        await req(base, 'PUT', '/v1/kv/h/x', { body: 1 });
        await req(base, 'PUT', '/v1/kv/h/x', { body: 2 });
        await req(base, 'DELETE', '/v1/kv/h/x');
        const h = await req(base, 'GET', '/v1/kv/h/x/history');
        expect(h.status).toBe(200);
        expect(h.json.records.map((r: { value?: unknown; deleted?: boolean }) => (r.deleted ? 'deleted' : r.value))).toEqual(['deleted', 2, 1]);
        expect((await req(base, 'GET', '/v1/kv/h/x/history?limit=1')).json.records).toHaveLength(1);
        await req(base, 'PUT', '/v1/kv/h%2Fhistory', { body: 'literal' });
        expect((await req(base, 'GET', '/v1/kv/h%2Fhistory')).json).toBe('literal');
        expect((await req(base, 'GET', '/v1/kv/h/history')).json).toMatchObject({ key: 'h' });
      });

      it('list: prefix, key order, pages clamped to the page limit, cursor', async () => {
        for (const k of ['l/c', 'l/a', 'l/b', 'l/d', 'l/e', 'l/f', 'l/g', 'm/a']) await req(base, 'PUT', `/v1/kv/${k}`, { body: k });
        const p1 = await req(base, 'GET', '/v1/kv?prefix=l%2F&limit=1000');
        expect(p1.json.entries.map((e: { key: string }) => e.key)).toEqual(['l/a', 'l/b', 'l/c', 'l/d', 'l/e']);
        expect(p1.json.entries[0]).toMatchObject({ key: 'l/a', value: 'l/a' });
        expect(p1.json.cursor).toBe('l/e');
        const p2 = await req(base, 'GET', `/v1/kv?prefix=l/&after=${enc(p1.json.cursor)}`);
        expect(p2.json.entries.map((e: { key: string }) => e.key)).toEqual(['l/f', 'l/g']);
        expect(p2.json.cursor).toBeUndefined();
        expectProblem(await req(base, 'GET', '/v1/kv?limit=0'), 400, 'ERR_BAD_REQUEST');
        expectProblem(await req(base, 'GET', '/v1/kv?limit=abc'), 400, 'ERR_BAD_REQUEST');
        expectProblem(await req(base, 'GET', '/v1/kv?prefix=a&prefix=b'), 400, 'ERR_BAD_REQUEST');
      });

      it('ttlMs: the value expires', async () => {
        const r = await req(base, 'PUT', '/v1/kv/ttl?ttlMs=200', { body: 1 });
        expect(r.status).toBe(201);
        expect(r.json.expiresAt).toBeGreaterThan(Date.now());
        await new Promise((res) => setTimeout(res, 400));
        expect((await req(base, 'GET', '/v1/kv/ttl')).status).toBe(404);
        expectProblem(await req(base, 'PUT', '/v1/kv/ttl?ttlMs=-1', { body: 1 }), 400, 'ERR_BAD_REQUEST');
      });
    });

    describe('query parameters a route does not take (review round 6)', () => {
      it('are 400 and write nothing: a misspelt ttlMs must not write without a TTL', async () => {
        const cases: Array<[string, string, object?]> = [
          ['PUT', '/v1/kv/q/1?ttlms=1000', { body: 1 }],
          ['PUT', '/v1/kv/q/1?bogus=1', { body: 1 }],
          ['PUT', '/v1/kv/q/1?key=other', { body: 1 }],
          ['PATCH', '/v1/kv/q/1?ttlMs=5', { body: { a: 1 }, headers: { 'content-type': 'application/merge-patch+json' } }],
          ['DELETE', '/v1/kv/q/1?ttlMs=5'],
          ['GET', '/v1/kv/q/1?limit=5'],
          ['GET', '/v1/kv?prefx=q/'],
        ];
        for (const [method, path, init] of cases) {
          const r = await req(base, method, path, init as never);
          expectProblem(r, 400, 'ERR_BAD_REQUEST');
          expect(JSON.stringify(r.json), `${method} ${path}`).toMatch(/unknown query parameter|give it once/);
        }
        expect((await req(base, 'GET', '/v1/kv/q/1')).status).toBe(404);
        expect((await req(base, 'GET', '/v1/kv/other')).status).toBe(404);
        // What the routes take still works: ttlMs on PUT, key on an empty path, limit on history.
        expect((await req(base, 'PUT', '/v1/kv/?key=q/2&ttlMs=60000', { body: 2 })).status).toBe(201);
        expect((await req(base, 'GET', '/v1/kv//history?key=q/2&limit=1')).status).toBe(200);
      });
    });

    describe('Revkit-Writer: any token the core accepts, percent-encoded', () => {
      it('a token with spaces, dots or non-ASCII is stored as given and sent back encoded; a malformed or control-character one is 400 and writes nothing', async () => {
        const ok: Array<[string, string]> = [['job.42', 'job.42'], ['a%20b', 'a b'], ['%E2%82%AC', '€'], ['plain_token-1', 'plain_token-1'], ['x'.repeat(200), 'x'.repeat(200)]];
        for (const [i, [header, writer]] of ok.entries()) {
          const put = await req(base, 'PUT', `/v1/kv/w/${i}`, { body: i, headers: { 'revkit-writer': header } });
          expect(put.status, header).toBe(201);
          const got = await req(base, 'GET', `/v1/kv/w/${i}`);
          expect(decodeURIComponent(got.headers.get('revkit-writer') as string), header).toBe(writer);
          expect(got.headers.get('revkit-writer'), header).toBe(encodeURIComponent(writer));
        }
        // Raw (not percent-encoded) tokens too: a space, a latin1-read UTF-8 byte, a repeated header joined by the server.
        for (const header of ['%ZZ', '%0A', 'a%00b', '%', 'x'.repeat(201), '%ED%A0%80', 'a b', '\u00e9', 'a, b']) {
          const r = await req(base, 'PUT', '/v1/kv/w/bad', { body: 1, headers: { 'revkit-writer': header } });
          expectProblem(r, 400, 'ERR_BAD_REQUEST');
        }
        expect((await req(base, 'GET', '/v1/kv/w/bad')).status).toBe(404);
      });
    });

    describe('conditional requests', () => {
      it('If-Match: "<rev>" updates at that revision only; a failed precondition is 412 naming the current ETag', async () => {
        const a = await req(base, 'PUT', '/v1/kv/c/1', { body: 'a' });
        const etag = a.headers.get('etag') as string;
        const b = await req(base, 'PUT', '/v1/kv/c/1', { body: 'b', headers: { 'if-match': etag } });
        expect(b.status).toBe(200);
        const stale = await req(base, 'PUT', '/v1/kv/c/1', { body: 'c', headers: { 'if-match': etag } });
        expectProblem(stale, 412, 'ERR_CONFLICT');
        expect(stale.json.currentEtag).toBe(b.headers.get('etag'));
        expect(stale.headers.get('etag')).toBe(b.headers.get('etag'));
        expect((await req(base, 'GET', '/v1/kv/c/1')).json).toBe('b');
        const missing = await req(base, 'PUT', '/v1/kv/c/never', { body: 1, headers: { 'if-match': '"1"' } });
        expectProblem(missing, 412, 'ERR_CONFLICT');
        expect(missing.json.currentEtag).toBeNull();
      });

      it('a weak validator never matches If-Match; a list matches any of its strong tags', async () => {
        const a = await req(base, 'PUT', '/v1/kv/c/weak', { body: 1 });
        const rev = a.json.revision;
        expectProblem(await req(base, 'PUT', '/v1/kv/c/weak', { body: 2, headers: { 'if-match': `W/"${rev}"` } }), 412, 'ERR_CONFLICT');
        expectProblem(await req(base, 'PUT', '/v1/kv/c/weak', { body: 2, headers: { 'if-match': `W/"${rev}", "999999"` } }), 412, 'ERR_CONFLICT');
        expect((await req(base, 'PUT', '/v1/kv/c/weak', { body: 3, headers: { 'if-match': `"999999", "${rev}"` } })).status).toBe(200);
        expect((await req(base, 'GET', '/v1/kv/c/weak')).json).toBe(3);
        expectProblem(await req(base, 'PUT', '/v1/kv/c/weak', { body: 2, headers: { 'if-match': '"not-ours"' } }), 412, 'ERR_CONFLICT');
      });

      it('If-Match: * needs a live value; If-None-Match: * needs none (create)', async () => {
        expectProblem(await req(base, 'PUT', '/v1/kv/c/star', { body: 1, headers: { 'if-match': '*' } }), 412, 'ERR_CONFLICT');
        expect((await req(base, 'PUT', '/v1/kv/c/star', { body: 1, headers: { 'if-none-match': '*' } })).status).toBe(201);
        const again = await req(base, 'PUT', '/v1/kv/c/star', { body: 2, headers: { 'if-none-match': '*' } });
        expectProblem(again, 412, 'ERR_CONFLICT');
        expect(again.json.currentEtag).toMatch(/^"\d+"$/);
        expect((await req(base, 'PUT', '/v1/kv/c/star', { body: 3, headers: { 'if-match': '*' } })).status).toBe(200);
        await req(base, 'DELETE', '/v1/kv/c/star', { headers: { 'if-match': '*' } });
        expect((await req(base, 'PUT', '/v1/kv/c/star', { body: 4, headers: { 'if-none-match': '*' } })).status).toBe(201);
      });

      it('a writer that read before a delete loses cleanly; the tombstone ETag guards the re-create', async () => {
        const a = await req(base, 'PUT', '/v1/kv/c/tomb', { body: 1 });
        const d = await req(base, 'DELETE', '/v1/kv/c/tomb');
        const late = await req(base, 'PUT', '/v1/kv/c/tomb', { body: 'resurrected', headers: { 'if-match': a.headers.get('etag') as string } });
        expectProblem(late, 412, 'ERR_CONFLICT');
        expect(late.json.currentEtag).toBe(`"${d.json.revision}"`);
        expect((await req(base, 'PUT', '/v1/kv/c/tomb', { body: 2, headers: { 'if-match': `"${d.json.revision}"` } })).status).toBe(201);
      });

      it('DELETE honours If-Match; GET honours If-None-Match (304) and If-Match', async () => {
        const a = await req(base, 'PUT', '/v1/kv/c/del', { body: 1 });
        await req(base, 'PUT', '/v1/kv/c/del', { body: 2 });
        expectProblem(await req(base, 'DELETE', '/v1/kv/c/del', { headers: { 'if-match': a.headers.get('etag') as string } }), 412, 'ERR_CONFLICT');
        const g = await req(base, 'GET', '/v1/kv/c/del');
        const nm = await fetch(`${base}/v1/kv/c/del`, { headers: { authorization: `Bearer ${ADMIN}`, 'if-none-match': `W/${g.headers.get('etag')}` } });
        expect(nm.status).toBe(304);
        expect(nm.headers.get('etag')).toBe(g.headers.get('etag'));
        expectProblem(await req(base, 'GET', '/v1/kv/c/del', { headers: { 'if-match': a.headers.get('etag') as string } }), 412, 'ERR_CONFLICT');
        expect((await req(base, 'DELETE', '/v1/kv/c/del', { headers: { 'if-match': g.headers.get('etag') as string } })).status).toBe(200);
      });

      it('malformed If-Match / If-None-Match is 400, never a silent mismatch', async () => {
        for (const bad of ['12', '"12', 'W/12', '"a" "b"', ',']) {
          expectProblem(await req(base, 'PUT', '/v1/kv/c/bad', { body: 1, headers: { 'if-match': bad } }), 400, 'ERR_BAD_REQUEST');
        }
      });

      it('--require-preconditions: unconditional PUT, DELETE and txn writes are 428; conditional ones pass; PATCH stays allowed', async () => {
        const s = strict.url;
        expectProblem(await req(s, 'PUT', '/v1/kv/r', { body: 1 }), 428, 'ERR_PRECONDITION_REQUIRED');
        const c = await req(s, 'PUT', '/v1/kv/r', { body: 1, headers: { 'if-none-match': '*' } });
        expect(c.status).toBe(201);
        expectProblem(await req(s, 'DELETE', '/v1/kv/r'), 428, 'ERR_PRECONDITION_REQUIRED');
        expectProblem(await req(s, 'POST', '/v1/txn', { body: { ops: [{ op: 'set', key: 'r', value: 2 }] } }), 428, 'ERR_PRECONDITION_REQUIRED');
        expect((await req(s, 'POST', '/v1/txn', { body: { ops: [{ op: 'check', key: 'r', revision: c.json.revision }, { op: 'set', key: 'r', value: 2 }] } })).status).toBe(200);
        expect((await req(s, 'PATCH', '/v1/kv/r', { raw: '{"x":1}', headers: { 'content-type': 'application/merge-patch+json' } })).status).toBe(200);
        expect((await req(s, 'GET', '/v1/kv/r')).json).toEqual({ x: 1 });
      });
    });

    describe('PATCH (JSON Merge Patch)', () => {
      const patch = (path: string, body: unknown, headers: Record<string, string> = {}) =>
        req(base, 'PATCH', path, { raw: JSON.stringify(body), headers: { 'content-type': 'application/merge-patch+json', ...headers } });

      it('merges per RFC 7396 and returns the new value with its ETag', async () => {
        await req(base, 'PUT', '/v1/kv/p/1', { body: { a: 'b', c: { d: 'e', f: 'g' }, keep: [1, 2] } });
        const r = await patch('/v1/kv/p/1', { a: 'z', c: { f: null }, keep: [3], n: { x: 1 } });
        expect(r.status).toBe(200);
        expect(r.json).toEqual({ a: 'z', c: { d: 'e' }, keep: [3], n: { x: 1 } });
        expect(r.headers.get('etag')).toBe((await req(base, 'GET', '/v1/kv/p/1')).headers.get('etag'));
        // RFC 7396 appendix A examples
        await req(base, 'PUT', '/v1/kv/p/2', { body: ['a', 'b'] });
        expect((await patch('/v1/kv/p/2', { a: 'c' })).json).toEqual({ a: 'c' });
        expect((await patch('/v1/kv/p/2', ['c'])).json).toEqual(['c']);
        // a missing key is patched from {}
        expect((await patch('/v1/kv/p/new', { a: { b: null, c: 1 } })).json).toEqual({ a: { c: 1 } });
      });

      it('a __proto__ member is an ordinary key and pollutes nothing', async () => {
        const r = await req(base, 'PATCH', '/v1/kv/p/proto', { raw: '{"__proto__":{"polluted":true},"a":1}', headers: { 'content-type': 'application/merge-patch+json' } });
        expect(r.status).toBe(200);
        expect(Object.hasOwn(r.json, '__proto__')).toBe(true);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        expect((await req(base, 'GET', '/v1/kv/p/proto')).text).toBe('{"__proto__":{"polluted":true},"a":1}');
      });

      it('a no-op patch writes nothing (same revision)', async () => {
        const a = await req(base, 'PUT', '/v1/kv/p/noop', { body: { a: 1 } });
        const r = await patch('/v1/kv/p/noop', { a: 1, b: null });
        expect(r.headers.get('etag')).toBe(a.headers.get('etag'));
      });

      it('If-Match applies the patch at that revision only', async () => {
        const a = await req(base, 'PUT', '/v1/kv/p/im', { body: { n: 1 } });
        await req(base, 'PUT', '/v1/kv/p/im', { body: { n: 2 } });
        const stale = await patch('/v1/kv/p/im', { n: 3 }, { 'if-match': a.headers.get('etag') as string });
        expectProblem(stale, 412, 'ERR_CONFLICT');
        const cur = await req(base, 'GET', '/v1/kv/p/im');
        expect(stale.json.currentEtag).toBe(cur.headers.get('etag'));
        expect((await patch('/v1/kv/p/im', { n: 3 }, { 'if-match': cur.headers.get('etag') as string })).json).toEqual({ n: 3 });
        expectProblem(await patch('/v1/kv/p/none', { n: 1 }, { 'if-match': '"1"' }), 412, 'ERR_CONFLICT');
        expect((await patch('/v1/kv/p/created', { n: 1 }, { 'if-none-match': '*' })).status).toBe(200);
      });

      it('validated before commit: invalid → 422 and nothing is stored', async () => {
        const a = await req(base, 'PUT', '/v1/kv/validated/x', { body: { n: 1 } });
        const r = await patch('/v1/kv/validated/x', { n: -1 });
        expectProblem(r, 422, 'ERR_VALIDATION');
        expect(r.json.issues[0].message).toMatch(/-1/);
        expect((await req(base, 'GET', '/v1/kv/validated/x')).headers.get('etag')).toBe(a.headers.get('etag'));
        expectProblem(await patch('/v1/kv/validated/x', { n: -1 }, { 'if-match': a.headers.get('etag') as string }), 422, 'ERR_VALIDATION');
        expectProblem(await req(base, 'PUT', '/v1/kv/validated/y', { body: { n: -1 } }), 422, 'ERR_VALIDATION');
        expectProblem(await req(base, 'GET', '/v1/kv/validated/y'), 404, 'ERR_NOT_FOUND');
        const big = await patch('/v1/kv/p/big', { s: 'x'.repeat(65 * 1024) });
        expectProblem(big, 413, 'ERR_TOO_LARGE');
        expectProblem(await req(base, 'GET', '/v1/kv/p/big'), 404, 'ERR_NOT_FOUND');
      });

      it('needs application/merge-patch+json (415 with Accept-Patch)', async () => {
        const r = await req(base, 'PATCH', '/v1/kv/p/1', { body: { a: 1 } });
        expectProblem(r, 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
        expect(r.headers.get('accept-patch')).toBe('application/merge-patch+json');
      });

      it('a JSON body (application/json) is not a patch: 415 naming application/merge-patch+json, whatever the body, nothing written', async () => {
        const sent: Array<[string, string]> = [
          ['application/json', '{"a":1}'],
          ['application/json; charset=utf-8', '{"a":1}'],
          ['application/json', '{not json'], // the type is refused before the body is read
          ['application/json', ''],
          ['text/plain', '{"a":1}'],
          ['application/x-www-form-urlencoded', 'a=1'],
        ];
        for (const [type, raw] of sent) {
          const r = await req(base, 'PATCH', '/v1/kv/p/json-body', { raw, headers: { 'content-type': type } });
          expectProblem(r, 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
          expect(r.headers.get('accept-patch'), type).toBe('application/merge-patch+json');
          expect(r.json.detail, type).toContain('Content-Type: application/merge-patch+json');
        }
        // No Content-Type at all.
        const bare = await fetch(`${base}/v1/kv/p/json-body`, { method: 'PATCH', headers: { authorization: `Bearer ${ADMIN}` }, body: new TextEncoder().encode('{"a":1}') });
        expect(bare.status).toBe(415);
        expect(bare.headers.get('accept-patch')).toBe('application/merge-patch+json');
        expect((await req(base, 'GET', '/v1/kv/p/json-body')).status).toBe(404);
        // The same body as a merge patch is applied.
        const ok = await req(base, 'PATCH', '/v1/kv/p/json-body', { raw: '{"a":1}', headers: { 'content-type': 'application/merge-patch+json' } });
        expect(ok.status).toBe(200);
        expect(ok.json).toEqual({ a: 1 });
      });

      it('64 concurrent PATCHes of one key lose nothing', async () => {
        await req(base, 'PUT', '/v1/kv/p/hot', { body: {} });
        await Promise.all(Array.from({ length: 64 }, (_, i) => patch('/v1/kv/p/hot', { [`f${i}`]: i })));
        expect(Object.keys((await req(base, 'GET', '/v1/kv/p/hot')).json)).toHaveLength(64);
      });
    });

    describe('POST /v1/txn', () => {
      it('all checks pass and all writes apply with one revision', async () => {
        const a = await req(base, 'PUT', '/v1/kv/t/a', { body: 10 });
        await req(base, 'PUT', '/v1/kv/t/c', { body: 'old' });
        const r = await req(base, 'POST', '/v1/txn', {
          body: { ops: [{ op: 'check', key: 't/a', revision: a.json.revision }, { op: 'check', key: 't/b', revision: null }, { op: 'set', key: 't/a', value: 5 }, { op: 'set', key: 't/b', value: 5 }, { op: 'delete', key: 't/c' }] },
        });
        expect(r.status).toBe(200);
        expect(r.headers.get('etag')).toBe(`"${r.json.revision}"`);
        expect((await req(base, 'GET', '/v1/kv/t/b')).headers.get('etag')).toBe(`"${r.json.revision}"`);
        expect((await req(base, 'GET', '/v1/kv/t/c')).status).toBe(404);
      });

      it('a failed check applies nothing: 409 listing every failed check with its current ETag', async () => {
        const a = await req(base, 'PUT', '/v1/kv/t/x', { body: 1 });
        const a2 = await req(base, 'PUT', '/v1/kv/t/x', { body: 2 });
        const r = await req(base, 'POST', '/v1/txn', {
          body: { ops: [{ op: 'check', key: 't/x', revision: a.json.revision }, { op: 'check', key: 't/y', revision: 12345 }, { op: 'set', key: 't/z', value: 'no' }] },
        });
        expectProblem(r, 409, 'ERR_CONFLICT');
        expect([...r.json.checks].sort((p: { key: string }, q: { key: string }) => p.key.localeCompare(q.key))).toEqual([
          { key: 't/x', expected: a.json.revision, actual: a2.json.revision, currentEtag: `"${a2.json.revision}"` },
          { key: 't/y', expected: 12345, actual: null, currentEtag: null },
        ]);
        expect((await req(base, 'GET', '/v1/kv/t/z')).status).toBe(404);
      });

      it('malformed batches are 400', async () => {
        for (const body of [{}, { ops: 'x' }, { ops: [{ op: 'nope', key: 'a' }] }, { ops: [{ op: 'set', key: 'a' }] }, { ops: [{ op: 'check', key: 'a', revision: 'x' }] }, [1], 'x', { ops: [{ op: 'set', key: '', value: 1 }] }]) {
          const r = await req(base, 'POST', '/v1/txn', { body });
          expect(r.status, JSON.stringify(body)).toBe(400);
          expect(problemIssue(400, r.headers.get('content-type'), r.text)).toBeNull();
        }
        expectProblem(await req(base, 'POST', '/v1/txn', { body: { ops: [{ op: 'set', key: 'd', value: 1 }, { op: 'delete', key: 'd' }] } }), 400, 'ERR_INVALID_ARGUMENT');
      });
    });

    describe('errors', () => {
      it('malformed JSON 400, oversized body 413, wrong media type 415, all problem+json', async () => {
        expectProblem(await req(base, 'PUT', '/v1/kv/e', { raw: '{"a":', headers: { 'content-type': 'application/json' } }), 400, 'ERR_BAD_REQUEST');
        expectProblem(await req(base, 'PUT', '/v1/kv/e', { raw: '', headers: { 'content-type': 'application/json' } }), 400, 'ERR_BAD_REQUEST');
        expectProblem(await req(base, 'PUT', '/v1/kv/e', { raw: JSON.stringify('x'.repeat(200 * 1024)), headers: { 'content-type': 'application/json' } }), 413, 'ERR_PAYLOAD_TOO_LARGE');
        const tooBig = await req(base, 'PUT', '/v1/kv/e', { body: 'x'.repeat(65 * 1024) });
        expectProblem(tooBig, 413, 'ERR_TOO_LARGE');
        expect(tooBig.json.limit).toBe(64 * 1024);
        expectProblem(await req(base, 'PUT', '/v1/kv/e', { raw: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
        expectProblem(await req(base, 'PUT', '/v1/kv/e', { raw: '1', headers: { 'content-type': 'text/plain' } }), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
        expectProblem(await req(base, 'PUT', '/v1/kv/e', { raw: '['.repeat(600) + ']'.repeat(600), headers: { 'content-type': 'application/json' } }), 400, 'ERR_BAD_REQUEST');
      });

      it('bad keys are 400 ERR_INVALID_KEY; unknown routes 404; wrong methods 405 with Allow', async () => {
        expectProblem(await req(base, 'PUT', `/v1/kv/${'k'.repeat(1025)}`, { body: 1 }), 400, 'ERR_INVALID_KEY');
        expectProblem(await req(base, 'GET', '/v1/kv/a%00b'), 400, 'ERR_INVALID_KEY');
        expectProblem(await req(base, 'GET', '/v1/kv/%E0%A4%A'), 400, 'ERR_BAD_REQUEST');
        expectProblem(await req(base, 'GET', '/v1/kv/%ED%A0%80'), 400, 'ERR_BAD_REQUEST');
        expectProblem(await req(base, 'GET', '/v1/nothing'), 404, 'ERR_NOT_FOUND');
        const m = await req(base, 'POST', '/v1/kv/a', { body: 1 });
        expectProblem(m, 405, 'ERR_METHOD_NOT_ALLOWED');
        expect(m.headers.get('allow')).toContain('PUT');
        expectProblem(await req(base, 'GET', '/v1/txn'), 405, 'ERR_METHOD_NOT_ALLOWED');
      });

      it('a header-parse error from node is a problem too (raw socket)', async () => {
        const text = await rawRequest(base, 'GET /v1/kv/a HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n');
        expect(text).toMatch(/^HTTP\/1\.1 400/);
        expect(text).toMatch(/content-type: application\/problem\+json/i);
        expect(text).toContain('"code":"ERR_BAD_REQUEST"');
      });
    });

    describe('watch (Server-Sent Events)', () => {
      it('streams puts and deletes with id = <revision>.<index>; Last-Event-ID resumes after it', async () => {
        const start = await req(base, 'PUT', '/v1/kv/w/0', { body: 0 });
        const revs: number[] = [];
        for (let i = 1; i <= 3; i++) revs.push((await req(base, 'PUT', `/v1/kv/w/${i}`, { body: i })).json.revision);
        revs.push((await req(base, 'DELETE', '/v1/kv/w/1')).json.revision);
        const events = await readSse(`${base}/v1/watch?prefix=w%2F&fromRevision=${start.json.revision}`, {}, 4);
        expect(events.map((e) => e.id)).toEqual(revs.map((r) => `${r}.0`));
        expect(events.map((e) => e.event)).toEqual(['put', 'put', 'put', 'delete']);
        expect(JSON.parse(events[0]!.data)).toMatchObject({ type: 'put', key: 'w/1', value: 1, revision: revs[0] });
        const resumed = await readSse(`${base}/v1/watch?prefix=w%2F&fromRevision=${start.json.revision}`, { 'last-event-id': `${revs[1]}.0` }, 2);
        expect(resumed.map((e) => e.id)).toEqual(revs.slice(2).map((r) => `${r}.0`));
        // A plain revision still means "after this whole revision".
        const byRevision = await readSse(`${base}/v1/watch?prefix=w%2F`, { 'last-event-id': String(revs[2]) }, 1);
        expect(byRevision.map((e) => e.id)).toEqual([`${revs[3]}.0`]);
      });

      it('events of one atomic commit are numbered; resuming in the middle of the commit delivers exactly the rest', async () => {
        const start = await req(base, 'PUT', '/v1/kv/wa/0', { body: 0 });
        const t = await req(base, 'POST', '/v1/txn', { body: { ops: [{ op: 'set', key: 'wa/1', value: 1 }, { op: 'set', key: 'wa/2', value: 2 }, { op: 'set', key: 'wa/3', value: 3 }] } });
        const r = t.json.revision;
        const events = await readSse(`${base}/v1/watch?prefix=wa%2F&fromRevision=${start.json.revision}`, {}, 3);
        expect(events.map((e) => e.id)).toEqual([`${r}.0`, `${r}.1`, `${r}.2`]);
        const rest = await readSse(`${base}/v1/watch?prefix=wa%2F`, { 'last-event-id': `${r}.0` }, 2);
        expect(rest.map((e) => [e.id, JSON.parse(e.data).key])).toEqual([[`${r}.1`, 'wa/2'], [`${r}.2`, 'wa/3']]);
      });

      it('live changes arrive; bad parameters are 400 problems before the stream starts', async () => {
        const controller = new AbortController();
        const got = readSse(`${base}/v1/watch?key=live`, {}, 1, controller.signal);
        await new Promise((r) => setTimeout(r, 200));
        await req(base, 'PUT', '/v1/kv/live', { body: 'now' });
        expect(JSON.parse((await got)[0]!.data)).toMatchObject({ key: 'live', value: 'now' });
        expectProblem(await req(base, 'GET', '/v1/watch?fromRevision=x'), 400, 'ERR_BAD_REQUEST');
        expectProblem(await req(base, 'GET', '/v1/watch?key=a&prefix=b'), 400, 'ERR_BAD_REQUEST');
        expectProblem(await req(base, 'GET', '/v1/watch', { headers: { 'last-event-id': 'abc' } }), 400, 'ERR_BAD_REQUEST');
      });
    });

    describe('operations', () => {
      it('/healthz and /readyz are public; /readyz checks the store', async () => {
        expect((await req(base, 'GET', '/healthz', { token: null })).json).toEqual({ status: 'ok' });
        expect((await req(base, 'GET', '/readyz', { token: null })).json).toMatchObject({ status: 'ready' });
      });

      it('/metrics: Prometheus text with requests by route and status, latency histogram, conflicts, retries (admin only)', async () => {
        await req(base, 'PUT', '/v1/kv/m/x', { body: 1, headers: { 'if-match': '"999999"' } });
        const m = await req(base, 'GET', '/metrics');
        expect(m.status).toBe(200);
        expect(m.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
        expect(m.text).toMatch(/revkit_http_requests_total\{route="\/v1\/kv\/\*",method="PUT",status="412"\} \d+/);
        expect(m.text).toMatch(/revkit_http_request_duration_seconds_bucket\{route="\/v1\/kv\/\*",le="\+Inf"\} \d+/);
        expect(m.text).toMatch(/revkit_conflicts_total [1-9]\d*/);
        expect(m.text).toMatch(/revkit_update_retries_total \d+/);
        expectProblem(await req(base, 'GET', '/metrics', { token: null }), 401, 'ERR_UNAUTHORIZED');
      });

      it('/v1/info names backend, capabilities and limits', async () => {
        const i = await req(base, 'GET', '/v1/info');
        expect(i.json).toMatchObject({ backend: target.name, limits: { maxValueBytes: 64 * 1024, maxPageSize: 5, maxKeyBytes: 1024 } });
      });
    });
  });
}

describe('slow clients', () => {
  let server: RevkitServer;
  let base: string;
  beforeAll(async () => {
    ({ server, url: base } = await startServer({ store: 'memory:', timeouts: { headersMs: 300, requestMs: 600, checkIntervalMs: 100 } }));
  });
  afterAll(() => server.close());

  it('headers that never finish: 408 problem and the connection is closed', async () => {
    // The server's 408 is the verdict: a server that never cut the request would leave it hanging to the test's timeout.
    const text = await rawRequest(base, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ', { keepOpen: true });
    expect(text).toMatch(/^HTTP\/1\.1 408/);
    expect(text).toContain('"code":"ERR_REQUEST_TIMEOUT"');
  });

  it('a body that never finishes: 408 and nothing written', async () => {
    const text = await rawRequest(base, `PUT /v1/kv/slow HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":`, { keepOpen: true });
    expect(text).toMatch(/^HTTP\/1\.1 408/);
    expect((await req(base, 'GET', '/v1/kv/slow')).status).toBe(404);
  });
});

/** Sends raw bytes, returns everything the server sent until it closed the connection. */
export function rawRequest(base: string, data: string, opts: { keepOpen?: boolean } = {}): Promise<string> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(data);
      if (!opts.keepOpen) socket.end();
    });
    let out = '';
    socket.setEncoding('latin1');
    socket.on('data', (d) => (out += d));
    socket.on('error', (e) => (out ? resolve(out) : reject(e)));
    socket.on('close', () => resolve(out));
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

interface SseEvent {
  event: string;
  data: string;
  id: string | undefined;
}

/** Reads `count` events from an SSE endpoint, then disconnects. */
async function readSse(url: string, headers: Record<string, string>, count: number, signal?: AbortSignal): Promise<SseEvent[]> {
  const controller = new AbortController();
  signal?.addEventListener('abort', () => controller.abort());
  const res = await fetch(url, { headers: { authorization: `Bearer ${ADMIN}`, ...headers }, signal: controller.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  const timer = setTimeout(() => controller.abort(), 10_000);
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let idx: number;
      while ((idx = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, idx);
        buffer = buffer.slice(idx + 2);
        const ev: SseEvent = { event: 'message', data: '', id: undefined };
        let hasData = false;
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) ev.event = line.slice(7);
          else if (line.startsWith('data: ')) (ev.data = line.slice(6)), (hasData = true);
          else if (line.startsWith('id: ')) ev.id = line.slice(4);
        }
        if (hasData) events.push(ev);
        if (events.length >= count) return events;
      }
    }
  } catch (err) {
    if (events.length < count) throw new Error(`SSE: got ${events.length} of ${count} events (${String(err)})`);
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return events;
}

describe('watch from a revision whose history is gone', () => {
  it('the stream sends event: error with ERR_HISTORY_GONE, and HttpStore.watch throws HistoryGoneError', async () => {
    const { MemoryStore } = await import('../src/memory/index.js');
    const { HttpStore } = await import('../src/server/index.js');
    const { HistoryGoneError } = await import('../src/core/index.js');
    const store = new MemoryStore({ changeLogSize: 5 });
    const { server, url } = await startServer({ store, closeStore: true });
    try {
      const first = await store.put('g', 0);
      for (let i = 1; i <= 10; i++) await store.put('g', i);
      const res = await fetch(`${url}/v1/watch?key=g&fromRevision=${first.revision}`, { headers: { authorization: `Bearer ${ADMIN}` } });
      const text = await res.text();
      expect(text).toMatch(/event: error\ndata: \{.*"code":"ERR_HISTORY_GONE"/);
      const client = await HttpStore.fromUrl(`${url}?token=${ADMIN}`);
      const err = await client.watch({ key: 'g', fromRevision: first.revision })[Symbol.asyncIterator]().next().catch((e) => e);
      expect(HistoryGoneError.is(err)).toBe(true);
      expect(err.oldestRevision).toBeGreaterThan(first.revision + 1);
      await client.close();
    } finally {
      await server.close();
    }
  });
});
