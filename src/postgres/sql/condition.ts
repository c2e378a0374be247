/** The condition of a conditional write, as SQL: what ifAbsent, ifRevision and ifValue mean on a row. */

/**
 * 'liverev': the key is live at exactly this revision — what an ifValue
 * write is guarded by once its value was compared in process (see
 * ConditionalWrites.byValue in ../cas.ts). 'never': ifRevision 0, the key has no row at all
 * (never written; a tombstone fails it) — an INSERT that never updates.
 * 'own': the key holds exactly one write of this process, live at this revision
 * with this writer token — an update() that did not read (core/own-writes.ts);
 * only the lean statement and the batch take it.
 */
export type CondKind = 'none' | 'absent' | 'rev' | 'liverev' | 'value' | 'never' | 'own';

/** The bytes `\u` (a JSON unicode escape, or a backslash before a u: either way, jsonb is not asked). */
const UNICODE_ESCAPE = `'\\x5c75'::bytea`;

export const live = (x: string, now: string) => `(NOT ${x}.deleted AND (${x}.expires_at IS NULL OR ${x}.expires_at > ${now}))`;

/**
 * The condition of a write, evaluated on the row we hold locked (`x`), with
 * the semantics of core's conditionFailure(): an expired entry counts as
 * absent, at its revision. `p` is the condition argument's placeholder.
 * ifValue: with the JSON codec, values are compared as jsonb (deep equality
 * of JSON: object key order ignored, like deepEqual); equal bytes short-cut.
 * jsonb refuses some JSON that JSON.stringify writes (`\u0000`, a lone
 * surrogate `\ud800`): when either side holds a `\u` escape the condition
 * is NULL — undecided, nothing is written — and the caller compares the
 * decoded values in process instead (ConditionalWrites.byValue in ../cas.ts); casting would
 * fail the statement. With any other codec it compares the encoded bytes.
 */
export function cond(kind: CondKind, x: string, now: string, json: boolean, p: string): string {
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
    case 'own':
      throw new Error('the own-write condition has two arguments: ownCond()');
    case 'value':
      return json
        ? `(CASE WHEN NOT ${live(x, now)} THEN false WHEN ${x}.value = ${p}::bytea THEN true
            WHEN position(${UNICODE_ESCAPE} IN ${x}.value) > 0 OR position(${UNICODE_ESCAPE} IN ${p}::bytea) > 0 THEN NULL
            ELSE convert_from(${x}.value, 'UTF8')::jsonb = convert_from(${p}::bytea, 'UTF8')::jsonb END)`
        : `(${live(x, now)} AND ${x}.value = ${p}::bytea)`;
  }
}

/** 'own' on the row `x`: live at revision `p`, written by writer token `w`. */
export const ownCond = (x: string, now: string, p: string, w: string): string => `(${live(x, now)} AND ${x}.revision = ${p}::bigint AND ${x}.writer = ${w}::text)`;
