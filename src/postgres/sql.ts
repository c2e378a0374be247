import type { Names } from './schema.js';

/**
 * 'liverev': the key is live at exactly this revision — what an ifValue
 * write is guarded by once its value was compared in process (see
 * PostgresStore.byValue). 'never': ifRevision 0, the key has no row at all
 * (never written; a tombstone fails it) — an INSERT that never updates.
 */
export type CondKind = 'none' | 'absent' | 'rev' | 'liverev' | 'value' | 'never';

/** Server clock in ms: TTLs and updatedAt use one clock for every machine. */
const NOW_MS = `(extract(epoch FROM statement_timestamp()) * 1000)::bigint`;

/**
 * A write that did not happen still took a row lock (WAL-logged, with an
 * xid), so its commit would wait for a WAL flush — an fsync per failed CAS,
 * serialised behind the row lock: that made 64 writers on a hot key crawl.
 * Nothing durable happened, so such a statement turns synchronous_commit off
 * for its own (implicit) transaction: the lock is released without a flush.
 */
const NO_FLUSH_IF = (cond: string) => `CASE WHEN ${cond} THEN set_config('synchronous_commit', 'off', true) END AS no_flush`;

/** The bytes `\u` (a JSON unicode escape, or a backslash before a u: either way, jsonb is not asked). */
const UNICODE_ESCAPE = `'\\x5c75'::bytea`;

const live = (x: string, now: string) => `(NOT ${x}.deleted AND (${x}.expires_at IS NULL OR ${x}.expires_at > ${now}))`;

/**
 * The condition of a write, evaluated on the row we hold locked (`x`), with
 * the semantics of core's conditionFailure(): an expired entry counts as
 * absent, at its revision. `p` is the condition argument's placeholder.
 * ifValue: with the JSON codec, values are compared as jsonb (deep equality
 * of JSON: object key order ignored, like deepEqual); equal bytes short-cut.
 * jsonb refuses some JSON that JSON.stringify writes (`\u0000`, a lone
 * surrogate `\ud800`): when either side holds a `\u` escape the condition
 * is NULL — undecided, nothing is written — and the caller compares the
 * decoded values in process instead (PostgresStore.byValue); casting would
 * fail the statement. With any other codec it compares the encoded bytes.
 */
function cond(kind: CondKind, x: string, now: string, json: boolean, p: string): string {
  switch (kind) {
    case 'none':
      return 'true';
    case 'absent':
      return `NOT ${live(x, now)}`;
    case 'never':
      return 'false';
    case 'rev':
      return `(${x}.revision = ${p}::bigint)`;
    case 'liverev':
      return `(${live(x, now)} AND ${x}.revision = ${p}::bigint)`;
    case 'value':
      return json
        ? `(CASE WHEN NOT ${live(x, now)} THEN false WHEN ${x}.value = ${p}::bytea THEN true
            WHEN position(${UNICODE_ESCAPE} IN ${x}.value) > 0 OR position(${UNICODE_ESCAPE} IN ${p}::bytea) > 0 THEN NULL
            ELSE convert_from(${x}.value, 'UTF8')::jsonb = convert_from(${p}::bytea, 'UTF8')::jsonb END)`
        : `(${live(x, now)} AND ${x}.value = ${p}::bytea)`;
  }
}

/**
 * `pre`: the key's row as of the statement's snapshot, and whether the
 * condition holds on it. Revisions only grow, so when it fails there, the
 * write fails — linearised at the snapshot, inside the statement, reporting
 * the revision current at that instant — without taking any lock (a hot key's
 * stale writers must not queue on its row lock).
 * `cur`: otherwise, the row locked FOR NO KEY UPDATE: under READ COMMITTED
 * the lock waits for a concurrent writer and yields the latest committed
 * version, on which the condition is checked again (in `chk`).
 */
function lockedRow(n: Names, kind: CondKind, json: boolean, p: string): string {
  return `pre AS MATERIALIZED (
  SELECT s.key, s.revision, ${cond(kind, 's', 'n.ms', json, p)} AS ok
  FROM ${n.kv} s, n WHERE s.key = $1::text
),
cur AS MATERIALIZED (
  SELECT k.key, k.revision, k.created_revision, k.deleted, k.expires_at, k.value
  FROM ${n.kv} k WHERE k.key = $1::text AND NOT EXISTS (SELECT 1 FROM pre WHERE NOT pre.ok) FOR NO KEY UPDATE
)`;
}

