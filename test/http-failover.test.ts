import { afterEach, describe, expect, it } from 'vitest';
import { BackendError, InvalidArgumentError, isAmbiguous, type PutOptions, type Store, type WatchEvent } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { open } from '../src/open.js';
import { HttpStore, type HttpStoreOptions, type RevkitServer } from '../src/server/index.js';
import { ADMIN, startServer } from './server-helpers.js';
import { startHttpCutProxy, type HttpCutProxy } from './support/http-cut-proxy.js';
import { freePort } from './support/servers.js';

// HttpStore over several `revkit serve` replicas of one store (issue 25): three servers share one
// store here, each behind a proxy that records what reaches it and cuts what a test tells it to,
// so where each request went, and what a cut did, is known exactly (no timing in any verdict).

const servers: RevkitServer[] = [];
const proxies: HttpCutProxy[] = [];
const clients: Store[] = [];
let shared: MemoryStore | undefined;
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const p of proxies.splice(0)) await p.close();
  for (const s of servers.splice(0)) await s.close();
  await shared?.close();
  shared = undefined;
});

/** Three servers over one store, a proxy in front of each; `urls` are the proxies'. */
async function replicas(): Promise<{ store: MemoryStore; proxies: HttpCutProxy[]; urls: string[] }> {
  shared = new MemoryStore();
  const ps: HttpCutProxy[] = [];
  for (let i = 0; i < 3; i++) {
    const { server, url } = await startServer({ store: shared, closeStore: false });
    servers.push(server);
    const proxy = await startHttpCutProxy(url);
    proxies.push(proxy);
    ps.push(proxy);
  }
  return { store: shared, proxies: ps, urls: ps.map((p) => p.url) };
}

function client(options: HttpStoreOptions, Kind: typeof HttpStore = HttpStore): HttpStore {
  const store = new Kind({ token: ADMIN, ...options });
  clients.push(store);
  return store;
}

const keyRequests = (p: HttpCutProxy, method: string, key: string) => p.seen.filter((r) => r.method === method && r.path.startsWith(`/v1/kv/${encodeURIComponent(key)}`));

/**
 * The canary: a client that fails over but forgets that a write cut on its way may have
 * committed (it reports the cut as a plain failure), so update() writes the mutation again.
 */
class ForgetfulHttpStore extends HttpStore {
  protected override async doPut<T>(key: string, value: T, options: PutOptions) {
    try {
      return await super.doPut(key, value, options);
    } catch (err) {
      if (isAmbiguous(err)) throw new BackendError('canary: a cut write reported as not done', { transient: true, ambiguous: false });
      throw err;
    }
  }
}

/** Increments `{ n }` once by update() while the first replica cuts the answer to the write after committing it. */
async function incrementThroughCut(Kind: typeof HttpStore): Promise<{ n: number; told: number; writes: number; proxies: HttpCutProxy[] }> {
  const { store, proxies: [a, b], urls } = await replicas();
  await store.put('counter', { n: 0 });
  const http = client({ url: urls, probeIntervalMs: 60_000 }, Kind);
  a!.cutNext((r) => r.method === 'PUT', { at: 'before-response' });
  const entry = await http.update<{ n: number }>('counter', (v) => ({ n: (v?.n ?? 0) + 1 }));
  const history = await store.history('counter', { limit: 100 });
  expect(keyRequests(b!, 'GET', 'counter').length, 'the re-read after the cut went to the next replica').toBeGreaterThan(0);
  return { n: (await store.get<{ n: number }>('counter'))!.value.n, told: entry!.value.n, writes: history.length - 1, proxies: [a!, b!] };
}

describe('HttpStore over several servers: URLs', () => {
  it('open() takes full server URLs, comma-separated, with one token for all; refuses what it cannot use, without quoting the token', async () => {
    const { urls } = await replicas();
    const store = await open(`${urls.join(',')}?token=${ADMIN}`);
    clients.push(store);
    await store.put('k', 1);
    expect((await store.get('k'))?.value).toBe(1);
    const state = await store.replication!();
    expect(state.serving).toBe(urls[0]);
    expect(state.members.slice(0, 3)).toEqual(urls.map((u, i) => ({ address: u, role: 'revkit server', state: i === 0 ? 'serving' : 'standby' })));

    const refusals = [
      `${urls[0]}?token=${ADMIN},${urls[1]}?token=other-token-0123456789`,
      `${urls[0]},${urls[0]}?token=${ADMIN}`,
      `${urls[0]},ftp://x?token=${ADMIN}`,
      `${urls[0]},${urls[1]}?tokn=${ADMIN}`,
      `${urls[0]},http://[::1?token=${ADMIN}`,
    ];
    for (const url of refusals) {
      const err = await open(url).catch((e: unknown) => e);
      expect(InvalidArgumentError.is(err), `${url}: ${String(err)}`).toBe(true);
      expect((err as Error).message).not.toContain(ADMIN);
    }
  });
});

