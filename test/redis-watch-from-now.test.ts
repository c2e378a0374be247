/**
 * Redis: a watch "from now" fixes its start when watch() is called (DESIGN §3
 * "from now"), not one round trip later: a write made right after watch()
 * returned — by this store, by another store on the same prefix (another
 * connection, as another process would), or while the watch's own
 * connection is held up so that its start runs late — is delivered.
 * On the shared redis-server; nothing here blocks the server itself: the late
 * start is made by a BLPOP on the watching store's own connection (Redis
 * runs the commands a client sent after a blocking one only once it is
 * unblocked).
 */
import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { WatchEvent } from '../src/core/index.js';
import { RedisStore, START_CLOCK_MARGIN_MS } from '../src/redis/index.js';
import { REDIS_URL, dropStoresAfterAll, freshPrefix } from './redis-helpers.js';

dropStoresAfterAll();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A liveness bound only: the verdicts never depend on it. */
function within<T>(p: Promise<T>, what: () => string, ms = 15_000): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out: ${what()}`)), ms)))]).finally(() => clearTimeout(t));
}

async function until(cond: () => boolean | Promise<boolean>, what: () => string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await sleep(10);
  }
}

/** Who writes first right after watch() returned, and whether this store's connection is busy then; cycled over the rounds. */
const KINDS = [
  { otherFirst: true, busy: true }, { otherFirst: false, busy: true }, { otherFirst: true, busy: true },
  { otherFirst: true, busy: false }, { otherFirst: false, busy: false },
] as const;
const open = (prefix: string) => RedisStore.fromUrl(REDIS_URL, { prefix, sweepIntervalMs: 0 });
const tag = (ev: WatchEvent) => `${ev.key}@${ev.revision}`;

describe('redis: a watch "from now"', () => {
  it('delivers writes made right after watch() returned, before next() was called — by this store and by another store on the same prefix, also while this store\'s connection is busy with a large write (20 rounds)', async () => {
    const prefix = freshPrefix('fnow');
    const s = await RedisStore.fromUrl(REDIS_URL, { prefix, sweepIntervalMs: 0, maxValueBytes: 4 * 1024 * 1024 });
    const other = await open(prefix); // another process's view: a connection of its own
    const large = 'x'.repeat(3 * 1024 * 1024);
    try {
      for (let round = 0; round < 20; round++) {
        const controller = new AbortController();
        const kind = KINDS[round % KINDS.length] as (typeof KINDS)[number];
        // When busy, this store's connection is still sending a large value as watch() is called: whatever
        // the watch sends goes out behind it, while the other store's connection is free.
        const busy = kind.busy ? s.put(`large/${round}`, large) : undefined;
        const it = s.watch({ prefix: `r${round}/`, signal: controller.signal })[Symbol.asyncIterator]();
        try {
          // Immediately after watch() returned, in both orders; next() only afterwards.
          const [first, second] = kind.otherFirst ? [other, s] : [s, other];
          const a = await first.put(`r${round}/a`, round);
          const b = await second.put(`r${round}/b`, round);
          const seen: string[] = [];
          while (seen.length < 2) {
            const r = await within(it.next(), () => `round ${round}: saw ${JSON.stringify(seen)} of r${round}/a@${a.revision}, r${round}/b@${b.revision}`);
            if (r.done) throw new Error('watch ended');
            seen.push(tag(r.value));
          }
          expect(seen, `round ${round}`).toEqual([`r${round}/a@${a.revision}`, `r${round}/b@${b.revision}`]);
          await busy;
        } finally {
          controller.abort();
          await it.return?.();
        }
      }
    } finally {
      await s.close();
      await other.close();
    }
  }, 120_000);

  it('whose start runs late (its connection is held up by a BLPOP) still delivers what another store wrote after watch() returned, and not what this store had seen before', async () => {
    const prefix = freshPrefix('late');
    const s = await open(prefix);
    const other = await open(prefix);
    const admin = new Redis(REDIS_URL);
    const gate = `rk:{${prefix}}:gate`;
    const controller = new AbortController();
    const seen: string[] = [];
    let watching: Promise<void> | undefined;
    let blocked: Promise<unknown> | undefined;
    try {
      const before = await other.put('late/before', 0);
      await s.get('late/before'); // s has seen it: acknowledged before watch(), not delivered
      const id = String(await s.client.client('ID'));
      // s's connection waits in BLPOP: whatever s sends next waits behind it, on the server.
      blocked = s.client.blpop(gate, 0);
      await until(async () => /\bcmd=blpop\b/.test(String(await admin.call('CLIENT', 'LIST', 'ID', id))), () => 'the BLPOP never blocked');
      watching = (async () => {
        for await (const ev of s.watch({ prefix: 'late/', signal: controller.signal })) seen.push(tag(ev));
      })();
      // Written and acknowledged while the watch's start cannot have run yet (it is queued behind the BLPOP)...
      const after = await other.put('late/after', 1);
      // ...and this store's own write, sent after the start.
      const own = s.put('late/own', 2);
      // Held up for longer than the margin: only the measured round trip of the start covers this write.
      await sleep(2 * START_CLOCK_MARGIN_MS);
      expect(seen).toEqual([]);
      await admin.lpush(gate, 'go');
      await blocked;
      const ownEntry = await own;
      await until(() => seen.length >= 2, () => `saw ${JSON.stringify(seen)} of late/after@${after.revision}, late/own@${ownEntry.revision}`);
      expect(before.revision).toBeLessThan(after.revision);
      expect(seen).toEqual([`late/after@${after.revision}`, `late/own@${ownEntry.revision}`]);
    } finally {
      await admin.lpush(gate, 'go').catch(() => undefined);
      await blocked?.catch(() => undefined);
      controller.abort();
      await watching;
      await s.close();
      await other.close();
      admin.disconnect();
    }
  }, 60_000);

  it('does not redeliver what this store had seen before watch() (it starts after that revision at least)', async () => {
    const prefix = freshPrefix('seen');
    const s = await open(prefix);
    const other = await open(prefix);
    const controller = new AbortController();
    try {
      await other.put('k/a', 1);
      await s.put('k/b', 1); // s has seen b@2, so a@1 too: both were acknowledged before watch() was called
      const it = s.watch({ prefix: 'k/', signal: controller.signal })[Symbol.asyncIterator]();
      const next = await other.put('k/c', 1);
      const r = await within(it.next(), () => 'no event');
      expect(r.done).toBe(false);
      expect(tag(r.value as WatchEvent)).toBe(`k/c@${next.revision}`);
      controller.abort();
      await it.return?.();
    } finally {
      controller.abort();
      await s.close();
      await other.close();
    }
  });

  it('trimming the change log keeps the server time of the newest trimmed entry (what a start at the floor is judged by)', async () => {
    const prefix = freshPrefix('trimat');
    const s = await RedisStore.fromUrl(REDIS_URL, { prefix, sweepIntervalMs: 0, changeLogRevisions: 10 });
    const admin = new Redis(REDIS_URL);
    try {
      for (let i = 1; i <= 64; i++) await s.put(`t/${i}`, i);
      const [trimmed, trimmedAt] = await admin.hmget(`rk:{${prefix}}:meta`, 'trimmed', 'trimmedAt');
      expect(Number(trimmed)).toBe(53);
      expect(Number(trimmedAt)).toBe((await s.getRecord('t/53'))?.updatedAt);
      // The log holds revisions 54..64 and nothing below.
      const ids = (await admin.xrange(`rk:{${prefix}}:log`, '-', '+')).map(([id]) => Number(id.split('-')[0]));
      expect(ids).toEqual(Array.from({ length: 11 }, (_, i) => 54 + i));
      // A watch from now on it still works, and delivers what comes next.
      const controller = new AbortController();
      const it = s.watch({ prefix: 't/', signal: controller.signal })[Symbol.asyncIterator]();
      const next = await s.put('t/next', 0);
      const r = await within(it.next(), () => 'no event');
      expect(tag(r.value as WatchEvent)).toBe(`t/next@${next.revision}`);
      controller.abort();
      await it.return?.();
    } finally {
      await s.close();
      admin.disconnect();
    }
  });
});