/**
 * A conditional put in ONE statement. Parameters: $1 key, $2 value (bytea),
 * $3 ttl ms (or null), $4 writer token (or null), $5 the condition argument.
 *
 * - `pre`/`cur` (lockedRow): fail fast on the snapshot, else lock the key's
 *   current row and check the condition on exactly the version we are about
 *   to replace; the revision reported on conflict is that version's (or the
 *   snapshot's): no read-then-write window, no second read.
 * - `upd` replaces the locked row when the condition holds. The revision is
 *   drawn (next_revision()) after the lock was granted, i.e. after the
 *   previous writer of this key committed, so per-key revisions strictly
 *   increase even for concurrent unconditional writes, and because every
 *   revision comes from one sequence a revision is never reused, not after a
 *   delete and not after the tombstone was purged.
 * - `ins` (unconditional and ifAbsent only) runs when no row was visible: a
 *   plain INSERT — a true must-not-exist for ifAbsent. If another writer
 *   created the key after our snapshot, ON CONFLICT locks that row and
 *   re-checks the condition on it (with a fresh revision drawn after the
 *   lock). If that re-check fails, the statement returns found=false and no
 *   write: the caller re-runs the statement, whose new snapshot now sees the
 *   row and classifies the conflict exactly (this happens only when a key is
 *   created concurrently).
 * - `log` appends the change (history + watch) in the same statement.
 */
export function putSql(n: Names, kind: CondKind, json: boolean): string {
  const withInsert = kind === 'none' || kind === 'absent' || kind === 'never';
  return `/*revkit:put*/ WITH n AS MATERIALIZED (SELECT ${NOW_MS} AS ms),
${lockedRow(n, kind, json, '$5')},
chk AS MATERIALIZED (
  SELECT c.key, c.revision, c.created_revision, ${live('c', 'n.ms')} AS live, ${cond(kind, 'c', 'n.ms', json, '$5')} AS ok FROM cur c, n
  UNION ALL SELECT pre.key, pre.revision, NULL, NULL, false FROM pre WHERE NOT pre.ok
),
upd AS (
  UPDATE ${n.kv} t SET (revision, created_revision, value, deleted, updated_at, expires_at, writer) =
    (SELECT r.rev, CASE WHEN chk.live THEN chk.created_revision ELSE r.rev END, $2::bytea, false, n.ms, n.ms + $3::bigint, $4::text
       FROM (SELECT ${n.next}() AS rev) r)
  FROM chk, n WHERE t.key = chk.key AND chk.ok
  RETURNING t.revision, t.created_revision, t.updated_at, t.expires_at
)${withInsert ? `,
ins AS (
  INSERT INTO ${n.kv} AS t (key, revision, created_revision, value, deleted, updated_at, expires_at, writer)
  SELECT $1::text, r.rev, r.rev, $2::bytea, false, n.ms, n.ms + $3::bigint, $4::text
  FROM n CROSS JOIN LATERAL (SELECT ${n.next}() AS rev) r
  WHERE NOT EXISTS (SELECT 1 FROM chk)
  ON CONFLICT (key) DO UPDATE SET (revision, created_revision, value, deleted, updated_at, expires_at, writer) =
    (SELECT r2.rev, CASE WHEN ${live('t', 'excluded.updated_at')} THEN t.created_revision ELSE r2.rev END,
            excluded.value, false, excluded.updated_at, excluded.expires_at, excluded.writer
       FROM (SELECT ${n.next}() AS rev) r2)
  ${kind === 'absent' ? `WHERE NOT ${live('t', 'excluded.updated_at')}` : kind === 'never' ? 'WHERE false' : ''}
  RETURNING t.revision, t.created_revision, t.updated_at, t.expires_at
)` : ''},
w AS (SELECT * FROM upd${withInsert ? ' UNION ALL SELECT * FROM ins' : ''}),
log AS (
  INSERT INTO ${n.changes} (key, revision, deleted, value, created_revision, updated_at, expires_at, writer)
  SELECT $1::text, w.revision, false, $2::bytea, w.created_revision, w.updated_at, w.expires_at, $4::text FROM w
)
SELECT w.revision, w.created_revision, w.updated_at, w.expires_at, chk.revision AS actual, (chk.key IS NOT NULL) AS found, chk.ok,
  ${NO_FLUSH_IF('w.revision IS NULL')}
FROM (SELECT 1) AS one LEFT JOIN w ON true LEFT JOIN chk ON true`;
}

