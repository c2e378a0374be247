import { connect, createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { WatchEvent } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { HttpStore, type RevkitServer } from '../src/server/index.js';
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
async function cuttableProxy(target: string): Promise<{ url: string; cut(): void; refusing: boolean; accepted: number }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const proxy = {
    url: '',
    refusing: false,
    accepted: 0,
    cut() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
  };
  const server: Server = createTcpServer((client) => {
    if (proxy.refusing) return client.destroy();
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
