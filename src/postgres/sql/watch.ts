/** What watch() and headRevision() ask: marks (which revisions are settled), a "from now" start, the change log. */
import type { Names } from '../schema.js';
import { NOW_MS, lastRevision } from './common.js';

/**
 * The transactions that may still commit a revision of this store: every
 * one that drew a revision holds a lock on the store's revision sequence
 * until it ends (nextval() takes RowExclusiveLock and keeps it to the end of
 * the transaction; any mode but the AccessShareLock of a plain read counts).
 * Reading where the sequence stands (lastRevision) takes RowExclusiveLock too,
 * to the end of its transaction: another process's mark shows up here for the
 * moment of its statement (a settle held back by a round), a first timeline
 * adoption for its transaction, and so does any session that reads
 * pg_sequences in a transaction it keeps open (monitoring): that holds every
 * watch back until it ends, as a writer's open transaction would.
 * They are named by virtual transaction id (unique per transaction, also when
 * a backend slot is reused). Transactions of other databases, of other
 * stores and readers never appear here, so they never hold a watch back.
 * A transaction that drew a revision took the lock first, so a revision s
 * read from the sequence *before* this list is taken either belongs to a
 * transaction in the list or to one that had ended — and a transaction drops
 * its locks only after its commit is visible to new snapshots. `dep` makes
 * the subquery correlated to the sequence read of the enclosing query, so it
 * runs after that read (pg_locks reads the lock table, not a snapshot;
 * fast-path locks included).
 */
function holdersOf(n: Names, dep: string): string {
  return `(SELECT coalesce(array_agg(l.virtualtransaction), '{}'::text[]) FROM pg_catalog.pg_locks l
   WHERE l.locktype = 'relation' AND l.relation = ${n.seqLiteral}::regclass
     AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database())
     AND l.granted AND l.mode <> 'AccessShareLock' AND l.pid IS DISTINCT FROM pg_backend_pid() AND ${dep} IS NOT NULL)`;
}

const LAST_REVISION = (n: Names) => `(SELECT ${lastRevision(n)} AS s)`;

/**
 * Watch, part 1 — a mark (s, holders): the highest revision handed out so
 * far, THEN the transactions that may still commit one (see holdersOf).
 * Once none of those holders is left, every revision up to s is settled:
 * committed and visible to any later snapshot, or never to be. When s is
 * not above $1 (already settled) the lock table is not read: holders NULL.
 */
export function markSql(n: Names): string {
  return `SELECT q.s, CASE WHEN q.s > $1::bigint THEN ${holdersOf(n, 'q.s')} END AS holders FROM ${LAST_REVISION(n)} q`;
}

/** Who still holds a revision of this store (headRevision's wait). */
export function holdersSql(n: Names): string {
  return `SELECT ${holdersOf(n, '1')} AS holders`;
}

/**
 * A watch "from now" starts with the statement's snapshot S0, then a mark
 * (s, holders) taken after it, and the server's clock (ms) for the start's
 * time bound: a change visible in S0 happened before the watch's start
 * statement, any other one after it.
 */
export function startSql(n: Names): string {
  return `SELECT pg_current_snapshot()::text AS snap, q.s, ${holdersOf(n, 'q.s')} AS holders,
  (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms,
  (SELECT pruned_through FROM ${n.meta} WHERE id = 1) AS pruned
FROM ${LAST_REVISION(n)} q`;
}

/**
 * A watch "from now", once its start mark is settled: what it delivers at
 * or below the start mark $2 — per key, from the first change that is
 *  - not visible in S0 ($4): written by a transaction still open when the
 *    start statement began, committed after (above $1, a horizon settled
 *    before S0, nothing is), or
 *  - above $5 (a revision the store had seen before watch() was called) and
 *    written by a statement that began at or after $6 (a bound, in server
 *    ms, at or before the moment watch() was called): a write that started
 *    after watch() returned and committed before the start statement,
 * to the start mark, in revision order (a key's later changes come with it,
 * whatever their age, so a key's changes are delivered as a suffix).
 * A row's xmin is a 32-bit xid, widened against the current xmax (such rows
 * are recent). $3 LIKE patterns. (A row written in a subtransaction carries
 * the subxid, which S0 does not list: revkit's own writes use none.)
 * Every row carries `gone` (one row with a null key when nothing is owed):
 * whether the sweep may have pruned a change the start owes while its mark
 * waited to settle — pruned_through (in this snapshot) has moved above both
 * the start's lower bound and where it stood at S0 ($8), the sweep's cut
 * (now − $7, changeRetentionMs) has reached the moment watch() was called
 * ($6), below which no change written after it can be, and a watched key
 * has a change owed here (the sweep removes a change only below newer ones
 * of its key, and a change newer than one written after watch() was called
 * is owed too). Then the watch fails with HistoryGoneError rather than go on
 * without it. (Not covered: an owed change whose newer changes all came
 * after the start mark — historyDepth of them while the start settled — or
 * one written before watch() was called by a transaction still open at S0.)
 */
