import type { PoolClient } from 'pg';
import { InvalidArgumentError } from '../core/index.js';

/**
 * Table layout of one store (all names carry the store's prefix, inside the
 * store's schema, so several stores share a database):
 *
 * - `<p>kv`       the current record per key: live entry or tombstone.
 *                 (value NULL + deleted for a tombstone; revision 0 is a
 *                 transient, never-committed placeholder used by atomic()
 *                 to lock a key that does not exist yet).
 * - `<p>changes`  one row per committed write (put, delete, expiry): history
 *                 and the change log that watch() reads. Pruned in the
 *                 background past `historyDepth` per key (and older than the
 *                 change retention); `<p>meta.pruned_through` records the
 *                 highest revision ever pruned so a watcher behind it gets
 *                 HistoryGoneError instead of a silent gap.
 * - `<p>revision_seq`  the revision source (one sequence per store). A
 *                 transaction that draws a revision holds a lock on it until
 *                 it ends — what watch() settles on (sql/watch.ts, holdersOf).
 * - `<p>next_revision()`  assigns the transaction an xid, then takes the
 *                 next sequence value.
 * - `<p>watch_mark()`  the observation watch() made in earlier versions (last
 *                 revision handed out, then a fresh xid); kept for processes
 *                 of earlier versions sharing the store.
 * - `<p>schema_migrations`  applied migration versions.
 * - `<p>timelines`  each WAL timeline of the server revkit met (a new one
 *                 after every promotion of a standby), with the sequence
 *                 value found on it and the floor it was raised to.
 * - `<p>losses`   detected losses of acknowledged writes (a revision range
 *                 each), until an operator accepts them (lineage.ts).
 */
export interface Names {
  schema: string;
  prefix: string;
  kv: string;
  changes: string;
  meta: string;
  seq: string;
  seqLiteral: string;
  next: string;
  watchMark: string;
  migrations: string;
  /** Timelines of the server revkit met (loss detection, lineage.ts). */
  timelines: string;
  /** Detected losses of acknowledged writes, until an operator accepts them. */
  losses: string;
  /** LISTEN/NOTIFY channel (an identifier, ≤ 63 bytes). */
  channel: string;
  /** Short tag used in prepared statement names. */
  tag: string;
  lockKey: string;
}

const IDENT = /^[a-z_][a-z0-9_]*$/;

export function names(schema: string, prefix: string): Names {
  if (!IDENT.test(schema) || schema.length > 63) throw new InvalidArgumentError(`postgres schema must match ${IDENT} (at most 63 characters), got ${JSON.stringify(schema)}`);
  if (!(prefix === '' || IDENT.test(prefix)) || prefix.length > 40) {
    throw new InvalidArgumentError(`postgres table prefix must match ${IDENT} (at most 40 characters), got ${JSON.stringify(prefix)}`);
  }
  const q = (n: string) => `"${schema}"."${prefix}${n}"`;
  const tag = fnv1a(`${schema}.${prefix}`);
  return {
    schema,
    prefix,
    kv: q('kv'),
    changes: q('changes'),
    meta: q('meta'),
    seq: q('revision_seq'),
    seqLiteral: `'${q('revision_seq').replace(/'/g, "''")}'`,
    next: q('next_revision'),
    watchMark: q('watch_mark'),
    migrations: q('schema_migrations'),
    timelines: q('timelines'),
    losses: q('losses'),
    channel: `revkit_${tag}`,
    tag,
    lockKey: `revkit:${schema}.${prefix}`,
  };
}

