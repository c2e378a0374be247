// close() on a Redis store lets the commands in flight get their answers
// (bounded by closeTimeoutMs, default 1000 ms), as the other backends do;
// only what is still unanswered then is failed, with ClosedError —
// `ambiguous: true` for a write that was sent (it may still commit), not for
// a read. The old close() failed every command in flight at once with an
// ambiguous BackendError, although they all committed.
import { afterAll, describe, expect, it } from 'vitest';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { ClosedError, type Entry } from '../src/core/index.js';
import { RedisStore } from '../src/redis/index.js';
import { REDIS_URL, dropStoresAfterAll, freshPrefix } from './redis-helpers.js';

dropStoresAfterAll();

const target = new URL(REDIS_URL);

/** A TCP proxy to the machine's Redis whose replies can be held back (the server runs the commands; the answers do not come). */
async function replyHoldingProxy(): Promise<{ url: (prefix: string) => string; hold(): void; close(): Promise<void> }> {
  let holding = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 6379), target.hostname);
    sockets.add(client).add(upstream);
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => {
      if (!holding) client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: (prefix) => `redis://127.0.0.1:${port}${target.pathname || '/0'}?prefix=${prefix}`,
    hold: () => {
      holding = true;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const outcome = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string; ambiguous?: boolean }) => `${e.code}${e.ambiguous ? ' (ambiguous)' : ''}`);

describe('redis close() and the commands in flight', () => {
  const stores: RedisStore[] = [];
  afterAll(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
  });

  it('20 puts in flight when close() is called all get their answers (they committed): none is failed', async () => {
    const prefix = freshPrefix('close');
    const store = await RedisStore.fromUrl(`${REDIS_URL}?prefix=${prefix}`);
    stores.push(store);
    await store.put('warm', 1);
    const puts = Array.from({ length: 20 }, (_, i) => outcome(store.put(`p${i}`, i)));
    await new Promise((r) => setImmediate(r));
    await store.close();
    expect(await Promise.all(puts)).toEqual(Array(20).fill('ok'));
    const again = await RedisStore.fromUrl(`${REDIS_URL}?prefix=${prefix}`);
    stores.push(again);
    expect((await again.list({ prefix: 'p' })).entries.map((e: Entry) => e.value).sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 20 }, (_, i) => i));
    // A call after close() is a plain ClosedError.
    expect(await outcome(store.get('warm'))).toBe(ClosedError.code);
  });

  it('a write whose answer does not come within closeTimeoutMs is ClosedError with ambiguous: true (it did commit); a read is not ambiguous; close() is bounded', async () => {
    const proxy = await replyHoldingProxy();
    try {
      const prefix = freshPrefix('close');
      const store = await RedisStore.fromUrl(proxy.url(prefix), { closeTimeoutMs: 300 });
      stores.push(store);
      await store.put('warm', 1);
      proxy.hold();
      const write = outcome(store.put('held', 42));
      const read = outcome(store.get('warm'));
      await new Promise((r) => setTimeout(r, 50));
      const started = Date.now();
      await store.close();
      const took = Date.now() - started;
      expect(took).toBeGreaterThanOrEqual(250);
      // The held reply never comes: an unbounded close() would wait forever. The bound is a liveness one, far past 300 ms.
      expect(took).toBeLessThan(20_000);
      expect(await write).toBe(`${ClosedError.code} (ambiguous)`);
      expect(await read).toBe(ClosedError.code);
      const direct = await RedisStore.fromUrl(`${REDIS_URL}?prefix=${prefix}`);
      stores.push(direct);
      expect((await direct.get('held'))?.value).toBe(42);
    } finally {
      await proxy.close();
    }
  });

  it('closeTimeoutMs is a URL option and must be a non-negative integer', async () => {
    const prefix = freshPrefix('close');
    const store = await RedisStore.fromUrl(`${REDIS_URL}?prefix=${prefix}&closeTimeoutMs=0`);
    stores.push(store);
    const put = outcome(store.put('x', 1));
    await store.close();
    // 0: nothing is waited for; the write was sent, so it may have committed.
    expect(await put).toBe(`${ClosedError.code} (ambiguous)`);
    await expect(RedisStore.fromUrl(`${REDIS_URL}?prefix=${prefix}&closeTimeoutMs=-1`)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});
