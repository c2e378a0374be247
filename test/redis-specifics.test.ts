import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { ConflictError, DataLostError, HistoryGoneError, InvalidArgumentError, isTombstone, type WatchEvent } from '../src/core/index.js';
import { open } from '../src/open.js';
import { RedisStore, dropRedisStore } from '../src/redis/index.js';
import { CI_MULTI_PROCESS_INCREMENTS, CanaryStore, raceChecks, runMultiProcessCounters } from '../src/testing/index.js';
import { REDIS_URL, dropStoresAfterAll, freshPrefix, freshStore, storeKeys } from './redis-helpers.js';

dropStoresAfterAll();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('redis specifics', () => {
  it('every key of a store carries its hash tag {prefix}: one cluster slot, so every script is legal on a cluster', async () => {
    const prefix = freshPrefix('tag');
    const store = await RedisStore.fromUrl(`${REDIS_URL}?prefix=${prefix}`);
    const admin = new Redis(REDIS_URL);
    try {
      await store.put('a/1', 1, { ttlMs: 60_000 });
      await store.atomic().set('b/é', 2).set('c/😀', 3).commit();
      await store.delete('a/1');
      const keys = await storeKeys(admin, prefix);
      // meta, rec, keys, log and three history lists (the expiry set went with the delete).
      expect(keys.length).toBe(7);
      // Redis hashes only what is between the first { and the next }: the prefix, for every key.
      for (const k of keys) expect(/^[^{]*\{([^}]*)\}/.exec(k)?.[1]).toBe(prefix);
      expect(InvalidArgumentError.is(await RedisStore.fromUrl(`${REDIS_URL}?prefix=a{b}`).catch((e) => e))).toBe(true);
    } finally {
      await store.close();
      admin.disconnect();
    }
  });

  it('open() understands redis:// and the store on an application client leaves that client open', async () => {
    const prefix = freshPrefix('open');
    const viaUrl = await open(`${REDIS_URL}?prefix=${prefix}&historyDepth=3`);
    expect(viaUrl.backend).toBe('redis');
    for (let i = 0; i < 5; i++) await viaUrl.put('h', i);
    expect((await viaUrl.history('h')).map((r) => (r as { value: number }).value)).toEqual([4, 3, 2]);
    await viaUrl.close();
    const client = new Redis(REDIS_URL);
    const onClient = await RedisStore.fromClient(client, { prefix });
    expect((await onClient.get('h'))?.value).toBe(4);
    await onClient.close();
    expect(await client.ping()).toBe('PONG');
    client.disconnect();
  });

  it('dropRedisStore deletes every key of a store, and a store open on it then fails as having lost its data', async () => {
    const prefix = freshPrefix('drop');
    const store = await RedisStore.fromUrl(`${REDIS_URL}?prefix=${prefix}`);
    const admin = new Redis(REDIS_URL);
    try {
      await store.put('a', 1);
      await store.atomic().set('b', 2).delete('a').commit();
      expect(await dropRedisStore(admin, { prefix })).toBeGreaterThanOrEqual(5);
      expect(await storeKeys(admin, prefix)).toEqual([]);
      const err = await store.get('b').catch((e) => e);
      expect(DataLostError.is(err) && /lost data/.test(err.message)).toBe(true);
    } finally {
      await store.close();
      admin.disconnect();
    }
  });

  it('the sweeper judges which keys are due by the server\'s clock, not this process\'s: a client clock ten minutes behind still sweeps an expired key', async () => {
    const prefix = freshPrefix('ttlclock');
    const store = await RedisStore.fromUrl(`${REDIS_URL}?prefix=${prefix}`, { sweepIntervalMs: 0 });
    const realNow = Date.now;
    try {
      await store.put('t', 'v', { ttlMs: 50 });
      while ((await store.get('t')) !== null) await sleep(20);
      Date.now = () => realNow() - 600_000;
      expect(await store.sweepExpired()).toBe(1);
    } finally {
      Date.now = realNow;
      await store.close();
    }
  });

  it('TTL without ABA: an expired key reads as absent at its revision, the sweeper writes a tombstone with a new revision; Redis expiry is never used', async () => {
    const prefix = freshPrefix('ttl');
    const store = await RedisStore.fromUrl(`${REDIS_URL}?prefix=${prefix}`, { sweepIntervalMs: 0 });
    const admin = new Redis(REDIS_URL);
    try {
      const put = await store.put('t', 'v', { ttlMs: 150 });
      const events: WatchEvent[] = [];
      const controller = new AbortController();
      const watching = (async () => {
        for await (const ev of store.watch({ key: 't', fromRevision: put.revision, signal: controller.signal })) events.push(ev);
      })();
      for (const k of await storeKeys(admin, prefix)) expect(await admin.pttl(k)).toBe(-1);
      await sleep(300);
      // Lazily expired: absent, but at the revision of the put, which still guards.
      const read = await store.getRecord('t');
      expect(isTombstone(read) && read.revision === put.revision).toBe(true);
      expect(await store.get('t')).toBeNull();
      // The sweeper turns it into a real tombstone, with a revision of its own, that watchers see.
      expect(await store.sweepExpired()).toBe(1);
      const swept = await store.getRecord('t');
      expect(isTombstone(swept) && swept.revision > put.revision).toBe(true);
      // A writer still holding the put's revision now loses: no ABA.
      expect(ConflictError.is(await store.put('t', 'late', { ifRevision: put.revision }).catch((e) => e))).toBe(true);
      while (events.length < 1) await sleep(20);
      controller.abort();
      await watching;
      expect(events[0]).toMatchObject({ type: 'delete', key: 't', revision: swept?.revision });
      expect(await store.sweepExpired()).toBe(0);
    } finally {
      await store.close();
      admin.disconnect();
    }
  });

  it('watch() from a revision the change log no longer holds throws HistoryGoneError; from a recent one it works', async () => {
    const store = await freshStore({ changeLogRevisions: 50 });
    try {
      for (let i = 0; i < 300; i++) await store.put(`g/${i % 7}`, i);
      const iterate = async (fromRevision: number) => {
        const seen: number[] = [];
        for await (const ev of store.watch({ prefix: 'g/', fromRevision })) {
          seen.push(ev.revision);
          if (seen.length === 10) break;
        }
        return seen;
      };
      const gone = await iterate(1).catch((e) => e);
      expect(HistoryGoneError.is(gone)).toBe(true);
      expect(await iterate(290)).toEqual([291, 292, 293, 294, 295, 296, 297, 298, 299, 300]);
    } finally {
      await store.close();
    }
  });

  it('caught-up watches share one blocking connection (named revkit-watch:<prefix>) and each gets every change', async () => {
    const prefix = freshPrefix('many');
    const store = await RedisStore.fromUrl(`${REDIS_URL}?prefix=${prefix}`);
    const admin = new Redis(REDIS_URL);
    const controller = new AbortController();
    try {
      const from = (await store.put('m/0', 0)).revision;
      const seen = Array.from({ length: 20 }, () => [] as number[]);
      const watching = seen.map(async (revs) => {
        for await (const ev of store.watch({ prefix: 'm/', fromRevision: from, signal: controller.signal })) revs.push(ev.revision);
      });
      await sleep(300);
      const written: number[] = [];
      for (let i = 1; i <= 5; i++) {
        written.push((await store.put(`m/${i}`, i)).revision);
        await sleep(50);
      }
      const until = Date.now() + 10_000;
      while (seen.some((revs) => revs.length < 5) && Date.now() < until) await sleep(20);
      expect(seen).toEqual(seen.map(() => written));
      const clients = (await admin.client('LIST')) as string;
      expect(clients.split('\n').filter((line) => line.includes(` name=revkit-watch:${prefix} `)).length).toBe(1);
      controller.abort();
      await Promise.all(watching);
    } finally {
      controller.abort();
      await store.close();
      admin.disconnect();
    }
  });

  it('list() pages by UTF-8 byte order across many keys and skips expired ones', async () => {
    const store = await freshStore();
    try {
      const keys = Array.from({ length: 600 }, (_, i) => `l/${String(i).padStart(4, '0')}`).concat(['l/z', 'l/é', 'l/😀', 'l/Z']);
      for (const k of keys) await store.put(k, k);
      await store.put('l/expired', 1, { ttlMs: 1 });
      await sleep(20);
      const listed: string[] = [];
      let after: string | undefined;
      do {
        const page = await store.list({ prefix: 'l/', limit: 97, ...(after === undefined ? {} : { after }) });
        listed.push(...page.entries.map((e) => e.key));
        after = page.cursor;
      } while (after !== undefined);
      expect(listed).toEqual([...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    } finally {
      await store.close();
    }
  });

  it('ifValue compares decoded values (key order in objects does not matter) and loses to a changed value', async () => {
    const store = await freshStore();
    try {
      await store.put('v', { a: 1, b: [1, 2] });
      const ok = await store.put('v', { a: 2 }, { ifValue: { b: [1, 2], a: 1 } });
      expect(ok.value).toEqual({ a: 2 });
      expect(ConflictError.is(await store.put('v', 3, { ifValue: { a: 1 } }).catch((e) => e))).toBe(true);
      expect(await store.delete('v', { ifValue: { a: 2 } })).toBeGreaterThan(ok.revision);
    } finally {
      await store.close();
    }
  });
});

// Every lost-update test must catch the check-then-write canary, on Redis too.
describe('the canary over redis is caught', () => {
  it('by the multi-process counter part (4 processes × 16 writers, at the size the conformance suite runs)', async () => {
    const url = `${REDIS_URL}?prefix=${freshPrefix('canary')}`;
    const verify = await open(url);
    try {
      const report = await runMultiProcessCounters(`canary:${url}`, verify, { processes: 4, writers: 16, increments: CI_MULTI_PROCESS_INCREMENTS });
      expect(report.lost + report.duplicated).toBeGreaterThan(0);
    } finally {
      await verify.close();
    }
  }, 120_000);

  for (const [name, check] of Object.entries(raceChecks)) {
    it(`by "${name}"`, async () => {
      const canary = new CanaryStore(await freshStore());
      await expect(check(canary)).rejects.toThrow();
      await canary.close();
    });
  }
});
