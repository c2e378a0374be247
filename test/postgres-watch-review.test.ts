import { describe, expect, it } from 'vitest';
import pg from 'pg';
import type { WatchEvent } from '../src/core/index.js';
import type { PostgresStore } from '../src/postgres/index.js';
import { PG_URL } from './support/postgres-pool.js';
import { postgresStoresThisFileMakes } from './support/postgres-stores.js';

// Review of the PostgreSQL watch (round 11): each case failed on the code before it.
const { admin, freshPrefix, store } = postgresStoresThisFileMakes('rk_wrv_', 2);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function collect(s: PostgresStore, options: Parameters<PostgresStore['watch']>[0]) {
  const ac = new AbortController();
  const got: { events: WatchEvent[]; error?: unknown } = { events: [] };
  const done = (async () => {
    try {
      for await (const e of s.watch({ ...options, signal: ac.signal })) got.events.push(e);
    } catch (err) {
      got.error = err;
    }
  })();
  return { got, stop: async () => { ac.abort(); await done; } };
}

async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await sleep(20);
}

describe('postgres watch review (round 11)', () => {
  it('a watch "from now" whose start waits to settle while the sweep prunes a change written after watch() returned fails with HistoryGoneError, never skips it', async () => {
    const prefix = freshPrefix();
    const options = { historyDepth: 1, changeRetentionMs: 0, sweepIntervalMs: 0 };
    const watching = await store(prefix, { ...options, poolSize: 3 });
    const writer = await store(prefix, options);
    const locker = new pg.Client({ connectionString: PG_URL });
    const holder = new pg.Client({ connectionString: PG_URL });
    await locker.connect();
    await holder.connect();
    const other = collect(watching, { prefix: 'x/', fromRevision: 0 });
    try {
      await writer.put('k', 0);
      await sleep(200);
      // The hub's next query waits on the meta table: the "from now" watch below gets its start later.
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${watching.names.meta} IN ACCESS EXCLUSIVE MODE`);
      await writer.put('x/wake', 1);
      await sleep(300);
      const w = collect(watching, { key: 'k' });
      const first = await writer.put('k', 1); // after watch() returned: owed to the watch
      await writer.put('k', 2);
      // A revision held open elsewhere keeps the start from settling while the sweep prunes `first`.
      await holder.query('BEGIN');
      await holder.query(`SELECT nextval('${watching.names.seq}')`);
      await locker.query('COMMIT');
      await sleep(300);
      await writer.sweep();
      const pruned = Number((await admin.query(`SELECT pruned_through FROM ${watching.names.meta}`)).rows[0].pruned_through);
      expect(pruned).toBeGreaterThanOrEqual(first.revision);
      await holder.query('ROLLBACK');
      const last = await writer.put('k', 3);
      await until(() => w.got.error !== undefined || w.got.events.some((e) => e.revision === last.revision));
      await w.stop();
      if (w.got.error === undefined) {
        // Delivered after all (the sweep ran before the start was taken): then every change after watch() is there.
        expect(w.got.events.map((e) => e.revision)).toContain(first.revision);
      } else {
        expect((w.got.error as { code?: string }).code).toBe('ERR_HISTORY_GONE');
      }
    } finally {
      await other.stop();
      await locker.query('ROLLBACK').catch(() => undefined);
      await holder.query('ROLLBACK').catch(() => undefined);
      await locker.end();
      await holder.end();
    }
  });

  it('the sweep passes the revisions a failover\'s raise skips at once: a key written after the raise is pruned by the next sweeps, not 17 minutes later', async () => {
    const s = await store(freshPrefix(), { historyDepth: 1, changeRetentionMs: 0, sweepIntervalMs: 0 });
    const rows = async () => Number((await admin.query(`SELECT count(*) AS n FROM ${s.names.changes} WHERE key = 'k'`)).rows[0].n);
    for (let i = 0; i < 5; i++) await s.put('k', i);
    await s.sweep();
    expect(await rows()).toBe(1);
    // What Lineage.adopt does on a new timeline: the sequence jumps a billion revisions.
    await admin.query(`SELECT setval('${s.names.seq}', (SELECT last_value FROM ${s.names.seq}) + 1000000000)`);
    for (let i = 0; i < 6; i++) await s.put('k', 10 + i);
    for (let i = 0; i < 3; i++) await s.sweep();
    expect(await rows()).toBe(1);
  });

  it('a change this store cannot decode ends the watches of its key only; a watch of other keys goes on', async () => {
    const s = await store(freshPrefix(), { sweepIntervalMs: 0 });
    const good = collect(s, { prefix: 'good/', fromRevision: 0 });
    const bad = collect(s, { key: 'bad/x', fromRevision: 0 });
    try {
      await s.put('good/1', 1);
      await until(() => good.got.events.length === 1);
      // Another application's row: not JSON.
      await admin.query(`WITH r AS (SELECT ${s.names.next}() AS rev) INSERT INTO ${s.names.changes} (key, revision, deleted, value, created_revision, updated_at) SELECT 'bad/x', rev, false, '\\xff00'::bytea, rev, 0 FROM r`);
      const after = await s.put('good/2', 2);
      await until(() => good.got.events.some((e) => e.revision === after.revision) && bad.got.error !== undefined);
      expect(good.got.error).toBeUndefined();
      expect(good.got.events.map((e) => e.key)).toEqual(['good/1', 'good/2']);
      expect((bad.got.error as { code?: string }).code).toBe('ERR_BACKEND');
    } finally {
      await good.stop();
      await bad.stop();
    }
  });
});
