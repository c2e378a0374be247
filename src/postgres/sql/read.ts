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