export function startRowsSql(n: Names): string {
  return `WITH x AS MATERIALIZED (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS ref),
c AS MATERIALIZED (
  SELECT c.key, c.revision, c.deleted, c.value, c.created_revision, c.updated_at, c.expires_at, c.writer,
    (c.revision > $5::bigint AND c.updated_at >= $6::bigint)
      OR NOT pg_visible_in_snapshot((x.ref - ((x.ref - c.xmin::text::bigint) & 4294967295))::text::xid8, $4::text::pg_snapshot) AS fresh
  FROM ${n.changes} c, x
  WHERE c.revision > LEAST($1::bigint, $5::bigint) AND c.revision <= $2::bigint
    AND c.key LIKE ANY ($3::text[])
),
f AS (SELECT key, min(revision) AS first FROM c WHERE fresh GROUP BY key),
m AS MATERIALIZED (
  SELECT pruned_through AS pruned,
    pruned_through > GREATEST($8::bigint, LEAST($1::bigint, $5::bigint)) AND ${NOW_MS} - $7::bigint >= $6::bigint
      AND EXISTS (SELECT 1 FROM f) AS gone
  FROM ${n.meta} WHERE id = 1
)
SELECT m.pruned, m.gone, o.key, o.revision, o.deleted, o.value, o.created_revision, o.updated_at, o.expires_at, o.writer
FROM m LEFT JOIN LATERAL (
  SELECT c.key, c.revision, c.deleted, c.value, c.created_revision, c.updated_at, c.expires_at, c.writer
  FROM c JOIN f ON f.key = c.key AND c.revision >= f.first
) o ON true
ORDER BY o.revision, o.key`;
}

/**
 * Watch, part 2, in a snapshot taken after part 1 (markSql) answered:
 * pruned_through, to detect a gap (HistoryGoneError), and the changes in
 * ((cursorRev, cursorKey), W], in revision order, where W ($1) is settled
 * (every holder of a revision up to W had ended when part 1 looked, so
 * this snapshot sees all of them that committed).
 * $2 cursor revision, $3 cursor key (or null: that revision is complete),
 * $4 LIKE patterns (any of them; backslash is LIKE's default escape), $5 limit.
 * `revision >= $2` stands apart so that it bounds the index scan: inside the
 * OR it did not, and each page after a full one scanned the log from its
 * oldest revision (2.15 s a page at 10 million changes, bench/growth-history.mjs).
 * `exactKeys`: $4 holds keys, not patterns (every watcher watches one key): the
 * primary key (key, revision) answers, where LIKE ANY scanned the log after the
 * cursor (a one-key watch from 0 on a 1M-entry log: 137 ms → 1 ms).
 */
export function watchSql(n: Names, exactKeys = false): string {
  return `WITH m AS MATERIALIZED (SELECT pruned_through AS pruned FROM ${n.meta} WHERE id = 1)
SELECT m.pruned, c.key, c.revision, c.deleted, c.value, c.created_revision, c.updated_at, c.expires_at, c.writer
FROM m LEFT JOIN LATERAL (
  SELECT * FROM ${n.changes} c
  WHERE c.revision >= $2::bigint AND c.revision <= $1::bigint
    AND (c.revision > $2::bigint OR ($3::text IS NOT NULL AND c.key > $3::text))
    AND ${exactKeys ? 'c.key = ANY ($4::text[])' : 'c.key LIKE ANY ($4::text[])'}
  ORDER BY c.revision, c.key LIMIT $5::integer
) c ON true`;
}