describe('HttpStore over several servers: failover', () => {
  it('a request that cannot have reached a server (refused) runs on the next one: the caller sees no error', async () => {
    const { store, urls, proxies: [b] } = await replicas();
    const dead = `http://127.0.0.1:${await freePort()}`;
    const http = client({ url: [dead, ...urls], probeIntervalMs: 60_000 });
    const entry = await http.put('k', { v: 1 });
    expect((await store.get('k'))?.revision).toBe(entry.revision);
    expect(keyRequests(b!, 'PUT', 'k')).toHaveLength(1);
    const state = await http.replication();
    expect(state.serving).toBe(urls[0]);
    expect(state.members[0]).toEqual({ address: dead, role: 'revkit server', state: 'down' });
    expect(state.failovers).toBeGreaterThanOrEqual(1);
  });

  it('a read whose connection is reset moves on to the next server and is answered there', async () => {
    const { store, proxies: [a, b], urls } = await replicas();
    await store.put('k', 'v');
    const http = client({ url: urls, probeIntervalMs: 60_000 });
    a!.cutNext((r) => r.method === 'GET' && r.path.startsWith('/v1/kv/'), { at: 'reset-on-request' });
    expect((await http.get('k'))?.value).toBe('v');
    expect(keyRequests(a!, 'GET', 'k').map((r) => r.cut)).toEqual(['reset-on-request']);
    expect(keyRequests(b!, 'GET', 'k')).toHaveLength(1);
  });

  it('a write cut after it committed is ambiguous: put() says so and does not send it again', async () => {
    const { store, proxies: [a, b], urls } = await replicas();
    const http = client({ url: urls, probeIntervalMs: 60_000 });
    a!.cutNext((r) => r.method === 'PUT', { at: 'before-response' });
    const err = await http.put('k', 1).catch((e: unknown) => e);
    expect(isAmbiguous(err), String(err)).toBe(true);
    expect(keyRequests(b!, 'PUT', 'k')).toHaveLength(0);
    expect((await store.history('k')).length).toBe(1);
  });

  it('update(): a write cut on its way is recognised by its writer token on the next server — applied once, the caller told its own value', async () => {
    const f = await incrementThroughCut(HttpStore);
    expect(f.proxies[0]!.seen.filter((r) => r.cut === 'before-response')).toHaveLength(1);
    expect({ n: f.n, told: f.told, writes: f.writes }).toEqual({ n: 1, told: 1, writes: 1 });
  });

  it('canary: the same cut with a client that forgets the write may have committed applies the increment twice, and the verdict sees it', async () => {
    const f = await incrementThroughCut(ForgetfulHttpStore);
    expect(f.writes).toBe(2);
    expect(f.n).toBe(2);
  });

  it('a watch whose stream is cut resumes on the next server from its last event: every change once, in order', async () => {
    const { store, proxies: [a, b], urls } = await replicas();
    const http = client({ url: urls, probeIntervalMs: 60_000 });
    a!.cutNext((r) => r.path.startsWith('/v1/watch'), { at: 'mid-event', marker: '"n":5' });
    const abort = new AbortController();
    const seen: WatchEvent[] = [];
    const done = (async () => {
      for await (const ev of http.watch({ prefix: 'w/', fromRevision: 0, signal: abort.signal })) {
        seen.push(ev);
        if (seen.length === 10) abort.abort();
      }
    })();
    const written: number[] = [];
    for (let n = 1; n <= 10; n++) written.push((await store.put(`w/${n % 3}`, { n })).revision);
    await done;
    expect(seen.map((e) => e.revision)).toEqual(written);
    expect(seen.map((e) => (e.type === 'put' ? (e.entry.value as { n: number }).n : null))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(a!.seen.filter((r) => r.path.startsWith('/v1/watch')).map((r) => r.cut)).toEqual(['mid-event']);
    expect(b!.seen.filter((r) => r.path.startsWith('/v1/watch'))).toHaveLength(1);
  });

  it('a server left for having given no answer is probed on /readyz in the background, and calls go back to it once it answers', async () => {
    const { store, proxies: [a], urls } = await replicas();
    await store.put('k', 'v');
    const http = client({ url: urls, probeIntervalMs: 20 });
    a!.cutNext((r) => r.method === 'GET' && r.path.startsWith('/v1/kv/'), { at: 'reset-on-request' });
    expect((await http.get('k'))?.value).toBe('v');
    const deadline = Date.now() + 30_000;
    while (keyRequests(a!, 'GET', 'k').length < 2 && Date.now() < deadline) {
      await http.get('k');
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(keyRequests(a!, 'GET', 'k').map((r) => r.cut ?? 'answered')).toEqual(['reset-on-request', 'answered']);
    expect(a!.seen.some((r) => r.path === '/readyz')).toBe(true);
    const state = await http.replication();
    expect(state.serving).toBe(urls[0]);
    expect(state.failovers).toBeGreaterThanOrEqual(2);
  });
});
