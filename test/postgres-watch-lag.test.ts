import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { WatchEvent } from '../src/core/index.js';
import { PostgresStore, dropPostgresStore } from '../src/postgres/index.js';
import { PG_URL, TEST_POOL_SIZE } from './support/postgres-pool.js';

// A watch catching up a backlog (from an old revision) and watches at the head are served by
// separate pages of the one hub: the live ones get a new change in the round after it settles,
// not after the backlog has been read page by page (500 changes a page).
const prefix = `rk_wl_${process.pid.toString(36)}_${Date.now().toString(36)}_`;
const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
afterAll(async () => {
  await dropPostgresStore(pool, { prefix }).catch(() => undefined);
  await pool.end();
});

const BULK_COMMITS = 40;
const KEYS_PER_COMMIT = 1000;

async function fillBacklog(store: PostgresStore): Promise<number> {
  let last = 0;
  for (let c = 0; c < BULK_COMMITS; c++) {
    const batch = store.atomic();
    for (let k = 0; k < KEYS_PER_COMMIT; k++) batch.set(`bulk/${String(k).padStart(4, '0')}`, c);
    last = (await batch.commit()).revision;
  }
  return last;
}

async function next(it: AsyncIterator<WatchEvent>): Promise<WatchEvent> {
  const r = await it.next();
  if (r.done) throw new Error('watch ended');
  return r.value;
}

describe('postgres: a watch catching up a backlog does not hold back live watches', () => {
  it('a live watch gets a new change while a watch from revision 0 is still reading 80 pages of backlog; both get every change in order', async () => {
    const store = await PostgresStore.fromUrl(PG_URL, { prefix, poolSize: TEST_POOL_SIZE, sweepIntervalMs: 0 });
    const controller = new AbortController();
    try {
      const bulkHead = await fillBacklog(store);
      const live = store.watch({ prefix: 'live/', signal: controller.signal })[Symbol.asyncIterator]();
      // The live watch has started once it delivers a write made after watch() was called.
      const first = await store.put('live/0', 0);
      expect((await next(live)).revision).toBe(first.revision);

      const lagging = store.watch({ prefix: 'bulk/', fromRevision: 0, signal: controller.signal })[Symbol.asyncIterator]();
      let laggingSeen = 0;
      let lastSeen = { rev: 0, key: '' };
      let outOfOrder = 0;
      const draining = (async () => {
        while (laggingSeen < BULK_COMMITS * KEYS_PER_COMMIT) {
          const e = await next(lagging);
          if (e.revision < lastSeen.rev || (e.revision === lastSeen.rev && e.key <= lastSeen.key)) outOfOrder++;
          lastSeen = { rev: e.revision, key: e.key };
          laggingSeen++;
        }
      })();
      while (laggingSeen === 0) await new Promise((r) => setImmediate(r));

      const second = await store.put('live/1', 1);
      const event = await next(live);
      const seenWhenLiveDelivered = laggingSeen;
      expect(event).toMatchObject({ key: 'live/1', revision: second.revision });
      // Before the change, the live watch waited for the backlog: it got live/1 only after all 40,000.
      expect(seenWhenLiveDelivered).toBeLessThan(BULK_COMMITS * KEYS_PER_COMMIT);

      await draining;
      expect(outOfOrder).toBe(0);
      expect(lastSeen).toEqual({ rev: bulkHead, key: `bulk/${String(KEYS_PER_COMMIT - 1).padStart(4, '0')}` });
    } finally {
      controller.abort();
      await store.close();
    }
  }, 120_000);

  it('a one-key watch from revision 0 opened beside a prefix watch at the head gets exactly its key\'s changes, then live ones', async () => {
    const store = await PostgresStore.fromUrl(PG_URL, { prefix: `${prefix}k_`, poolSize: TEST_POOL_SIZE, sweepIntervalMs: 0 });
    const controller = new AbortController();
    try {
      const mine: number[] = [];
      for (let i = 0; i < 1200; i++) {
        if (i % 97 === 0) {
          const batch = store.atomic();
          for (let k = 0; k < 600; k++) batch.set(`noise/${k}`, i);
          mine.push((await batch.set('k', i).commit()).revision);
        } else if (i % 5 === 0) mine.push((await store.put('k', i)).revision);
        else await store.put(`noise/${i % 50}`, i);
      }
      const everything = store.watch({ prefix: '', signal: controller.signal })[Symbol.asyncIterator]();
      const started = await store.put('noise/start', 0);
      expect((await next(everything)).revision).toBe(started.revision);

      const key = store.watch({ key: 'k', fromRevision: 0, signal: controller.signal })[Symbol.asyncIterator]();
      const got: number[] = [];
      for (const _ of mine) got.push((await next(key)).revision);
      expect(got).toEqual(mine);
      const live = await store.put('k', 'live');
      expect(await next(key)).toMatchObject({ key: 'k', revision: live.revision });
      const seen = await next(everything);
      expect(seen).toMatchObject({ key: 'k', revision: live.revision });
    } finally {
      controller.abort();
      await store.close();
    }
  }, 120_000);
});
