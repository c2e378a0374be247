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
import { HistoryGoneError } from '../src/core/index.js';
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

  // ---------------------------------------------------------------- a small change log
  // The start reaches back START_CLOCK_MARGIN_MS (plus the round trip) before watch(); when more revisions than the
  // log keeps were written in that window, the reach-back runs into trimmed history. What was trimmed there was
  // written before watch() was called: nothing the watch owes, so it starts at the floor instead of failing.

  it('with a small changeLogRevisions written steadily by other connections, starts without HistoryGoneError and delivers every write from the start on — one made after watch() returned included — in order, commits whole (several rounds)', async () => {
    const KEEP = 100;
    const RATE = 2; // revisions per ms at most: > (KEEP + 64) per margin, so the reach-back overruns the log, but KEEP
    // revisions still last ~50 ms — longer than a start's round trip, so that no write made after watch() is trimmed.
    const prefix = freshPrefix('small');
    const options = { prefix, sweepIntervalMs: 0, changeLogRevisions: KEEP };
    const s = await RedisStore.fromUrl(REDIS_URL, options);
    const writers = await Promise.all([0, 1, 2].map(() => RedisStore.fromUrl(REDIS_URL, options)));
    const marking = await RedisStore.fromUrl(REDIS_URL, options);
    // Rounds until 3 of them overran the log (a loaded machine writes fewer revisions within the margin,
    // and overruns less often), 20 at most; every round is checked in full either way.
    const WANTED_OVERRUNS = 3;
    const MAX_ROUNDS = 20;
    let overran = 0;
    try {
      // revision → the keys its commit wrote, and its server time (NaN: not noted)
      const commits = new Map<number, { keys: string[]; at: number }>();
      for (let round = 0; round < MAX_ROUNDS && overran < WANTED_OVERRUNS; round++) {
        let stop = false;
        let n = 0;
        const t0 = performance.now();
        const hot = writers.map((w, j) => (async () => {
          while (!stop) {
            if (n > (performance.now() - t0) * RATE) {
              await sleep(2);
              continue;
            }
            const i = n++;
            if (i % 3 === 0) {
              // an atomic commit of three keys: its writes must arrive together
              const keys = [`w${j}/a${i % 7}`, `w${j}/b${i % 7}`, `w${j}/c${i % 7}`];
              const tx = w.atomic();
              for (const k of keys) tx.set(k, i);
              const { revision } = await tx.commit();
              commits.set(revision, { keys, at: Number.NaN });
            } else {
              const key = `w${j}/p${i % 11}`;
              const e = await w.put(key, i);
              commits.set(e.revision, { keys: [key], at: e.updatedAt });
            }
          }
        })());
        const controller = new AbortController();
        const events: WatchEvent[] = [];
        let failure: unknown;
        try {
          await sleep(START_CLOCK_MARGIN_MS + 100);
          const it = s.watch({ prefix: '', signal: controller.signal })[Symbol.asyncIterator]();
          const marker = await marking.put(`marker/${round}`, round); // made after watch() returned
          commits.set(marker.revision, { keys: [`marker/${round}`], at: marker.updatedAt });
          // Until every write of commit `upTo` has arrived (or a later revision).
          const pull = async (upTo: number) => {
            const wanted = commits.get(upTo)?.keys.length ?? 1;
            const has = () => (events.at(-1)?.revision ?? 0) > upTo || events.filter((e) => e.revision === upTo).length >= wanted;
            while (!has()) {
              const r = await within(it.next(), () => `round ${round}: saw up to ${events.at(-1)?.revision} of ${upTo}`);
              if (r.done) throw new Error('watch ended');
              events.push(r.value);
            }
          };
          try {
            await pull(marker.revision);
            stop = true;
            await Promise.all(hot);
            await pull(Math.max(...commits.keys()));
          } catch (err) {
            failure = err;
          }
          // Revisions written within the margin before the marker (after watch() returned): the log keeps KEEP to KEEP + 63.
          const recent = [...commits].filter(([, c]) => c.at >= marker.updatedAt - START_CLOCK_MARGIN_MS).map(([r]) => r);
          if (marker.revision - Math.min(...recent) > KEEP + 64) overran++;
          // No HistoryGoneError (nor any other failure)...
          expect(failure, `round ${round}`).toBeUndefined();
          // ...the write made after watch() returned is delivered...
          expect(events.map(tag), `round ${round}`).toContain(tag({ key: `marker/${round}`, revision: marker.revision } as WatchEvent));
          // ...and from the first event on, every commit, in revision order, each whole and once.
          const revisions = [...new Set(events.map((e) => e.revision))];
          const first = revisions[0] as number;
          const last = Math.max(...commits.keys());
          expect(revisions, `round ${round}: revisions in order, none skipped`).toEqual(Array.from({ length: last - first + 1 }, (_, i) => first + i));
          for (const revision of revisions) {
            const got = events.filter((e) => e.revision === revision).map((e) => e.key);
            expect(got.sort(), `round ${round}: commit ${revision} whole`).toEqual([...(commits.get(revision)?.keys ?? ['?'])].sort());
          }
          expect(first, `round ${round}: starts before the write made after watch()`).toBeLessThanOrEqual(marker.revision);
        } finally {
          stop = true;
          await Promise.all(hot);
          controller.abort();
        }
      }
      // The case is the one meant: in some rounds more revisions than the log keeps were written within the margin.
      expect(overran, 'rounds where the reach-back overran the change log').toBeGreaterThanOrEqual(1);
    } finally {
      await s.close();
      for (const w of writers) await w.close();
      await marking.close();
    }
  }, 400_000);

  it('whose reach-back window was trimmed — more revisions than the log keeps written shortly before watch() — starts at the floor and delivers what follows', async () => {
    const KEEP = 20; // the log keeps 20 to 83 revisions
    const prefix = freshPrefix('floor');
    const options = { prefix, sweepIntervalMs: 0, changeLogRevisions: KEEP };
    const s = await RedisStore.fromUrl(REDIS_URL, options);
    const other = await RedisStore.fromUrl(REDIS_URL, options);
    const admin = new Redis(REDIS_URL);
    const controller = new AbortController();
    try {
      // A burst of 150 revisions by another connection, within the margin before watch() on a quiet machine, all acknowledged before it.
      const burst = await Promise.all(Array.from({ length: 150 }, (_, i) => other.put(`f/${i % 10}`, i)));
      const trimmed = Number(await admin.hget(`rk:{${prefix}}:meta`, 'trimmed'));
      expect(trimmed).toBeGreaterThan(0);
      await sleep(30); // the newest trimmed entry is then clearly older than watch(), by any clock rounding
      const it = s.watch({ prefix: 'f/', signal: controller.signal })[Symbol.asyncIterator]();
      const marker = await other.put('f/after', 1);
      const seen: number[] = [];
      while (seen.at(-1) !== marker.revision) {
        const r = await within(it.next(), () => `saw ${seen.length} events up to ${seen.at(-1)}, not f/after@${marker.revision}`);
        if (r.done) throw new Error('watch ended');
        seen.push(r.value.revision);
      }
      // From the floor on: every kept revision of the burst (a courtesy), then the write made after watch() —
      // except, on a loaded machine, burst revisions stamped more than the margin before the write made after
      // watch(): those were written before the start's reach-back, and a watch from now need not deliver them.
      const first = seen[0] as number;
      expect(first).toBeGreaterThan(trimmed);
      const skipped = burst.filter((e) => e.revision > trimmed && e.revision < first);
      for (const e of skipped) expect(e.updatedAt, `revision ${e.revision} left out`).toBeLessThan(marker.updatedAt - START_CLOCK_MARGIN_MS);
      expect(seen).toEqual(Array.from({ length: marker.revision - first + 1 }, (_, i) => first + i));
    } finally {
      controller.abort();
      await s.close();
      await other.close();
      admin.disconnect();
    }
  });

  it('whose start runs after the log was trimmed past the moment watch() was called throws HistoryGoneError, saying so truly', async () => {
    const KEEP = 20;
    const prefix = freshPrefix('gone');
    const options = { prefix, sweepIntervalMs: 0, changeLogRevisions: KEEP };
    const s = await RedisStore.fromUrl(REDIS_URL, options);
    const other = await RedisStore.fromUrl(REDIS_URL, options);
    const admin = new Redis(REDIS_URL);
    const gate = `rk:{${prefix}}:gate`;
    const controller = new AbortController();
    let blocked: Promise<unknown> | undefined;
    try {
      const id = String(await s.client.client('ID'));
      blocked = s.client.blpop(gate, 0);
      await until(async () => /\bcmd=blpop\b/.test(String(await admin.call('CLIENT', 'LIST', 'ID', id))), () => 'the BLPOP never blocked');
      const it = s.watch({ prefix: 'g/', signal: controller.signal })[Symbol.asyncIterator]();
      const first = it.next();
      first.catch(() => undefined);
      // Written after watch() was called, while its start waits behind the BLPOP: more than the log keeps.
      await Promise.all(Array.from({ length: 150 }, (_, i) => other.put(`g/${i % 10}`, i)));
      const trimmed = Number(await admin.hget(`rk:{${prefix}}:meta`, 'trimmed'));
      await admin.lpush(gate, 'go');
      await blocked;
      const err = await within(first.then(() => undefined, (e: unknown) => e), () => 'the watch neither failed nor delivered');
      expect(err).toBeInstanceOf(HistoryGoneError);
      const message = (err as Error).message;
      expect(message).toMatch(/the change log was trimmed past the moment watch\(\) was called/);
      expect(message).toMatch(new RegExp(`newest trimmed revision is ${trimmed} and it was written \\d+ ms after that moment`));
      expect(message).toContain(`oldest kept revision is ${trimmed + 1}`);
    } finally {
      await admin.lpush(gate, 'go').catch(() => undefined);
      await blocked?.catch(() => undefined);
      controller.abort();
      await s.close();
      await other.close();
      admin.disconnect();
    }
  });
});
