import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BackendError, ConflictError, DataLostError, isAmbiguous, type PutOptions, type Store, type WatchEvent,
} from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { HttpStore, type HttpStoreOptions, type RevkitServer } from '../src/server/index.js';
import { ADMIN, startServer } from './server-helpers.js';
import { freePort } from './support/servers.js';

// HttpStore over several `revkit serve` replicas when one of them answers, but cannot serve (issue 25, review
// 05 b/c): a gateway in front of a dead server (502, an HTML page), or a server that lost its connection to the
// store the others still reach (503 ERR_BACKEND, transient). Each replica here is a real server over one shared
// store, behind a small gateway that records what reached it and what it answered; a replica's "store connection"
// is a view of the shared store that fails as an unreachable store does while the test says so.

/** Whether a replica's view of the store reaches it, and what it fails with when it does not. */
interface StoreLink {
  failure: (() => Error) | undefined;
}

const UNREACHABLE = () => new BackendError('test: the store is unreachable from this server', { transient: true });
const OPERATIONS = new Set(['get', 'getRecord', 'put', 'delete', 'list', 'history', 'update']);

/** `store` as one server sees it: its operations fail with `link.failure()` while one is set. */
function viewOf(store: MemoryStore, link: StoreLink): Store {
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (!OPERATIONS.has(String(prop))) return method.bind(target);
      return (...args: unknown[]) => (link.failure ? Promise.reject(link.failure()) : method.apply(target, args));
    },
  });
}

interface Seen {
  method: string;
  path: string;
  status?: number;
}

/**
 * A reverse proxy as found in front of a server (nginx, a load balancer): it forwards every request to its
 * upstream and, when the upstream cannot be reached or hangs up, answers 502 with an HTML page.
 * `dieAfterNext(match)`: the next request `match` picks is forwarded (a write commits), then the upstream dies
 * before its answer is relayed: the client gets 502, and so does every request after.
 */
interface Gateway {
  readonly url: string;
  readonly seen: Seen[];
  upstream: string | undefined;
  dieAfterNext(match: (r: Seen) => boolean): void;
  close(): Promise<void>;
}

async function startGateway(upstream: string | undefined): Promise<Gateway> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  let dieOn: ((r: Seen) => boolean) | undefined;
  const dead = `http://127.0.0.1:${await freePort()}`;
  const badGateway = (res: http.ServerResponse, record: Seen) => {
    record.status = 502;
    res.writeHead(502, { 'content-type': 'text/html' });
    res.end('<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>');
  };
  const gateway: Gateway = {
    url: '',
    seen,
    upstream,
    dieAfterNext(match) {
      dieOn = match;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = http.createServer((req, res) => {
    const record: Seen = { method: req.method ?? 'GET', path: req.url ?? '/' };
    seen.push(record);
    const dies = dieOn?.(record) === true;
    if (dies) dieOn = undefined;
    const target = new URL(gateway.upstream ?? dead);
    const headers = { ...req.headers };
    delete headers.connection;
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent: false });
    up.on('error', () => badGateway(res, record));
    up.on('response', (upRes) => {
      if (dies) {
        upRes.resume();
        upRes.on('end', () => {
          gateway.upstream = undefined;
          badGateway(res, record);
        });
        return;
      }
      record.status = upRes.statusCode ?? 0;
      const kept = { ...upRes.headers };
      delete kept.connection;
      delete kept['transfer-encoding'];
      res.writeHead(upRes.statusCode ?? 502, kept);
      upRes.pipe(res);
    });
    req.pipe(up);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(gateway, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
}

const servers: RevkitServer[] = [];
const gateways: Gateway[] = [];
const clients: Store[] = [];
let shared: MemoryStore | undefined;
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const g of gateways.splice(0)) await g.close();
  for (const s of servers.splice(0)) await s.close();
  await shared?.close();
  shared = undefined;
});

/** Three servers over one store, each behind a gateway and with a link to the store; `urls` are the gateways'. */
async function replicas(): Promise<{ store: MemoryStore; gateways: Gateway[]; links: StoreLink[]; urls: string[] }> {
  shared = new MemoryStore();
  const gs: Gateway[] = [];
  const links: StoreLink[] = [];
  for (let i = 0; i < 3; i++) {
    const link: StoreLink = { failure: undefined };
    const { server, url } = await startServer({ store: viewOf(shared, link), closeStore: false });
    servers.push(server);
    const gateway = await startGateway(url);
    gateways.push(gateway);
    gs.push(gateway);
    links.push(link);
  }
  return { store: shared, gateways: gs, links, urls: gs.map((g) => g.url) };
}

function client(options: HttpStoreOptions, Kind: typeof HttpStore = HttpStore): HttpStore {
  const store = new Kind({ token: ADMIN, ...options });
  clients.push(store);
  return store;
}

const keyRequests = (g: Gateway, method: string, key: string) => g.seen.filter((r) => r.method === method && r.path.startsWith(`/v1/kv/${encodeURIComponent(key)}`));
const isReadyz = (r: Seen) => r.path === '/readyz';

