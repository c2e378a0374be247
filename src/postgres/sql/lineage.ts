/** What loss detection asks (lineage.ts): the member's timeline, the timelines revkit met, the loss latch. */
import type { Names } from '../schema.js';
import { lastRevision } from './common.js';

/**
 * The member's WAL timeline (the first 8 hex digits of the current WAL file's
 * name) — it changes exactly when a standby is promoted — and whether it is
 * in recovery (a standby: no timeline to ask, and no writes). Also the
 * settings that make the store's durability, as this session has them (a
 * failover or a reload may change them; the same round trip).
 */
export const TIMELINE_SQL = `SELECT pg_is_in_recovery() AS recovery,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END AS tli,
  current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc, current_setting('synchronous_standby_names') AS standbys`;

/** The highest revision the store's sequence handed out (on a promoted standby: the last one logged, prefetch included). */
export function seqLastSql(n: Names): string {
  return `SELECT ${lastRevision(n)} AS s`;
}

export function timelinesSql(n: Names): string {
  return `SELECT timeline, seq_at_adoption, floor, pruned_at_adoption FROM ${n.timelines} ORDER BY timeline`;
}

export function adoptSql(n: Names): string {
  return `INSERT INTO ${n.timelines} (timeline, seq_at_adoption, floor, pruned_at_adoption) VALUES ($1, $2, $3, (SELECT pruned_through FROM ${n.meta} WHERE id = 1))`;
}

/**
 * Moves the sequence up to $1 when it stands below (never down). setval only
 * then: setval to the value just read would move the sequence back over
 * every nextval() of other sessions in between — revisions handed out twice
 * (an acceptLoss() while writers write did that). Callers raise far above
 * the value read (a new timeline: LOSS_GAP) or to a revision the sequence
 * does not reach yet.
 */
export function raiseSeqSql(n: Names): string {
  return `SELECT CASE WHEN $1::bigint > q.s THEN setval(${n.seqLiteral}, $1::bigint) ELSE q.s END AS s
FROM (SELECT ${lastRevision(n)} AS s) q`;
}

/**
 * The told (key, revision)s the member lacks. A revision is there when its change or entry is, or when
 * a later revision of its key from before the promotion is (below $4, the new timeline's floor: a key's
 * revisions commit in order under its row lock, so a member that replayed the later one replayed it).
 * Pruning removes a change only when its key has newer ones, so one pruned before the promotion still
 * has such a witness, or lies at or below $3: the pruning mark when the new timeline was adopted (a
 * tombstone purge removes a key's whole chain and raises the mark). Not the mark of now: a sweep on
 * the promoted member raises it past the floor as soon as it prunes anything there (review, 2026-12-06).
 */
export function missingSql(n: Names): string {
  return `SELECT a.k AS key, a.r AS revision FROM unnest($1::text[], $2::bigint[]) AS a(k, r)
WHERE a.r > $3::bigint
  AND NOT EXISTS (SELECT 1 FROM ${n.changes} c WHERE c.key = a.k AND c.revision >= a.r AND c.revision < $4::bigint)
  AND NOT EXISTS (SELECT 1 FROM ${n.kv} v WHERE v.key = a.k AND v.revision >= a.r AND v.revision < $4::bigint)`;
}

export function recordLossSql(n: Names): string {
  return `INSERT INTO ${n.losses} (timeline, after, up_to) VALUES ($1, $2, $3)`;
}

/** The losses no operator accepted yet, in revision order. */
export function openLossSql(n: Names): string {
  return `SELECT after, up_to, detected_at FROM ${n.losses} WHERE accepted_at IS NULL ORDER BY after, up_to LIMIT 1000`;
}

/** Revisions committed on this member within ($1, $2]: writes that survived, which a reported range must not cover. */
export function presentSql(n: Names): string {
  return `SELECT DISTINCT revision FROM ${n.changes} WHERE revision > $1::bigint AND revision <= $2::bigint ORDER BY revision`;
}

/** Whether a loss range ($1, $2] is recorded at all (accepted or not). */
export function ownLossSql(n: Names): string {
  return `SELECT count(*)::int AS n FROM ${n.losses} WHERE after = $1::bigint AND up_to = $2::bigint`;
}

export function acceptLossSql(n: Names): string {
  return `UPDATE ${n.losses} SET accepted_at = now() WHERE accepted_at IS NULL`;
}
