/** Group commit's statement: many conditional puts and deletes of distinct keys at once (see ../batch.ts). */
import type { Names } from '../schema.js';
import { NOW_MS, NO_FLUSH_IF } from './common.js';
import { cond, live, ownCond } from './condition.js';

/**
 * Many conditional puts and deletes of DISTINCT keys in ONE statement (one
 * round trip, one transaction, one commit flush), each row with its own
 * condition and its own outcome — the same steps as putSql/deleteSql, per row:
 * `pre` fails a row on the snapshot without a lock; `cur` locks the other
 * rows' current versions in key order (two batches never wait on each other
 * in a cycle); `revs` draws each row's revision after its lock was granted;
 * `upd` writes rows that exist, `ins_n`/`ins_a` insert keys that did not
 * (unconditional / ifAbsent), with putSql's ON CONFLICT re-check (its
 * subquery names `t` so it runs, and draws, once per conflicting row); `log`
 * appends every write with its writer token.
 * Parameters (arrays, one element per write): $1 key, $2 value (null for a
 * delete), $3 ttl ms, $4 writer, $5 kind (CondKind), $6 ifRevision (and the
 * live revision of 'liverev' and 'own'), $7 ifValue bytes, $8 is-delete, $9 the writer token of 'own'. One result row per write: the written revision (null:
 * not written), the current revision on conflict, found (a row existed) and ok.
 */
export function batchWriteSql(n: Names, json: boolean): string {
  const anyCond = (x: string) => `(CASE v.kind WHEN 'none' THEN true WHEN 'absent' THEN ${cond('absent', x, 'n.ms', json, '')}
    WHEN 'rev' THEN ${cond('rev', x, 'n.ms', json, 'v.rev')} WHEN 'liverev' THEN ${cond('liverev', x, 'n.ms', json, 'v.rev')}
    WHEN 'own' THEN ${ownCond(x, 'n.ms', 'v.rev', 'v.own')}
    ELSE ${cond('value', x, 'n.ms', json, 'v.cmp')} END)`;
  const insert = (kind: 'none' | 'absent') => `INSERT INTO ${n.kv} AS t (key, revision, created_revision, value, deleted, updated_at, expires_at, writer)
  SELECT q.key, q.rev, q.rev, q.value, false, q.ms, q.ms + q.ttl, q.writer FROM (
    SELECT v.key, v.value, v.ttl, v.writer, n.ms, ${n.next}() AS rev FROM v, n
    WHERE v.kind = '${kind}' AND NOT v.del AND NOT EXISTS (SELECT 1 FROM chk WHERE chk.key = v.key) ORDER BY v.key OFFSET 0
  ) q
  ON CONFLICT (key) DO UPDATE SET (revision, created_revision, value, deleted, updated_at, expires_at, writer) =
    (SELECT r2.rev, CASE WHEN ${live('t', 'excluded.updated_at')} THEN t.created_revision ELSE r2.rev END,
            excluded.value, false, excluded.updated_at, excluded.expires_at, excluded.writer
       FROM (SELECT ${n.next}() AS rev, t.key) r2)
  ${kind === 'absent' ? `WHERE NOT ${live('t', 'excluded.updated_at')}` : ''}
  RETURNING t.key, t.revision, t.created_revision, t.updated_at, t.expires_at`;
  return `/*revkit:batch*/ WITH n AS MATERIALIZED (SELECT ${NOW_MS} AS ms),
v AS MATERIALIZED (
  SELECT * FROM unnest($1::text[], $2::bytea[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bytea[], $8::boolean[], $9::text[])
    AS v(key, value, ttl, writer, kind, rev, cmp, del, own)
),
pre AS MATERIALIZED (
  SELECT s.key, s.revision, ${anyCond('s')} AS ok FROM v JOIN ${n.kv} s ON s.key = v.key, n
),
cur AS MATERIALIZED (
  SELECT k.key, k.revision, k.created_revision, k.deleted, k.expires_at, k.value, k.writer
  FROM ${n.kv} k JOIN v ON k.key = v.key
  WHERE NOT EXISTS (SELECT 1 FROM pre WHERE pre.key = v.key AND NOT pre.ok)
  ORDER BY k.key FOR NO KEY UPDATE OF k
),
chk AS MATERIALIZED (
  SELECT c.key, c.revision, c.created_revision, ${live('c', 'n.ms')} AS live, ${anyCond('c')} AS ok FROM cur c JOIN v ON v.key = c.key, n
  UNION ALL SELECT pre.key, pre.revision, NULL, NULL, false FROM pre WHERE NOT pre.ok
),
revs AS MATERIALIZED (
  SELECT chk.key, ${n.next}() AS rev FROM chk JOIN v ON v.key = chk.key WHERE chk.ok AND (NOT v.del OR chk.live) ORDER BY chk.key
),
upd AS (
  UPDATE ${n.kv} t SET revision = r.rev,
    created_revision = CASE WHEN chk.live AND NOT v.del THEN chk.created_revision WHEN v.del THEN t.created_revision ELSE r.rev END,
    value = v.value, deleted = v.del, updated_at = n.ms, expires_at = CASE WHEN v.del THEN NULL ELSE n.ms + v.ttl END, writer = v.writer
  FROM revs r JOIN chk ON chk.key = r.key JOIN v ON v.key = r.key, n WHERE t.key = r.key
  RETURNING t.key, t.revision, t.created_revision, t.updated_at, t.expires_at
),
ins_n AS (${insert('none')}),
ins_a AS (${insert('absent')}),
w AS (SELECT * FROM upd UNION ALL SELECT * FROM ins_n UNION ALL SELECT * FROM ins_a),
log AS (
  INSERT INTO ${n.changes} (key, revision, deleted, value, created_revision, updated_at, expires_at, writer)
  SELECT w.key, w.revision, v.del, v.value, w.created_revision, w.updated_at, w.expires_at, v.writer FROM w JOIN v ON v.key = w.key
)
SELECT v.key, w.revision, w.created_revision, w.updated_at, w.expires_at, c.revision AS actual, (c.key IS NOT NULL) AS found, c.ok,
  ${NO_FLUSH_IF('NOT EXISTS (SELECT 1 FROM w)')}
FROM v LEFT JOIN w ON w.key = v.key LEFT JOIN chk c ON c.key = v.key`;
}
