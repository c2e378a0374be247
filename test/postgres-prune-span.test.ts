import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { PostgresStore, dropPostgresStore } from '../src/postgres/index.js';
import { pruneSql } from '../src/postgres/sql/sweep.js';
import { PG_URL, TEST_POOL_SIZE } from './support/postgres-pool.js';

// The sweep's prune examines a bounded span of the log per run, so a process that opens a store
// with a long log catches up over several sweeps instead of one statement over all of it.
const prefix = `rk_span_${process.pid.toString(36)}_${Date.now().toString(36)}_`;
const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
afterAll(async () => {
  await dropPostgresStore(pool, { prefix }).catch(() => undefined);
  await pool.end();
});

describe('postgres: the prune statement works through the log one span at a time', () => {
  it('each run examines only keys written in its span, returns the span\'s end as the next mark, and the runs together prune every key', async () => {
    const store = await PostgresStore.fromUrl(PG_URL, { prefix, poolSize: TEST_POOL_SIZE, historyDepth: 2, changeRetentionMs: 0, sweepIntervalMs: 0 });
    try {
      // Revisions 1–30: key a ten times, key b ten times, key c ten times, in that order.
      for (const key of ['a', 'b', 'c']) for (let i = 0; i < 10; i++) await store.put(key, i);
      const head = await store.headRevision();
      // history() answers at most historyDepth changes: the rows are counted in the log itself.
      const count = async (where: string) => Number((await pool.query(`SELECT count(*) AS n, min(revision) AS first FROM ${store.names.changes} WHERE ${where}`)).rows[0].n);
      const first = Number((await pool.query(`SELECT min(revision) AS first FROM ${store.names.changes}`)).rows[0].first);
      const kept = (key: string) => count(`key = '${key}'`);
      const prune = async (mark: number, span: number) => {
        const r = await pool.query(pruneSql(store.names), [mark, 2, 0, span]);
        return { pruned: Number(r.rows[0].pruned), mark: Number(r.rows[0].mark) };
      };
      await new Promise((r) => setTimeout(r, 5));
      let step = await prune(first - 1, 10);
      expect(step).toEqual({ pruned: 8, mark: first + 9 });
      expect([await kept('a'), await kept('b'), await kept('c')]).toEqual([2, 10, 10]);
      step = await prune(step.mark, 10);
      expect(step).toEqual({ pruned: 8, mark: first + 19 });
      expect([await kept('a'), await kept('b'), await kept('c')]).toEqual([2, 2, 10]);
      step = await prune(step.mark, 1_000_000);
      // The last span ends at the sequence's head, not past it.
      expect(step).toEqual({ pruned: 8, mark: head });
      expect([await kept('a'), await kept('b'), await kept('c')]).toEqual([2, 2, 2]);
    } finally {
      await store.close();
    }
  });

  it('one sweep works through several spans when the log grew by more than one since the last', async () => {
    const spanPrefix = `${prefix}b_`;
    const store = await PostgresStore.fromUrl(PG_URL, { prefix: spanPrefix, poolSize: TEST_POOL_SIZE, historyDepth: 1, changeRetentionMs: 0, sweepIntervalMs: 0 });
    try {
      const n = store.names;
      // 120,000 changes written straight into the log (the sweep reads nothing else), older than retention:
      // 120 keys, each written 1,000 times in a run of its own, so each span of the log holds other keys.
      await pool.query(`INSERT INTO ${n.changes} (key, revision, deleted, value, created_revision, updated_at)
        SELECT 'k' || ((i - 1) / 1000), i, false, '\\x31'::bytea, i, 0 FROM generate_series(1, 120000) i`);
      await pool.query(`SELECT setval('${n.seq}', 120000)`);
      await store.sweep();
      const left = await pool.query(`SELECT count(*)::int AS n, min(revision)::int AS oldest FROM ${n.changes}`);
      expect(left.rows[0]).toEqual({ n: 120, oldest: 1000 });
    } finally {
      await store.close();
      await dropPostgresStore(pool, { prefix: spanPrefix }).catch(() => undefined);
    }
  });
});