/** A client that takes an ambiguous write for one not done (the canary): update() then applies it again. */
class ForgetfulHttpStore extends HttpStore {
  protected override async doPut<T>(key: string, value: T, options: PutOptions) {
    try {
      return await super.doPut(key, value, options);
    } catch (err) {
      if (isAmbiguous(err)) throw new BackendError('canary: an unconfirmed write reported as not done', { transient: true, ambiguous: false });
      throw err;
    }
  }
}

/** Increments `{ n }` by update() while the first replica's server dies right after committing the write (the client gets the gateway's 502). */
async function incrementThroughGatewayDeath(Kind: typeof HttpStore) {
  const { store, gateways: [a, b], urls } = await replicas();
  await store.put('counter', { n: 0 });
  const http = client({ url: urls, probeIntervalMs: 60_000 }, Kind);
  a!.dieAfterNext((r) => r.method === 'PUT');
  const entry = await http.update<{ n: number }>('counter', (v) => ({ n: (v?.n ?? 0) + 1 }), { deadlineMs: 10_000 });
  const history = await store.history('counter', { limit: 100 });
  return { n: (await store.get<{ n: number }>('counter'))!.value.n, told: entry!.value.n, writes: history.length - 1, a: a!, b: b! };
}

describe('HttpStore over several servers: a replica that answers but cannot serve (502 from its gateway)', () => {
  it('a read answered 502 by a gateway in front of a dead server runs on the next server within the same call; the replica is left', async () => {
    const { store, gateways: [a, b], urls } = await replicas();
    await store.put('k', 'v');
    a!.upstream = undefined;
    const http = client({ url: urls, probeIntervalMs: 60_000 });
    expect((await http.get('k'))?.value).toBe('v');
    expect(keyRequests(a!, 'GET', 'k').map((r) => r.status)).toEqual([502]);
    expect(keyRequests(b!, 'GET', 'k').map((r) => r.status)).toEqual([200]);
    expect((await http.list({ prefix: '' })).entries.map((e) => e.key)).toEqual(['k']);
    const state = await http.replication();
    expect(state.serving).toBe(urls[1]);
    expect(state.members[0]).toEqual({ address: urls[0], role: 'revkit server', state: 'down' });
    expect(a!.seen.filter((r) => !isReadyz(r))).toHaveLength(1);
  });

  it('a write answered 502 may have reached the server: put() says so without resending it; the next write goes to the next server', async () => {
    const { store, gateways: [a, b], urls } = await replicas();
    a!.upstream = undefined;
    const http = client({ url: urls, probeIntervalMs: 60_000 });
    const err = await http.put('k', 1).catch((e: unknown) => e);
    expect(isAmbiguous(err), String(err)).toBe(true);
    expect(keyRequests(b!, 'PUT', 'k')).toHaveLength(0);
    const entry = await http.put('k', 2);
    expect(keyRequests(b!, 'PUT', 'k').map((r) => r.status)).toEqual([201]);
    expect((await store.get('k'))?.revision).toBe(entry.revision);
    expect(keyRequests(a!, 'PUT', 'k')).toHaveLength(1);
  });

  it('update(): the server dies after committing, its gateway answers 502 — resolved by writer token on the next server, applied once, the caller told its own value', async () => {
    const f = await incrementThroughGatewayDeath(HttpStore);
    expect(keyRequests(f.a, 'PUT', 'counter').map((r) => r.status)).toEqual([502]);
    expect(keyRequests(f.b, 'GET', 'counter').length, 'the outcome was looked up on the next server').toBeGreaterThan(0);
    expect({ n: f.n, told: f.told, writes: f.writes }).toEqual({ n: 1, told: 1, writes: 1 });
  });

  it('canary: a client that takes that 502 for a write not done applies the increment twice, and the verdict sees it', async () => {
    const f = await incrementThroughGatewayDeath(ForgetfulHttpStore);
    expect({ n: f.n, writes: f.writes }).toEqual({ n: 2, writes: 2 });
  });

  it('a watch opened on a replica whose gateway answers 502 follows the next server', async () => {
    const { store, gateways: [a, b], urls } = await replicas();
    a!.upstream = undefined;
    const http = client({ url: urls, probeIntervalMs: 60_000 });
    const abort = new AbortController();
    const seen: WatchEvent[] = [];
    const done = (async () => {
      for await (const ev of http.watch({ prefix: 'w/', fromRevision: 0, signal: abort.signal })) {
        seen.push(ev);
        if (seen.length === 3) abort.abort();
      }
    })();
    const written: number[] = [];
    for (let n = 1; n <= 3; n++) written.push((await store.put(`w/${n}`, { n })).revision);
    await done;
    expect(seen.map((e) => e.revision)).toEqual(written);
    expect(a!.seen.filter((r) => r.path.startsWith('/v1/watch')).map((r) => r.status)).toEqual([502]);
    expect(b!.seen.filter((r) => r.path.startsWith('/v1/watch'))).toHaveLength(1);
  });
});

