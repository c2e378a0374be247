import { afterAll } from 'vitest';
import { describeConformance } from '../src/testing/vitest.js';
import pg from 'pg';
import { PostgresStore, dropPostgresStore, type PostgresStoreOptions } from '../src/postgres/index.js';
import { PG_URL, TEST_POOL_SIZE } from './support/postgres-pool.js';

// ---- helpers: every store gets its own table prefix (files run in parallel); all are dropped afterwards.
// Pools of TEST_POOL_SIZE (the connection budget: test/support/postgres-pool.ts); the conformance
// suite closes each test's stores after it.

let counter = 0;
const made = new Set<string>();

/** A fresh table prefix, unique across parallel vitest workers and processes. */
function freshPrefix(tag = 't'): string {
  const p = `rk_${tag}_${process.pid.toString(36)}_${Date.now().toString(36)}_${(counter++).toString(36)}_`;
  made.add(p);
  return p;
}

function freshUrl(tag = 'u', extra = ''): string {
  // The multi-process test's 4 workers and its checker open this URL: 5 pools of TEST_POOL_SIZE.
  return `${PG_URL}?prefix=${freshPrefix(tag)}&poolSize=${TEST_POOL_SIZE}${extra}`;
}

async function freshStore(options: PostgresStoreOptions = {}, tag = 's'): Promise<PostgresStore> {
  return PostgresStore.fromUrl(PG_URL, { prefix: freshPrefix(tag), poolSize: TEST_POOL_SIZE, ...options });
}

function adminPool(): pg.Pool {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
  pool.on('error', () => undefined);
  return pool;
}

/** Drops every store this test file created. */
async function dropAll(): Promise<void> {
  const pool = adminPool();
  try {
    for (const prefix of made) await dropPostgresStore(pool, { prefix }).catch(() => undefined);
    made.clear();
  } finally {
    await pool.end();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

afterAll(dropAll, 60_000);

describeConformance({
  name: 'postgres',
  create: () => freshStore({ sweepIntervalMs: 50 }),
  url: async () => freshUrl('mp'),
  timeoutMs: 30_000,
});