/** 64-bit-ish tag (two FNV-1a rounds with different seeds): distinct stores get distinct statement names. */
function fnv1a(text: string): string {
  const round = (seed: number) => {
    let h = seed;
    for (const b of Buffer.from(text, 'utf8')) {
      h ^= b;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h.toString(36);
  };
  return `${round(0x811c9dc5)}${round(0x01234567)}`;
}

interface Migration {
  version: number;
  name: string;
  sql: (n: Names) => string[];
}

/**
 * Versioned migrations. Append only: never edit a released one, add the
 * next version. Each runs in the migrating transaction, under the store's
 * advisory lock.
 */
export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'kv, changes, meta, revision sequence',
    sql: (n) => [
      `CREATE SEQUENCE IF NOT EXISTS ${n.seq} AS bigint START 1`,
      `CREATE TABLE IF NOT EXISTS ${n.kv} (
         key text COLLATE "C" PRIMARY KEY,
         revision bigint NOT NULL,
         created_revision bigint NOT NULL,
         value bytea,
         deleted boolean NOT NULL,
         updated_at bigint NOT NULL,
         expires_at bigint,
         writer text
       ) WITH (fillfactor = 80)`,
      `CREATE INDEX IF NOT EXISTS "${n.prefix}kv_expiry" ON ${n.kv} (expires_at) WHERE expires_at IS NOT NULL AND NOT deleted`,
      // Indexed columns and predicates must not change on an ordinary put, so that
      // it stays a HOT update (no index writes): key, expires_at and deleted do not.
      `CREATE INDEX IF NOT EXISTS "${n.prefix}kv_tombstones" ON ${n.kv} (key) WHERE deleted`,
      `CREATE TABLE IF NOT EXISTS ${n.changes} (
         key text COLLATE "C" NOT NULL,
         revision bigint NOT NULL,
         deleted boolean NOT NULL,
         value bytea,
         created_revision bigint NOT NULL,
         updated_at bigint NOT NULL,
         expires_at bigint,
         writer text,
         PRIMARY KEY (key, revision)
       )`,
      `CREATE INDEX IF NOT EXISTS "${n.prefix}changes_revision" ON ${n.changes} (revision)`,
      `CREATE TABLE IF NOT EXISTS ${n.meta} (
         id integer PRIMARY KEY CHECK (id = 1),
         pruned_through bigint NOT NULL DEFAULT 0
       )`,
      `INSERT INTO ${n.meta} (id) VALUES (1) ON CONFLICT DO NOTHING`,
      // The xid first, then the sequence value: every transaction holding an
      // allocated-but-uncommitted revision appears in the xip list of any
      // snapshot taken after the allocation (see watch.ts).
      `CREATE OR REPLACE FUNCTION ${n.next}() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
       BEGIN
         PERFORM pg_current_xact_id();
         RETURN nextval(${n.seqLiteral});
       END
       $fn$`,
      // watch(): the highest revision handed out so far, THEN a fresh xid X.
      // Every transaction holding one of those revisions got its xid before
      // its revision, hence before X; once no xid below X is in progress
      // (snapshot xmin ≥ X) they have all committed or aborted. The xid is
      // only a clock: its commit need not wait for a WAL flush.
      // s: sql/common.ts lastRevision written out (importing it here would make an import cycle).
      `CREATE OR REPLACE FUNCTION ${n.watchMark}(OUT s bigint, OUT x text) LANGUAGE plpgsql VOLATILE AS $fn$
       BEGIN
         s := coalesce(pg_catalog.pg_sequence_last_value(${n.seqLiteral}::regclass),
           (SELECT coalesce(pg_catalog.pg_sequence_last_value(CASE WHEN t.last_value IS NOT NULL THEN ${n.seqLiteral}::regclass END), t.last_value - 1)
            FROM (SELECT last_value FROM ${n.seq}) t));
         PERFORM set_config('synchronous_commit', 'off', true);
         x := pg_current_xact_id()::text;
       END
       $fn$`,
    ],
  },
  {
    version: 2,
    name: 'timelines and losses (replication: loss detection after a failover)',
    sql: (n) => [
      `CREATE TABLE IF NOT EXISTS ${n.timelines} (
         timeline bigint PRIMARY KEY,
         seq_at_adoption bigint NOT NULL,
         floor bigint NOT NULL,
         adopted_at timestamptz NOT NULL DEFAULT now()
       )`,
      `CREATE TABLE IF NOT EXISTS ${n.losses} (
         id bigserial PRIMARY KEY,
         timeline bigint NOT NULL,
         after bigint NOT NULL,
         up_to bigint NOT NULL,
         detected_at timestamptz NOT NULL DEFAULT now(),
         accepted_at timestamptz
       )`,
    ],
  },
  {
    version: 3,
    name: 'timelines: the pruning mark at adoption (loss detection checks against it)',
    sql: (n) => [`ALTER TABLE ${n.timelines} ADD COLUMN IF NOT EXISTS pruned_at_adoption bigint`],
  },
];

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

