/** Reads: one key, several keys, a page of keys, a key's history. */
import type { Names } from '../schema.js';
import { NOW_MS } from './common.js';

export function getSql(n: Names): string {
  return `SELECT revision, created_revision, value, deleted, updated_at, expires_at, writer, ${NOW_MS} AS now FROM ${n.kv} WHERE key = $1::text`;
}

/** getSql for several keys in one statement (reads that arrived together). */
export function getManySql(n: Names): string {
  return `SELECT key, revision, created_revision, value, deleted, updated_at, expires_at, writer, ${NOW_MS} AS now FROM ${n.kv} WHERE key = ANY($1::text[])`;
}

export function listSql(n: Names): string {
  return `SELECT key, revision, created_revision, value, updated_at, expires_at, writer FROM ${n.kv}
WHERE key LIKE $1::text ESCAPE '\\' AND ($2::text IS NULL OR key > $2::text)
  AND NOT deleted AND (expires_at IS NULL OR expires_at > ${NOW_MS})
ORDER BY key LIMIT $3::integer`;
}

export function historySql(n: Names): string {
  return `SELECT key, revision, deleted, value, created_revision, updated_at, expires_at, writer FROM ${n.changes}
WHERE key = $1::text ORDER BY revision DESC LIMIT $2::integer`;
}

/**
 * A write by writer token $2 of key $1 above revision $3, from every change the log keeps (not only the
 * history depth), and whether the log is known to keep every change above $3 (nothing above it was ever
 * pruned: meta.pruned_through). See Reads.findWrite.
 */
export function findWriteSql(n: Names): string {
  return `SELECT c.key, c.revision, c.deleted, c.value, c.created_revision, c.updated_at, c.expires_at, c.writer,
  (SELECT m.pruned_through <= $3::bigint FROM ${n.meta} m WHERE m.id = 1) AS complete
FROM (SELECT 1) AS one LEFT JOIN LATERAL (
  SELECT * FROM ${n.changes} WHERE key = $1::text AND revision > $3::bigint AND writer = $2::text ORDER BY revision LIMIT 1
) c ON true`;
}
