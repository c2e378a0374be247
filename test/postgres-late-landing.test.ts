/**
 * Issue 27.1 on a real PostgreSQL: a write whose client connection is cut while
 * the statement waits on a row lock keeps running on the server and commits
 * after the caller has re-read (seeing the old revision) and written again.
 * The caller must recognise that write by its token, not apply its mutation
 * a second time. Deterministic: the lock is held until both the cut write and
 * the retry wait behind it, and PostgreSQL grants a row lock in arrival order.
 */
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { PostgresStore, dropPostgresStore } from '../src/postgres/index.js';
import { startCutProxy } from './support/cut-proxy.js';
import { lockWaiters } from './support/lock-waiters.js';
import { PG_URL } from './support/postgres-pool.js';

const PG_USER = process.env.PGUSER ?? 'root';
const made: string[] = [];

afterAll(async () => {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
  for (const prefix of made) await dropPostgresStore(pool, { prefix }).catch(() => undefined);
  await pool.end();
}, 60_000);


describe('PostgreSQL: a write cut from its client commits after the caller retried', () => {
  for (const combine of [true, false]) {
    it(`update() (combine: ${combine}) applies its mutation once and answers with the write that committed`, async () => {
      const prefix = `rk_late_${process.pid.toString(36)}_${Date.now().toString(36)}_${combine ? 'c' : 'a'}_`;
      made.push(prefix);
      const proxy = await startCutProxy(5432);
      const store = await PostgresStore.fromUrl(`postgres://${PG_USER}@127.0.0.1:${proxy.port}/test`, { prefix });
      const locker = new pg.Client(PG_URL);
      await locker.connect();
      try {
        await store.put('counter', 0);
        await locker.query('BEGIN');
        await locker.query(`SELECT 1 FROM "public"."${prefix}kv" WHERE key = 'counter' FOR UPDATE`);

        const outcome = store.update<number>('counter', (n) => (n ?? 0) + 1, { combine, deadlineMs: 120_000 }).then((e) => e, (err: unknown) => err);
        await lockWaiters(1, prefix, { tries: 1500 });
        proxy.cut(); // the client hears "connection lost"; its UPDATE still waits on the lock inside PostgreSQL
        await lockWaiters(2, prefix, { tries: 1500 }); // the caller re-read the old revision and wrote again
        await locker.query('COMMIT');

        const answer = await outcome;
        expect((await store.get<number>('counter'))?.value, 'the increment was applied twice').toBe(1);
        expect(answer).toMatchObject({ value: 1 });
        const history = await store.history<number>('counter');
        expect(history.map((r) => ('value' in r ? r.value : null))).toEqual([1, 0]);
        expect((answer as { revision: number }).revision).toBe(history[0]?.revision);
      } finally {
        await locker.query('ROLLBACK').catch(() => undefined);
        await locker.end();
        await store.close();
        await proxy.close();
      }
    }, 150_000);
  }
});
