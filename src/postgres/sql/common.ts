/** What the statements share: the server's clock, the no-flush switch of a write that wrote nothing, LIKE patterns. */
import type { Names } from '../schema.js';

/**
 * The highest revision the store's sequence has handed out. Read under the sequence's
 * buffer lock (pg_sequence_last_value): a plain SELECT from the sequence reads its tuple without that lock,
 * and a nextval() that WAL-logs ahead sets the tuple to the logged-ahead value (32 more) for the moment of its
 * WAL insert, under the lock. A mark read in that moment took revisions not yet handed out as settled, and the
 * watch passed over those drawn after it (seen in the postmaster-first soak, 2026-12-06: the trace's mark read
 * …957 where the sequence, read under its lock right after on the same connection, stood at …925).
 */
export const lastRevision = (n: Pick<Names, 'seq' | 'seqLiteral'>): string =>
  `coalesce(pg_catalog.pg_sequence_last_value(${n.seqLiteral}::regclass), ${notCalledYet(n)})`;

/**
 * A sequence not called since it was created (or restarted by an operator) stands one below the value it
 * hands out first; pg_sequence_last_value() answers NULL for it, and that value is read from the tuple, without
 * the lock. A first nextval() may be inside its WAL insert as the tuple is read (the logged-ahead value: review
 * of 2026-12-06, with gdb): so the locked read is asked again after the tuple was read — the argument depends
 * on the tuple's value, which orders the two — and the tuple is used only when it still answers NULL, which
 * means no nextval() had begun when the tuple was read (one under way holds the lock the second read waits for).
 */
const notCalledYet = (n: Pick<Names, 'seq' | 'seqLiteral'>): string =>
  `(SELECT coalesce(pg_catalog.pg_sequence_last_value(CASE WHEN t.last_value IS NOT NULL THEN ${n.seqLiteral}::regclass END), t.last_value - 1)
   FROM (SELECT last_value FROM ${n.seq}) t)`;

/** Server clock in ms: TTLs and updatedAt use one clock for every machine. */
export const NOW_MS = `(extract(epoch FROM statement_timestamp()) * 1000)::bigint`;

/**
 * A write that did not happen still took a row lock (WAL-logged, with an
 * xid), so its commit would wait for a WAL flush — an fsync per failed CAS,
 * serialised behind the row lock: that made 64 writers on a hot key crawl.
 * Nothing durable happened, so such a statement turns synchronous_commit off
 * for its own (implicit) transaction: the lock is released without a flush.
 */
export const NO_FLUSH_IF = (cond: string) => `CASE WHEN ${cond} THEN set_config('synchronous_commit', 'off', true) END AS no_flush`;

export function likePrefix(prefix: string): string {
  return likePattern(prefix, true);
}

/** A LIKE pattern (backslash escapes) matching `text` exactly, or as a prefix. */
export function likePattern(text: string, prefix: boolean): string {
  return `${text.replace(/[\\%_]/g, (c) => `\\${c}`)}${prefix ? '%' : ''}`;
}
