/**
 * A private redis-server whose persistence is switched off loses everything
 * when it restarts: a store must notice (its incarnation marker is gone) and
 * fail every operation with a DataLostError naming the cause, until an
 * operator accepts the loss (acceptLoss()) or the application opens the store again. Also: capabilities.durability follows
 * the server's appendonly / appendfsync, and a counter that went back is
 * caught too. The machine's own redis-server is never touched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { DataLostError, type WatchEvent } from '../../src/core/index.js';
import { RedisStore } from '../../src/redis/index.js';
import { startPrivateRedis, type PrivateServer } from '../support/servers.js';

let server: PrivateServer;
let admin: Redis;

beforeAll(async () => {
  server = await startPrivateRedis();
  admin = new Redis(server.url);
  admin.on('error', () => undefined);
}, 120_000);

afterAll(async () => {
  admin?.disconnect();
  await server?.stop();
}, 60_000);

function isDataLoss(err: unknown): boolean {
  return DataLostError.is(err) && /lost data/.test(err.message);
}

describe('redis: durability and data-loss detection on a private server', () => {
  it('capabilities.durability follows appendonly / appendfsync, and an evicting maxmemory-policy counts as memory', async () => {
    const open = async () => {
      const s = await RedisStore.fromUrl(`${server.url}?prefix=dur`);
      await s.close();
      return [s.capabilities.durability, s.durabilityNote];
    };
    expect(await open()).toEqual(['os-buffered', 'appendonly yes, appendfsync everysec']);
    await admin.config('SET', 'appendfsync', 'always');
    expect(await open()).toEqual(['fsync', 'appendonly yes, appendfsync always']);
    await admin.config('SET', 'maxmemory', '1gb');
    await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
    expect(await open()).toEqual(['memory', expect.stringMatching(/maxmemory-policy allkeys-lru may evict/)]);
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    expect((await open())[0]).toBe('fsync');
    await admin.config('SET', 'maxmemory', '0');
    await admin.config('SET', 'appendonly', 'no');
    expect((await open())[0]).toBe('memory');
    await admin.config('SET', 'appendonly', 'yes');
    await admin.config('SET', 'appendfsync', 'everysec');
  });

  it('a restart without persistence: every operation fails naming the cause until the store is opened again', async () => {
    // From here on nothing reaches the disk: the restart comes back empty.
    await admin.config('SET', 'appendonly', 'no');
    const url = `${server.url}?prefix=loss`;
    const store = await RedisStore.fromUrl(url);
    const watcher = await RedisStore.fromUrl(url);
    const before = await store.put('k', 'before');
    await store.put('other', 1);
    const events: WatchEvent[] = [];
    const watching = (async () => {
      for await (const ev of watcher.watch({ prefix: '', fromRevision: 0 })) events.push(ev);
    })().then(() => 'ended', (err: unknown) => err);
    while (events.length < 2) await new Promise((r) => setTimeout(r, 20));
    expect(store.capabilities.durability).toBe('memory');

    await server.restart();

    // The first call after the restart may still meet the reconnect; the verdict is data loss.
    const first = await store.getRecord('k').catch((e: unknown) => e);
    const err = isDataLoss(first) ? first : await store.getRecord('k').catch((e: unknown) => e);
    expect(isDataLoss(err)).toBe(true);
    expect((err as Error).message).toMatch(/incarnation marker .* is gone/);
    // Latched: reads, writes, update() (no retries: the error is permanent), list, history all fail the same way.
    for (const call of [
      () => store.get('k'),
      () => store.put('k', 'after', { ifRevision: before.revision }),
      () => store.put('fresh', 1),
      () => store.update<number>('n', (n) => (n ?? 0) + 1),
      () => store.list(),
      () => store.history('k'),
      () => store.atomic().set('a', 1).commit(),
    ]) {
      expect(isDataLoss(await call().catch((e: unknown) => e))).toBe(true);
    }
    // The watcher fails the same way instead of waiting on an empty log.
    expect(isDataLoss(await watching)).toBe(true);
    // Nothing was written: the new server holds no key of this store.
    expect(await admin.keys('rk:{loss}:*')).toEqual([]);
    await Promise.all([store.close(), watcher.close()]);

    // Opening again is the deliberate step: the store starts afresh and revisions start again.
    const reopened = await RedisStore.fromUrl(url);
    expect(await reopened.get('k')).toBeNull();
    const again = await reopened.put('k', 'again');
    expect(again.revision).toBeLessThanOrEqual(before.revision);
    await reopened.close();
    await admin.config('SET', 'appendonly', 'yes');
  });

  it('a counter that went back (acknowledged writes lost) is caught as well', async () => {
    const store = await RedisStore.fromUrl(`${server.url}?prefix=back`);
    for (let i = 0; i < 5; i++) await store.put('k', i);
    // What a restart that lost its last writes leaves behind: the same marker, an older counter.
    await admin.hset('rk:{back}:meta', 'rev', '2');
    const err = await store.put('k', 'x').catch((e: unknown) => e);
    expect(isDataLoss(err)).toBe(true);
    expect((err as Error).message).toMatch(/went back from at least 5 to 2/);
    expect((err as DataLostError).details).toMatchObject({ after: 2, upTo: 5 });
    expect(isDataLoss(await store.get('k').catch((e: unknown) => e))).toBe(true);
    // An operator accepts the loss: the store goes on, above every revision it handed out (none reused).
    await store.acceptLoss();
    expect((await store.put('k', 'y')).revision).toBeGreaterThan(5);
    await store.close();
  });

  it('scripts the server forgot (SCRIPT FLUSH, as after a restart) are sent again: EVALSHA falls back on NOSCRIPT', async () => {
    const store = await RedisStore.fromUrl(`${server.url}?prefix=noscript`);
    const a = await store.put('k', 1);
    await admin.script('FLUSH');
    const b = await store.put('k', 2, { ifRevision: a.revision });
    expect(b.revision).toBeGreaterThan(a.revision);
    expect((await store.get('k'))?.value).toBe(2);
    await store.close();
  });
});
