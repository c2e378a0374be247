/** What the statements share: the server's clock, the no-flush switch of a write that wrote nothing, LIKE patterns. */

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
