/** atomic(): lock every key of the batch, then write it all with one revision. */
import type { Names } from '../schema.js';
import { NOW_MS } from './common.js';

/** atomic(), step 1: lock every existing row the batch touches, in key order (no deadlock between batches). */
export function atomicLockSql(n: Names): string {
  return `SELECT key, revision, created_revision, deleted, expires_at, ${NOW_MS} AS now FROM ${n.kv}
WHERE key = ANY($1::text[]) AND revision > 0 ORDER BY key FOR NO KEY UPDATE`;
}

/**
 * atomic(), step 2: placeholders (revision 0, a tombstone nobody ever sees)
 * lock the keys that do not exist yet, so a concurrent create waits for us.
 * They are overwritten by the batch's writes or deleted before COMMIT.
 */
export function atomicPlaceholderSql(n: Names): string {
  return `INSERT INTO ${n.kv} (key, revision, created_revision, value, deleted, updated_at)
SELECT k, 0, 0, NULL, true, 0 FROM unnest($1::text[]) AS k ORDER BY k
ON CONFLICT (key) DO NOTHING RETURNING key`;
}

/** atomic() that writes nothing: its placeholders go (no revision is drawn). */
export function atomicUnplaceSql(n: Names): string {
  return `DELETE FROM ${n.kv} WHERE key = ANY($1::text[]) AND revision = 0`;
}

/** atomic(), step 3: all writes with one revision, drawn after every lock was granted. */
export function atomicWriteSql(n: Names): string {
  return `WITH n AS MATERIALIZED (SELECT ${NOW_MS} AS ms),
r AS MATERIALIZED (SELECT ${n.next}() AS rev),
v AS (SELECT * FROM unnest($1::text[], $2::bytea[], $3::boolean[], $4::bigint[], $5::boolean[]) AS v(key, value, del, ttl, keep_created)),
w AS (
  UPDATE ${n.kv} t SET revision = r.rev,
    created_revision = CASE WHEN v.keep_created AND NOT v.del THEN t.created_revision ELSE r.rev END,
    value = v.value, deleted = v.del, updated_at = n.ms,
    expires_at = CASE WHEN v.del THEN NULL ELSE n.ms + v.ttl END, writer = NULL
  FROM v, r, n WHERE t.key = v.key
  RETURNING t.key, t.revision, t.deleted, t.value, t.created_revision, t.updated_at, t.expires_at
),
log AS (
  INSERT INTO ${n.changes} (key, revision, deleted, value, created_revision, updated_at, expires_at, writer)
  SELECT key, revision, deleted, value, created_revision, updated_at, expires_at, NULL FROM w
),
gone AS (DELETE FROM ${n.kv} p WHERE p.key = ANY($6::text[]) AND p.revision = 0)
SELECT r.rev AS revision, (SELECT count(*) FROM w) AS written FROM r`;
}