/**
 * putSql for ifRevision, lean: what a single update() writer sends. A plain
 * UPDATE … WHERE revision = $5 is the whole compare-and-swap: a row whose
 * revision differs in the snapshot is not touched (no lock, no xid, no
 * flush), and under READ COMMITTED a row changed after the snapshot is
 * waited for and re-checked on its latest version (EvalPlanQual), which also
 * evaluates SET again, so the revision is drawn after the lock was granted.
 * Measured against the CTE form (bench/postgres-batch-figures.mjs, section
 * 3): about a sixth less server time per write. `actual` is the revision in
 * the statement's snapshot; when it equals $5 yet nothing was written, a
 * concurrent writer got in after the snapshot and the caller asks putSql,
 * which reports the revision it found under the lock.
 * Parameters as putSql: $1 key, $2 value, $3 ttl ms, $4 writer, $5 ifRevision.
 */
export function putRevisionSql(n: Names): string {
  return `/*revkit:put*/ WITH n AS MATERIALIZED (SELECT ${NOW_MS} AS ms),
upd AS (
  UPDATE ${n.kv} t SET (revision, created_revision, value, deleted, updated_at, expires_at, writer) =
    (SELECT r.rev, CASE WHEN ${live('t', 'n.ms')} THEN t.created_revision ELSE r.rev END, $2::bytea, false, n.ms, n.ms + $3::bigint, $4::text
       FROM (SELECT ${n.next}() AS rev, t.key) r)
  FROM n WHERE t.key = $1::text AND t.revision = $5::bigint
  RETURNING t.revision, t.created_revision, t.updated_at, t.expires_at
),
log AS (
  INSERT INTO ${n.changes} (key, revision, deleted, value, created_revision, updated_at, expires_at, writer)
  SELECT $1::text, upd.revision, false, $2::bytea, upd.created_revision, upd.updated_at, upd.expires_at, $4::text FROM upd
)
SELECT upd.revision, upd.created_revision, upd.updated_at, upd.expires_at, s.revision AS actual, (s.key IS NOT NULL) AS found,
  ${NO_FLUSH_IF('upd.revision IS NULL')}
FROM (SELECT 1) AS one LEFT JOIN upd ON true LEFT JOIN ${n.kv} s ON s.key = $1::text`;
}

/**
 * A conditional delete in ONE statement: same locking as putSql. A tombstone
 * is written only when the condition holds and the key is live; a missing,
 * deleted or expired key returns no revision (nothing to delete — an expired
 * key is turned into a tombstone by the sweeper).
 * Parameters: $1 key, $2 writer token, $3 condition argument (ifRevision / ifValue only).
 */
export function deleteSql(n: Names, kind: CondKind, json: boolean): string {
  return `/*revkit:delete*/ WITH n AS MATERIALIZED (SELECT ${NOW_MS} AS ms),
${lockedRow(n, kind, json, '$3')},
chk AS MATERIALIZED (
  SELECT c.key, c.revision, ${live('c', 'n.ms')} AS live, ${cond(kind, 'c', 'n.ms', json, '$3')} AS ok FROM cur c, n
  UNION ALL SELECT pre.key, pre.revision, NULL, false FROM pre WHERE NOT pre.ok
),
upd AS (
  UPDATE ${n.kv} t SET (revision, value, deleted, updated_at, expires_at, writer) =
    (SELECT ${n.next}(), NULL::bytea, true, n.ms, NULL::bigint, $2::text)
  FROM chk, n WHERE t.key = chk.key AND chk.ok AND chk.live
  RETURNING t.revision, t.created_revision, t.updated_at
),
log AS (
  INSERT INTO ${n.changes} (key, revision, deleted, value, created_revision, updated_at, expires_at, writer)
  SELECT $1::text, upd.revision, true, NULL, upd.created_revision, upd.updated_at, NULL, $2::text FROM upd
)
SELECT upd.revision, chk.revision AS actual, chk.ok, (chk.key IS NOT NULL) AS found,
  ${NO_FLUSH_IF('upd.revision IS NULL')}
FROM (SELECT 1) AS one LEFT JOIN upd ON true LEFT JOIN chk ON true`;
}

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
 * Background pruning of the change log: per key, rows beyond the newest
 * `$2` (history depth) that are also older than the retention `$3` ms.
 * Only keys written since revision `$1` are examined (incremental; the
 * next mark stays below any row kept only for its retention). The
 * highest pruned revision is recorded in meta.pruned_through in the same
 * statement, so a watcher never silently skips a pruned change.
 */
