import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { WatchEvent } from '../src/core/index.js';
import { PostgresStore, dropPostgresStore } from '../src/postgres/index.js';
import { PG_URL, TEST_POOL_SIZE } from './support/postgres-pool.js';

// When every open watch is of one key, the watch query asks for those keys (key = ANY, the primary key)
// instead of LIKE patterns (a scan of the log after the cursor); the answer must be the same.
const prefix = `rk_kw_${process.pid.toString(36)}_${Date.now().toString(36)}_`;
const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
afterAll(async () => {
  await dropPostgresStore(pool, { prefix }).catch(() => undefined);
  await pool.end();
});

async function take(it: AsyncIterator<WatchEvent>, count: number): Promise<Array<[string, number]>> {
  const seen: Array<[string, number]> = [];
  while (seen.length < count) {
    const next = await it.next();
    if (next.done) break;
    seen.push([next.value.key, next.value.revision]);
  }
  return seen;
}

describe('postgres: watches of single keys', () => {
  it('several key watches from old revisions get exactly their keys\' changes, atomic commits included; a prefix watch joining changes nothing', async () => {
    const store = await PostgresStore.fromUrl(PG_URL, { prefix, poolSize: TEST_POOL_SIZE, sweepIntervalMs: 0 });
    try {
      const log: Array<[string, number]> = [];
      for (let i = 0; i < 300; i++) {
        if (i % 50 === 10) {
          const { revision } = await store.atomic().set('a', i).set('b', i).set(`other/${i}`, i).commit();
          log.push(['a', revision], ['b', revision], [`other/${i}`, revision]);
        } else {
          const key = i % 7 === 0 ? 'a' : i % 11 === 0 ? 'b' : `other/${i % 13}`;
          log.push([key, (await store.put(key, i)).revision]);
        }
      }
      const controller = new AbortController();
      const from = (log[40] as [string, number])[1];
      const want = (key: string, after: number) => log.filter(([k, r]) => k === key && r > after);
      const a = store.watch({ key: 'a', fromRevision: 0, signal: controller.signal })[Symbol.asyncIterator]();
      const b = store.watch({ key: 'b', fromRevision: from, signal: controller.signal })[Symbol.asyncIterator]();
      expect(await take(a, want('a', 0).length)).toEqual(want('a', 0));
      expect(await take(b, want('b', from).length)).toEqual(want('b', from));
      // A prefix watch joins (the query goes back to patterns); the key watches go on with the live changes.
      const all = store.watch({ prefix: 'other/', fromRevision: from, signal: controller.signal })[Symbol.asyncIterator]();
      const others = log.filter(([k, r]) => k.startsWith('other/') && r > from);
      expect(await take(all, others.length)).toEqual(others);
      const { revision } = await store.atomic().set('a', 'live').set('b', 'live').commit();
      expect(await take(a, 1)).toEqual([['a', revision]]);
      expect(await take(b, 1)).toEqual([['b', revision]]);
      controller.abort();
    } finally {
      await store.close();
    }
  });
});
