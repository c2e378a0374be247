import { afterEach, describe, expect, it } from 'vitest';
import { BackendError, ConflictError, RevkitError, type WatchEvent } from '../src/core/index.js';
import { HttpStore, type RevkitServer } from '../src/server/index.js';
import { ADMIN, startServer } from './server-helpers.js';
import { startHttpCutProxy, type CutPoint, type HttpCutProxy } from './support/http-cut-proxy.js';

// A response cut after the server handled the request (a proxy or a network drop between
// HttpStore and the server) reaches the caller as a typed error, never a bare TypeError:
// a write's is ambiguous (it may have committed) and update() resolves it by its writer token;
// a read's is transient only; a watch resumes after the last whole event.

let server: RevkitServer | undefined;
let proxy: HttpCutProxy | undefined;
const clients: HttpStore[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await proxy?.close();
  await server?.close();
  proxy = server = undefined;
});

/** A server over memory, a cutting proxy in front of it, a client through the proxy and one straight to the server. */
async function setUp(): Promise<{ cut: HttpStore; direct: HttpStore; proxy: HttpCutProxy }> {
  const started = await startServer({ store: 'memory:' });
  server = started.server;
  proxy = await startHttpCutProxy(started.url);
  const cut = new HttpStore({ url: proxy.url, token: ADMIN });
  const direct = new HttpStore({ url: started.url, token: ADMIN });
  clients.push(cut, direct);
  return { cut, direct, proxy };
}

function expectBackendError(err: unknown, shape: { ambiguous: boolean }, address: string): void {
  expect(RevkitError.is(err), `not a RevkitError: ${String(err)}`).toBe(true);
  expect(BackendError.is(err), `not a BackendError: ${String(err)}`).toBe(true);
  const e = err as BackendError;
  expect({ transient: e.transient, ambiguous: e.ambiguous }).toEqual({ transient: true, ...shape });
  expect(e.message).toContain(address);
  expect(e.cause).toBeDefined();
}

const WRITE_CUTS: CutPoint[] = [{ at: 'before-response' }, { at: 'after-headers' }, { at: 'mid-body' }];
const READ_CUTS: CutPoint[] = [{ at: 'after-headers' }, { at: 'mid-body' }, { at: 'mid-body', bytes: 1 }];

describe('HttpStore: a write whose response is cut after the server committed', () => {
  for (const cut of WRITE_CUTS) {
    it(`PUT cut ${cut.at}: an ambiguous, transient BackendError naming the server, with the cause; the write did commit`, async () => {
      const { cut: client, direct, proxy: p } = await setUp();
      p.cutNext((r) => r.method === 'PUT', cut);
      const err = await client.put('k', { n: 1 }, { writer: 'w_put' }).catch((e: unknown) => e);
      expect(p.pending).toBe(0);
      expectBackendError(err, { ambiguous: true }, p.url);
      expect(await direct.getRecord('k')).toMatchObject({ value: { n: 1 }, writer: 'w_put' });
    });
  }

  it('DELETE and an atomic commit (POST /v1/txn) cut after the headers: ambiguous', async () => {
    const { cut: client, direct, proxy: p } = await setUp();
    await direct.put('d', 1);
    p.cutNext((r) => r.method === 'DELETE', { at: 'after-headers' });
    expectBackendError(await client.delete('d').catch((e: unknown) => e), { ambiguous: true }, p.url);
    expect(await direct.get('d')).toBeNull();
    p.cutNext((r) => r.method === 'POST', { at: 'mid-body' });
    expectBackendError(await client.atomic().set('t1', 1).set('t2', 2).commit().catch((e: unknown) => e), { ambiguous: true }, p.url);
    expect((await direct.get('t2'))?.value).toBe(2);
  });

  it('a refusal (412) whose body is cut is not ambiguous: its status line said nothing was written', async () => {
    const { cut: client, proxy: p } = await setUp();
    await client.put('c', 1);
    p.cutNext((r) => r.method === 'PUT', { at: 'mid-body' });
    const err = await client.put('c', 2, { ifRevision: 999 }).catch((e: unknown) => e);
    expectBackendError(err, { ambiguous: false }, p.url);
    expect((err as BackendError).message).toContain('412');
    // Uncut, the same request is the ConflictError it is.
    expect(ConflictError.is(await client.put('c', 2, { ifRevision: 999 }).catch((e: unknown) => e))).toBe(true);
  });

  for (const cut of WRITE_CUTS) {
    for (const combine of [true, false]) {
      it(`update() whose PUT is cut ${cut.at} (combine: ${combine}) increments exactly once; history shows one new revision, with its writer token`, async () => {
        const { cut: client, direct, proxy: p } = await setUp();
        await direct.put('n', 5);
        p.cutNext((r) => r.method === 'PUT', cut);
        const entry = await client.update<number>('n', (n) => (n ?? 0) + 1, { combine });
        expect(p.pending).toBe(0);
        expect(p.seen.filter((r) => r.method === 'PUT')).toHaveLength(1); // recognised by its token, not written again
        expect(entry?.value).toBe(6);
        const history = await direct.history<number>('n');
        expect(history.map((r) => ('value' in r ? r.value : null))).toEqual([6, 5]);
        expect(typeof history[0]?.writer).toBe('string');
        expect(entry).toMatchObject({ revision: history[0]?.revision, writer: history[0]?.writer });
      });
    }
  }
});

