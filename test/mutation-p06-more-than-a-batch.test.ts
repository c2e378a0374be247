// P06 (src/postgres/batch.ts): group commit sends at most MAX_BATCH (256) writes per statement; the rest wait for
// the next batch. More writes than that arriving in one turn must each be answered (and written).
import { afterAll, expect, it } from 'vitest';
import pg from 'pg';
import { PostgresStore, dropPostgresStore } from '../src/postgres/index.js';

const PG_URL = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test`;
const prefix = `rk_p06_${process.pid.toString(36)}_${Date.now().toString(36)}_`;
afterAll(async () => {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
  await dropPostgresStore(pool, { prefix }).catch(() => undefined);
  await pool.end();
}, 60_000);

it('P06: 600 writes of distinct keys in one turn are all answered and all stored', async () => {
  const store = await PostgresStore.fromUrl(PG_URL, { prefix, poolSize: 4 });
  let answered = 0;
  const writes = Array.from({ length: 600 }, (_, i) => store.put(`k/${i}`, i).then(() => answered++));
  await Promise.race([Promise.all(writes), new Promise((r) => setTimeout(r, 10_000))]);
  const stored = (await store.list({ prefix: 'k/', limit: 1000 })).entries.length;
  console.log(`P06: ${answered} of 600 put() calls answered within 10 s; ${stored} keys stored`);
  expect(answered).toBe(600);
  await store.close().catch(() => undefined);
}, 60_000);