export function pruneSql(n: Names): string {
  return `WITH n AS MATERIALIZED (SELECT ${NOW_MS} AS ms),
k AS MATERIALIZED (SELECT DISTINCT key FROM ${n.changes} WHERE revision > $1::bigint),
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
         (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ${n.seq})
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

/**
 * The transactions that may still commit a revision of this store: every
 * one that drew a revision holds a lock on the store's revision sequence
 * until it ends (nextval() takes RowExclusiveLock and keeps it to the end of
 * the transaction; any mode but the AccessShareLock of a plain read counts).
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

const LAST_REVISION = (n: Names) => `(SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END AS s FROM ${n.seq})`;

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
  (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms
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
f AS (SELECT key, min(revision) AS first FROM c WHERE fresh GROUP BY key)
SELECT c.key, c.revision, c.deleted, c.value, c.created_revision, c.updated_at, c.expires_at, c.writer
FROM c JOIN f ON f.key = c.key AND c.revision >= f.first
ORDER BY c.revision, c.key`;
}

/**
 * Watch, part 2, in a snapshot taken after part 1 (markSql) answered:
 * pruned_through, to detect a gap (HistoryGoneError), and the changes in
 * ((cursorRev, cursorKey), W], in revision order, where W ($1) is settled
 * (every holder of a revision up to W had ended when part 1 looked, so
 * this snapshot sees all of them that committed).
 * $2 cursor revision, $3 cursor key (or null: that revision is complete),
 * $4 LIKE patterns (any of them; backslash is LIKE's default escape), $5 limit.
 */
export function watchSql(n: Names): string {
  return `WITH m AS MATERIALIZED (SELECT pruned_through AS pruned FROM ${n.meta} WHERE id = 1)
SELECT m.pruned, c.key, c.revision, c.deleted, c.value, c.created_revision, c.updated_at, c.expires_at, c.writer
FROM m LEFT JOIN LATERAL (
  SELECT * FROM ${n.changes} c
  WHERE (c.revision > $2::bigint OR (c.revision = $2::bigint AND $3::text IS NOT NULL AND c.key > $3::text))
    AND c.revision <= $1::bigint
    AND c.key LIKE ANY ($4::text[])
  ORDER BY c.revision, c.key LIMIT $5::integer
) c ON true`;
}

export function likePrefix(prefix: string): string {
  return likePattern(prefix, true);
}

/** A LIKE pattern (backslash escapes) matching `text` exactly, or as a prefix. */
export function likePattern(text: string, prefix: boolean): string {
  return `${text.replace(/[\\%_]/g, (c) => `\\${c}`)}${prefix ? '%' : ''}`;
}

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
 * live revision of 'liverev'), $7 ifValue bytes, $8 is-delete. One result row per write: the written revision (null:
 * not written), the current revision on conflict, found (a row existed) and ok.
 */
export function batchWriteSql(n: Names, json: boolean): string {
  const anyCond = (x: string) => `(CASE v.kind WHEN 'none' THEN true WHEN 'absent' THEN ${cond('absent', x, 'n.ms', json, '')}
    WHEN 'rev' THEN ${cond('rev', x, 'n.ms', json, 'v.rev')} WHEN 'liverev' THEN ${cond('liverev', x, 'n.ms', json, 'v.rev')}
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
  SELECT * FROM unnest($1::text[], $2::bytea[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bytea[], $8::boolean[])
    AS v(key, value, ttl, writer, kind, rev, cmp, del)
),
pre AS MATERIALIZED (
  SELECT s.key, s.revision, ${anyCond('s')} AS ok FROM v JOIN ${n.kv} s ON s.key = v.key, n
),
cur AS MATERIALIZED (
  SELECT k.key, k.revision, k.created_revision, k.deleted, k.expires_at, k.value
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