/**
 * Creates or upgrades the schema. Concurrent starters serialise on
 * transaction-scoped advisory locks (first the schema's, then the store's,
 * always in that order), so several processes starting at once against an
 * empty database do not race on CREATE: the first migrates, the others wait
 * and then find nothing left to do.
 */
export async function migrate(client: PoolClient, n: Names): Promise<number[]> {
  const applied: number[] = [];
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`revkit-schema:${n.schema}`]);
    if (n.schema !== 'public') await client.query(`CREATE SCHEMA IF NOT EXISTS "${n.schema}"`);
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [n.lockKey]);
    await client.query(`CREATE TABLE IF NOT EXISTS ${n.migrations} (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await client.query<{ version: number }>(`SELECT version FROM ${n.migrations}`)).rows.map((r) => Number(r.version)));
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      for (const statement of m.sql(n)) await client.query(statement);
      await client.query(`INSERT INTO ${n.migrations} (version, name) VALUES ($1, $2)`, [m.version, m.name]);
      applied.push(m.version);
    }
    await assertSequenceUsable(client, n);
    const newest = Math.max(0, ...done, ...applied);
    if (newest > LATEST_VERSION) {
      throw new InvalidArgumentError(`the postgres store ${n.schema}.${n.prefix}* is at schema version ${newest}, newer than this revkit (${LATEST_VERSION}); upgrade revkit`);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  return applied;
}

/**
 * The store's revision sequence as revkit needs it, checked at every open (also one that does not migrate):
 * there, counting up by 1 (revisions only grow), and with CACHE 1 — a session hands out a cached value without
 * taking the sequence's lock, which is what a watch waits on (sql/watch.ts, holdersOf): with CACHE above 1 a
 * watch would pass over revisions drawn from a cache.
 */
export async function assertSequenceUsable(client: Pick<PoolClient, 'query'>, n: Names): Promise<void> {
  const row = (await client.query(`SELECT seqcache, seqincrement FROM pg_catalog.pg_sequence WHERE seqrelid = to_regclass(${n.seqLiteral})`)).rows[0] as { seqcache: string; seqincrement: string } | undefined;
  if (row === undefined) {
    throw new InvalidArgumentError(`the postgres store ${n.schema}.${n.prefix}* does not exist (its sequence ${n.seq} is missing): open it once without migrate: false to create it`);
  }
  if (Number(row.seqincrement) !== 1) {
    throw new InvalidArgumentError(`the postgres store's sequence ${n.seq} has INCREMENT ${row.seqincrement}: revisions must grow by 1 (ALTER SEQUENCE ${n.seq} INCREMENT 1)`);
  }
  const cache = Number(row.seqcache);
  if (cache > 1) {
    throw new InvalidArgumentError(`the postgres store's sequence ${n.seq} has CACHE ${cache}: values handed out from a session's cache hold no lock, and a watch would pass over them; revkit needs CACHE 1 (ALTER SEQUENCE ${n.seq} CACHE 1)`);
  }
}

/** Drops every object of a store (tests, benchmarks). */
export async function dropStore(client: Pick<PoolClient, 'query'>, n: Names): Promise<void> {
  await client.query(`DROP TABLE IF EXISTS ${n.kv}, ${n.changes}, ${n.meta}, ${n.migrations}, ${n.timelines}, ${n.losses}`);
  await client.query(`DROP FUNCTION IF EXISTS ${n.next}()`);
  await client.query(`DROP FUNCTION IF EXISTS ${n.watchMark}()`);
  await client.query(`DROP SEQUENCE IF EXISTS ${n.seq}`);
}
