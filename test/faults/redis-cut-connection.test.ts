/**
 * A write whose connection is cut while the server still holds it unread:
 * the server runs it after the client has given the connection up. The
 * store must report it as "may have run" — not resend it, not hang — and
 * update() must find it by its writer token instead of applying the
 * mutation a second time. Runs on a private redis-server that the test
 * pauses (SIGSTOP / SIGCONT); the machine's own one is never touched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RedisStore } from '../../src/redis/index.js';
import { startPrivateRedis, type PrivateServer } from '../support/servers.js';

let server: PrivateServer;
let admin: Redis;
let pid: number;

beforeAll(async () => {
  server = await startPrivateRedis();
  admin = new Redis(server.url);
  pid = Number(/process_id:(\d+)/.exec(await admin.info('server'))?.[1]);
}, 120_000);

afterAll(async () => {
  admin?.disconnect();
  if (pid) process.kill(pid, 'SIGCONT');
  await server?.stop();
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Socket = { bytesWritten: number; writableLength: number; destroy(): void };
const socketOf = (store: RedisStore) => (store.client as unknown as { stream: Socket }).stream;

/** Until the client has handed the kernel more than `before` bytes and holds nothing unsent (a liveness bound only). */
async function flushedPast(store: RedisStore, before: number): Promise<void> {
  const socket = socketOf(store);
  for (const until = Date.now() + 60_000; Date.now() < until && !(socket.bytesWritten > before && socket.writableLength === 0);) await sleep(5);
}

describe('redis: a connection cut while the server holds a write', () => {
  for (const combine of [false, true]) {
    it(`update(${combine ? '' : '{ combine: false }'}) recognises the write that ran after the cut and applies its mutation once`, async () => {
      const store = await RedisStore.fromUrl(`${server.url}?prefix=cut_${combine}`);
      try {
        await store.put('n', 0);
        let calls = 0;
        let written = Number.POSITIVE_INFINITY;
        const updating = store.update<number>('n', (n) => {
          // Pause the server as this mutation's write is about to be sent: it waits, unread.
          if (++calls === 1) {
            process.kill(pid, 'SIGSTOP');
            written = socketOf(store).bytesWritten;
          }
          return n + 1;
        }, { combine });
        while (written === Number.POSITIVE_INFINITY) await sleep(5);
        // The write has left the client (it sits in the stopped server's receive buffer).
        await flushedPast(store, written);
        // The network drops the connection; the server resumes at once and runs the buffered write.
        socketOf(store).destroy();
        process.kill(pid, 'SIGCONT');
        const entry = await updating;
        expect(entry?.value).toBe(1);
        expect((await store.get<number>('n'))?.value).toBe(1);
        expect(calls).toBe(1);
        expect((await store.history('n')).map((r) => (r as { value?: number }).value)).toEqual([1, 0]);
      } finally {
        process.kill(pid, 'SIGCONT');
        await store.close();
      }
    });
  }

  it('a plain put() cut the same way fails as ambiguous (it may have run), and it did run', async () => {
    const store = await RedisStore.fromUrl(`${server.url}?prefix=cut_put`);
    try {
      const first = await store.put('k', 'a');
      process.kill(pid, 'SIGSTOP');
      const written = socketOf(store).bytesWritten;
      const putting = store.put('k', 'b', { ifRevision: first.revision }).catch((e: unknown) => e);
      await flushedPast(store, written);
      socketOf(store).destroy();
      process.kill(pid, 'SIGCONT');
      const err = (await putting) as { code?: string; transient?: boolean; ambiguous?: boolean };
      expect(err).toMatchObject({ code: 'ERR_BACKEND', transient: true, ambiguous: true });
      expect((await store.get('k'))?.value).toBe('b');
    } finally {
      process.kill(pid, 'SIGCONT');
      await store.close();
    }
  });
});
