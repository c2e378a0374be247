import { connect, createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { WatchEvent } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { createServer, HttpStore, type RevkitServer } from '../src/server/index.js';
import { ADMIN, startServer } from './server-helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const stop = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > stop) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function openStreams(server: RevkitServer): number {
  return Number(/^revkit_watch_streams (\d+)$/m.exec(server.metrics.render())?.[1] ?? 0);
}

function connections(server: RevkitServer): Promise<number> {
  return new Promise((resolve, reject) => server.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

/** A memory store that names its head revision, the hook a watch "from now" is pinned with. */
class HeadNamingMemoryStore extends MemoryStore {
  headRevision(): Promise<number> {
    return Promise.resolve((this as unknown as { revision: number }).revision);
  }
}

/** A TCP proxy the test can cut: every connection through it, or refuse new ones for a while. */
async function cuttableProxy(target: string): Promise<{ url: string; cut(): void; refusing: boolean; accepted: number; refused: number }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const proxy = {
    url: '',
    refusing: false,
    accepted: 0,
    refused: 0,
    cut() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
  };
  const server: Server = createTcpServer((client) => {
    if (proxy.refusing) {
      proxy.refused++;
      return client.destroy();
    }
    proxy.accepted++;
    const upstream = connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => (client.destroy(), upstream.destroy()));
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  proxy.url = `http://127.0.0.1:${address.port}`;
  cleanups.push(() => {
    proxy.cut();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return proxy;
}

describe('HTTP watch: a stream cut before its first event resumes with no gap (issue 10 #6)', () => {
  it('HttpStore.watch() without fromRevision delivers a write made while it was disconnected', async () => {
    const store = new HeadNamingMemoryStore();
    await store.put('g/before', 0);
    const { server, url } = await startServer({ store, closeStore: true });
    cleanups.push(() => server.close());
    const proxy = await cuttableProxy(url);
    const client = new HttpStore({ url: proxy.url, token: ADMIN });
    cleanups.push(() => client.close());

    const controller = new AbortController();
    const events = client.watch({ prefix: 'g/', signal: controller.signal })[Symbol.asyncIterator]();
    const first = events.next();
    await until('the watch stream to open', () => openStreams(server) === 1);
    await new Promise((r) => setTimeout(r, 50)); // the announced start reaches the client

    proxy.refusing = true;
    proxy.cut();
    await until('the server to see the stream gone', () => openStreams(server) === 0);
    await store.put('g/gap', 1); // no watch is open anywhere now
    proxy.refusing = false;
    await until('the client to reconnect', () => openStreams(server) === 1);
    await store.put('g/after', 2);

    expect(((await first).value as WatchEvent).key).toBe('g/gap');
    expect(((await events.next()).value as WatchEvent).key).toBe('g/after');
    controller.abort();
  });

  it('the stream announces its start revision before any event', async () => {
    const store = new HeadNamingMemoryStore();
    const written = await store.put('s/x', 1);
    const { server, url } = await startServer({ store, closeStore: true });
    cleanups.push(() => server.close());
    const controller = new AbortController();
    cleanups.push(() => controller.abort());
    const res = await fetch(`${url}/v1/watch?prefix=s/`, { headers: { authorization: `Bearer ${ADMIN}` }, signal: controller.signal });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text.split('\n\n')[0]?.split('\n')).toContain(`id: ${written.revision}`);
  });
});

describe('HTTP watch "from now" starts when watch() was called, on the server\'s clock', () => {
  it('a write made right after watch() returned — on the server\'s store by another process, or through another HttpStore — is delivered (20 rounds)', async () => {
    const store = new MemoryStore();
    const { server, url } = await startServer({ store, closeStore: true });
    cleanups.push(() => server.close());
    const client = new HttpStore({ url, token: ADMIN });
    const other = new HttpStore({ url, token: ADMIN });
    cleanups.push(() => client.close(), () => other.close());
    for (let round = 0; round < 20; round++) {
      const controller = new AbortController();
      const events = client.watch({ prefix: `r${round}/`, signal: controller.signal })[Symbol.asyncIterator]();
      // Before the watch's request can have reached the server; next() only afterwards.
      const [first, second] = round % 2 === 0 ? [store, other] : [other, store];
      const a = await first.put(`r${round}/a`, round);
      const b = await second.put(`r${round}/b`, round);
      const seen: string[] = [];
      while (seen.length < 2) {
        const r = await events.next();
        if (r.done) throw new Error('the watch ended');
        seen.push(`${r.value.key}@${r.value.revision}`);
      }
      expect(seen, `round ${round}`).toEqual([`r${round}/a@${a.revision}`, `r${round}/b@${b.revision}`]);
      controller.abort();
      await events.return?.();
    }
  }, 60_000);

  it('a stream that cannot reach the server before it announced its start still starts at watch(): a write made meanwhile is delivered', async () => {
    const store = new MemoryStore();
    const { server, url } = await startServer({ store, closeStore: true });
    cleanups.push(() => server.close());
    const proxy = await cuttableProxy(url);
    const client = new HttpStore({ url: proxy.url, token: ADMIN });
    cleanups.push(() => client.close());
    await client.get('w/none'); // a reading of the server's clock
    await store.put('w/before', 0);

    proxy.refusing = true;
    const controller = new AbortController();
    const events = client.watch({ prefix: 'w/', signal: controller.signal })[Symbol.asyncIterator]();
    const first = events.next();
    await until('the client to try and be refused', () => proxy.refused >= 1);
    const gap = await store.put('w/gap', 1);
    proxy.refusing = false;
    await until('the client to connect', () => openStreams(server) === 1);
    const after = await store.put('w/after', 2);

    // w/before, written just before watch(), may be delivered too (the start reaches back by a margin).
    const seen = [`${((await first).value as WatchEvent).key}`];
    while (seen[seen.length - 1] !== 'w/after') seen.push(((await events.next()).value as WatchEvent).key);
    expect(seen.filter((k) => k !== 'w/before')).toEqual(['w/gap', 'w/after']);
    expect([gap.revision, after.revision]).toEqual([2, 3]);
    controller.abort();
  });

  it('a server that restarts between watch() and its first request: the watch fails with HistoryGoneError instead of skipping what was written meanwhile (review 2026-12-04 #1)', async () => {
    const store = new MemoryStore();
    for (let round = 0; round < 3; round++) {
      const first = await createServer({ store, adminToken: ADMIN });
      const url = await first.listen({ host: '127.0.0.1', port: 0 });
      const client = new HttpStore({ url, token: ADMIN });
      cleanups.push(() => client.close());
      await client.put(`warm/${round}`, round); // a reading of the first run's clock
      await first.close();
      const controller = new AbortController();
      const events = client.watch({ prefix: `x${round}/`, signal: controller.signal })[Symbol.asyncIterator]();
      const meanwhile = await store.put(`x${round}/i`, 'after watch()'); // another process, while no server runs
      const second = await createServer({ store, adminToken: ADMIN });
      cleanups.push(() => second.close());
      await second.listen({ host: '127.0.0.1', port: Number(new URL(url).port) });
      const answer = await events.next().then((r) => r.value as WatchEvent, (err: unknown) => err);
      // Delivered (a start the second run can vouch for) or refused — never skipped.
      if (answer instanceof Error) expect(answer).toMatchObject({ code: 'ERR_HISTORY_GONE' });
      else expect(answer).toMatchObject({ key: `x${round}/i`, revision: meanwhile.revision });
      expect(answer instanceof Error, 'the second run cannot tell what was written before it started').toBe(true);
      controller.abort();
      await second.close();
    }
  });

  it('every answer carries Revkit-Clock; a since from another run of the server is 503 (read the clock again), a malformed one 400', async () => {
    const { server, url } = await startServer({ store: new MemoryStore(), closeStore: true });
    cleanups.push(() => server.close());
    const headers = { authorization: `Bearer ${ADMIN}` };
    const health = await fetch(`${url}/healthz`);
    const clock = health.headers.get('revkit-clock') as string;
    expect(clock).toMatch(/^[A-Za-z0-9_-]+;[0-9.]+$/);
    const refused = await fetch(`${url}/v1/kv/nothing`, { headers });
    expect(refused.status).toBe(404);
    expect(refused.headers.get('revkit-clock')?.split(';')[0]).toBe(clock.split(';')[0]);
    const stale = await fetch(`${url}/v1/watch?prefix=&since=${encodeURIComponent('another;12.5')}`, { headers });
    expect(stale.status).toBe(503);
    expect(stale.headers.get('retry-after')).toBe('0');
    expect(stale.headers.get('revkit-clock')).toMatch(/;/);
    const bad = await fetch(`${url}/v1/watch?prefix=&since=yesterday`, { headers });
    expect(bad.status).toBe(400);
  });
});

describe('HTTP watch: a reader that stops reading is bounded and closed (issue 10 #11)', () => {
  it('the stream queues at most its limit (plus one event), then the server closes it', async () => {
    const maxWatchBufferBytes = 64 * 1024;
    const value = 'v'.repeat(8 * 1024);
    const { server, url } = await startServer({ store: 'memory:', limits: { maxWatchBufferBytes } });
    cleanups.push(() => server.close());
    const { port } = new URL(url);

    const socket = connect(Number(port), '127.0.0.1');
    socket.on('error', () => undefined);
    cleanups.push(() => void socket.destroy());
    socket.write(`GET /v1/watch?prefix=big/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN}\r\n\r\n`);
    socket.pause(); // never reads: the kernel's buffers fill, then the server's queue
    await until('the watch stream to open', () => openStreams(server) === 1);

    let writes = 0;
    // Up to far more than loopback's socket buffers hold, so the server must queue or close.
    while (writes < 6_000 && (await connections(server)) > 0) {
      for (let i = 0; i < 50; i++, writes++) await server.store.put(`big/${writes % 100}`, value);
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(await connections(server), `open after ${writes} writes of ${value.length} bytes`).toBe(0);
    expect(openStreams(server)).toBe(0);
    expect(server.metrics.render()).toMatch(/^revkit_watch_overflows_total 1$/m);
    const oneEvent = 1024 + value.length;
    expect(server.metrics.watchBufferPeakBytes).toBeGreaterThan(0);
    expect(server.metrics.watchBufferPeakBytes).toBeLessThanOrEqual(maxWatchBufferBytes + oneEvent);
    expect(server.metrics.render()).toMatch(/^revkit_watch_buffer_peak_bytes \d+$/m);
  });
});
