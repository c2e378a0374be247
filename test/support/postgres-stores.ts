/**
 * Stores a test file opens on the machine's PostgreSQL (PG_URL), each under a
 * fresh prefix: every store is closed after its test, every prefix's tables
 * dropped after the file, through one admin pool the file may query too.
 *
 *   const { admin, freshPrefix, store } = postgresStoresThisFileMakes('rk_gc_', 2);
 *   const s = await store(freshPrefix(), { maxValueBytes: 64 });
 */
import { afterAll, afterEach } from 'vitest';
import pg from 'pg';
import { PostgresStore, dropPostgresStore, type PostgresStoreOptions } from '../../src/postgres/index.js';
import { PG_URL, TEST_POOL_SIZE } from './postgres-pool.js';

export interface PostgresStoresOfFile {
  /** A pool of `adminPoolSize` for the file's own queries; ended after the file. */
  admin: pg.Pool;
  /** A prefix no other store uses (tag, pid, time, a counter), dropped after the file. */
  freshPrefix(): string;
  /** A store under `prefix`, without a sweep, with a pool of TEST_POOL_SIZE; closed after the test. */
  store(prefix: string, options?: PostgresStoreOptions): Promise<PostgresStore>;
}

export function postgresStoresThisFileMakes(tag: string, adminPoolSize: number): PostgresStoresOfFile {
  let counter = 0;
  const made = new Set<string>();
  const opened: PostgresStore[] = [];
  const admin = new pg.Pool({ connectionString: PG_URL, max: adminPoolSize });
  admin.on('error', () => undefined);

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close().catch(() => undefined)));
  }, 60_000);

  afterAll(async () => {
    for (const prefix of made) await dropPostgresStore(admin, { prefix }).catch(() => undefined);
    await admin.end();
  }, 60_000);

  return {
    admin,
    freshPrefix() {
      const p = `${tag}${process.pid.toString(36)}_${Date.now().toString(36)}_${(counter++).toString(36)}_`;
      made.add(p);
      return p;
    },
    async store(prefix, options = {}) {
      // Pools of TEST_POOL_SIZE, closed after each test: the connection budget is in test/support/postgres-pool.ts.
      const s = await PostgresStore.fromUrl(PG_URL, { prefix, sweepIntervalMs: 0, poolSize: TEST_POOL_SIZE, ...options });
      opened.push(s);
      return s;
    },
  };
}
