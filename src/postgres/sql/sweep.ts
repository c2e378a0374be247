/** Background work: TTL expiry, change-log pruning (history depth, retention), tombstone purge. */
import type { Names } from '../schema.js';
import { NOW_MS, lastRevision } from './common.js';

/**
 * Background TTL removal: expired entries become tombstones with a new
 * revision and a delete change (what watchers see). SKIP LOCKED: rows being
 * written are left for the next round; the row lock re-checks expiry on the
 * latest version, so a key rewritten meanwhile is left alone.
 */
export function expireSql(n: Names): string {
  return `WITH n AS MATERIALIZED (SELECT ${NOW_MS} AS ms),
due AS MATERIALIZED (
  SELECT k.key FROM ${n.kv} k, n WHERE k.expires_at <= n.ms AND NOT k.deleted
  ORDER BY k.expires_at LIMIT $1::integer FOR NO KEY UPDATE OF k SKIP LOCKED
),
w AS (
  UPDATE ${n.kv} t SET (revision, value, deleted, updated_at, expires_at, writer) = (SELECT ${n.next}(), NULL::bytea, true, n.ms, NULL::bigint, NULL::text)
  FROM due, n WHERE t.key = due.key AND NOT t.deleted AND t.expires_at <= n.ms
  RETURNING t.key, t.revision, t.created_revision, t.updated_at
),
log AS (
  INSERT INTO ${n.changes} (key, revision, deleted, value, created_revision, updated_at, expires_at, writer)
  SELECT key, revision, true, NULL, created_revision, updated_at, NULL, NULL FROM w
)
SELECT count(*)::integer AS expired FROM w`;
}

/**
 * Revisions of the log one prune statement examines. Measured (/tmp script: 1M-entry log, 100,000 keys, first
 * sweep from mark 0): all of it in one statement 2.6–3.0 s (14.3 s at 10M, bench/growth-history.mjs); 50,000
 * revisions 1.5–1.7 s, whatever the length of the log — the cost is one index probe per key written in the span.
 */
export const PRUNE_SPAN = 50_000;

/**
 * Background pruning of the change log: per key, rows beyond the newest
 * `$2` (history depth) that are also older than the retention `$3` ms.
 * Only keys written in revisions `$1` < r ≤ `$1 + $4` are examined
 * (incremental, and bounded: a process that opens a store with a long log
 * catches up over several sweeps instead of one statement over all of it;
 * the next mark stays below any row kept only for its retention). The
 * highest pruned revision is recorded in meta.pruned_through in the same
 * statement, so a watcher never silently skips a pruned change.
 */
export function pruneSql(n: Names): string {
  return `WITH n AS MATERIALIZED (SELECT ${NOW_MS} AS ms),
k AS MATERIALIZED (SELECT DISTINCT key FROM ${n.changes} WHERE revision > $1::bigint AND revision <= $1::bigint + $4::bigint),
cut AS MATERIALIZED (
  SELECT k.key, (SELECT c.revision FROM ${n.changes} c WHERE c.key = k.key ORDER BY c.revision DESC OFFSET $2::integer LIMIT 1) AS rev FROM k
),
d AS (
  DELETE FROM ${n.changes} c USING cut, n
  WHERE cut.rev IS NOT NULL AND c.key = cut.key AND c.revision <= cut.rev AND c.updated_at < n.ms - $3::bigint
  RETURNING c.revision
),
m AS (
  UPDATE ${n.meta} SET pruned_through = GREATEST(pruned_through, (SELECT max(revision) FROM d))
  WHERE id = 1 AND EXISTS (SELECT 1 FROM d)
)
SELECT (SELECT count(*) FROM d)::integer AS pruned,
       LEAST(
         (SELECT min(c.revision) - 1 FROM ${n.changes} c JOIN cut ON c.key = cut.key AND c.revision <= cut.rev, n WHERE c.updated_at >= n.ms - $3::bigint),
         ${lastRevision(n)},
         -- A span with no change in it (the revisions a failover's raise skips, lineage.ts) is passed at once, to below the next change.
         GREATEST($1::bigint + $4::bigint, (SELECT min(c.revision) - 1 FROM ${n.changes} c WHERE c.revision > $1::bigint))
       ) AS mark`;
}

/**
 * Tombstone purge: tombstones older than `$1` ms disappear from kv together
 * with their key's change rows (up to the tombstone), recorded in
 * meta.pruned_through. A re-created key draws a fresh revision from the
 * sequence, so no revision is ever reused.
 */
export function purgeSql(n: Names): string {
  return `WITH n AS MATERIALIZED (SELECT ${NOW_MS} AS ms),
p AS (
  DELETE FROM ${n.kv} k USING n WHERE k.key IN (
    SELECT key FROM ${n.kv}, n WHERE deleted AND revision > 0 AND updated_at < n.ms - $1::bigint LIMIT 1000 FOR UPDATE SKIP LOCKED
  ) AND k.deleted AND k.revision > 0
  RETURNING k.key, k.revision
),
d AS (
  DELETE FROM ${n.changes} c USING p WHERE c.key = p.key AND c.revision <= p.revision RETURNING c.revision
),
m AS (
  UPDATE ${n.meta} SET pruned_through = GREATEST(pruned_through, (SELECT max(revision) FROM d))
  WHERE id = 1 AND EXISTS (SELECT 1 FROM d)
)
SELECT (SELECT count(*) FROM p)::integer AS purged`;
}