describe('HttpStore: a read whose response is cut is transient, not ambiguous', () => {
  for (const cut of READ_CUTS) {
    it(`GET, list and history cut ${cut.at}${'bytes' in cut ? ` (${cut.bytes} byte)` : ''}`, async () => {
      const { cut: client, proxy: p } = await setUp();
      await client.put('r/a', { text: 'x'.repeat(200) });
      await client.put('r/a', { text: 'y'.repeat(200) });
      await client.put('r/b', 2);
      p.cutNext((r) => r.method === 'GET' && r.path.startsWith('/v1/kv/r%2Fa') && !r.path.includes('/history'), cut);
      expectBackendError(await client.get('r/a').catch((e: unknown) => e), { ambiguous: false }, p.url);
      p.cutNext((r) => r.method === 'GET' && r.path.startsWith('/v1/kv?'), cut);
      expectBackendError(await client.list({ prefix: 'r/' }).catch((e: unknown) => e), { ambiguous: false }, p.url);
      p.cutNext((r) => r.method === 'GET' && r.path.includes('/history'), cut);
      expectBackendError(await client.history('r/a').catch((e: unknown) => e), { ambiguous: false }, p.url);
      expect(p.pending).toBe(0);
      // Nothing is left broken: the same reads answer once nothing cuts them.
      expect((await client.get('r/a'))?.value).toEqual({ text: 'y'.repeat(200) });
      expect((await client.list({ prefix: 'r/' })).entries).toHaveLength(2);
      expect(await client.history('r/a')).toHaveLength(2);
    });
  }
});

describe('HttpStore: a watch stream cut mid-event resumes after the last whole event', () => {
  const cuts: Array<{ name: string; cut: CutPoint }> = [
    { name: 'in the middle of an event', cut: { at: 'mid-event', marker: '"key":"w/b"' } },
    { name: 'before any byte of the response', cut: { at: 'before-response' } },
    { name: 'after the headers', cut: { at: 'after-headers' } },
  ];
  for (const { name, cut } of cuts) {
    it(`cut ${name}: every change exactly once, in order, no partial event, no error`, async () => {
      const { cut: client, direct, proxy: p } = await setUp();
      const written = [];
      for (const k of ['w/a', 'w/b', 'w/c']) written.push(await direct.put(k, { k, pad: 'z'.repeat(100) }));
      p.cutNext((r) => r.path.startsWith('/v1/watch'), cut);
      const seen: WatchEvent[] = [];
      const controller = new AbortController();
      const watching = (async () => {
        for await (const ev of client.watch({ prefix: 'w/', fromRevision: 0, signal: controller.signal })) {
          seen.push(ev);
          if (seen.length === 3) controller.abort();
        }
      })();
      await watching; // ends when the third event arrived; any error would reject here
      expect(seen.map((e) => [e.key, e.revision])).toEqual(written.map((w) => [w.key, w.revision]));
      expect(seen.map((e) => (e.type === 'put' ? e.entry.value : null))).toEqual(written.map((w) => w.value));
      const watches = p.seen.filter((r) => r.path.startsWith('/v1/watch'));
      expect(watches.length).toBeGreaterThanOrEqual(2);
      expect(watches[0]?.cut).toBe(cut.at);
    });
  }
});