describe('HttpStore over several servers: a replica that lost its store (503 ERR_BACKEND, transient)', () => {
  it('get, put, update and replication() run on the next server within the same call; the refused put is sent once there', async () => {
    const { store, gateways: [a, b], links: [link], urls } = await replicas();
    await store.put('k', 0);
    link!.failure = UNREACHABLE;
    const http = client({ url: urls, probeIntervalMs: 60_000 });
    expect((await http.get('k'))?.value).toBe(0);
    expect(keyRequests(a!, 'GET', 'k').map((r) => r.status)).toEqual([503]);
    const put = await http.put('p', 1);
    expect((await store.get('p'))?.revision).toBe(put.revision);
    expect(keyRequests(b!, 'PUT', 'p')).toHaveLength(1);
    expect((await http.update<number>('k', (v) => (v ?? 0) + 1, { deadlineMs: 3000 }))?.value).toBe(1);
    expect((await store.get('k'))?.value).toBe(1);
    expect((await http.replication()).serving).toBe(urls[1]);
  });

  it('a write the server refused before doing anything (ERR_BACKEND, not ambiguous) moves on at once, even as the first call', async () => {
    const { store, gateways: [a, b], links: [link], urls } = await replicas();
    link!.failure = UNREACHABLE;
    const http = client({ url: urls, probeIntervalMs: 60_000 });
    const entry = await http.put('k', { v: 1 });
    expect(keyRequests(a!, 'PUT', 'k').map((r) => r.status)).toEqual([503]);
    expect(keyRequests(b!, 'PUT', 'k').map((r) => r.status)).toEqual([201]);
    expect((await store.history('k')).map((r) => r.revision)).toEqual([entry.revision]);
  });

  it('the replica is probed on /readyz and used again only once it answers 200 (its store reachable again)', async () => {
    const { store, gateways: [a], links: [link], urls } = await replicas();
    await store.put('k', 'v');
    link!.failure = UNREACHABLE;
    const http = client({ url: urls, probeIntervalMs: 20 });
    expect((await http.get('k'))?.value).toBe('v');
    // Poll until a few probes were refused: meanwhile, no call went back to the replica.
    const deadline = Date.now() + 20_000;
    while (a!.seen.filter((r) => isReadyz(r) && r.status === 503).length < 3 && Date.now() < deadline) {
      expect((await http.get('k'))?.value).toBe('v');
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(a!.seen.filter((r) => isReadyz(r) && r.status === 503).length).toBeGreaterThanOrEqual(3);
    expect(keyRequests(a!, 'GET', 'k')).toHaveLength(1);
    link!.failure = undefined;
    while (keyRequests(a!, 'GET', 'k').length < 2 && Date.now() < deadline + 10_000) {
      await http.get('k');
      await new Promise((r) => setTimeout(r, 10));
    }
    const back = a!.seen.findIndex((r, i) => i > 0 && r.path.startsWith('/v1/kv/') && r.status === 200);
    expect(back, 'calls went back to the replica').toBeGreaterThan(0);
    expect(a!.seen.slice(0, back).at(-1), 'right after a probe answered 200').toEqual({ method: 'GET', path: '/readyz', status: 200 });
    expect((await http.replication()).serving).toBe(urls[0]);
  });
});

describe('HttpStore over several servers: answers that stay the answer', () => {
  // Guards of the rule above (these held before it too): what a working server says of the shared store is
  // what the next server would say; moving on would only repeat the request.
  it('ERR_DATA_LOST, a 412, a non-transient ERR_BACKEND: no other server is asked; a store down for every server fails after one try of each', async () => {
    const { store, gateways: [a, b, c], links, urls } = await replicas();
    await store.put('k', 1);
    const http = client({ url: urls, probeIntervalMs: 60_000 });
    links[0]!.failure = () => new DataLostError('test: the store lost acknowledged writes', { store: 'memory', after: 1, upTo: 2 });
    expect(DataLostError.is(await http.get('k').catch((e: unknown) => e))).toBe(true);
    links[0]!.failure = () => new BackendError('test: the store failed', { transient: false });
    const failed = await http.get('k').catch((e: unknown) => e);
    expect(BackendError.is(failed) && !failed.transient, String(failed)).toBe(true);
    links[0]!.failure = undefined;
    expect(ConflictError.is(await http.put('k', 2, { ifRevision: 999 }).catch((e: unknown) => e))).toBe(true);
    expect(b!.seen.filter((r) => !isReadyz(r))).toHaveLength(0);

    for (const link of links) link.failure = UNREACHABLE;
    const down = await http.put('k', 3).catch((e: unknown) => e);
    expect(BackendError.is(down) && down.transient && !down.ambiguous, String(down)).toBe(true);
    for (const g of [a!, b!, c!]) expect(keyRequests(g, 'PUT', 'k').filter((r) => r.status === 503).length).toBeLessThanOrEqual(1);
    expect((await store.get('k'))?.value).toBe(1);
  });
});
