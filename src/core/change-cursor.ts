import { compareKeys } from './keys.js';

/**
 * A watch's position in a change log ordered by (revision, key): everything
 * up to (rev, key) was read; key null: all of rev (between commits). An
 * atomic commit's rows share one revision and may straddle a page, so a
 * position inside one names the key read last. Keys compare as the logs
 * order them: by UTF-8 bytes (compareKeys), never by UTF-16 code units
 * (`<`), which put U+10000 and up before U+E000–U+FFFF.
 */
export interface ChangeCursor {
  rev: number;
  key: string | null;
}

/** Whether the change (rev, key) lies after the cursor. */
export function isAfterCursor(rev: number, key: string, c: ChangeCursor): boolean {
  return rev > c.rev || (rev === c.rev && c.key !== null && compareKeys(key, c.key) > 0);
}

/** Whether cursor a lies before cursor b. */
export function cursorPrecedes(a: ChangeCursor, b: ChangeCursor): boolean {
  if (a.rev !== b.rev) return a.rev < b.rev;
  if (a.key === b.key) return false;
  return a.key !== null && (b.key === null || compareKeys(a.key, b.key) < 0);
}

/** The index of the first item above `revision` in a change log kept in revision order. */
export function firstAfterRevision(changes: readonly { revision: number }[], revision: number): number {
  let lo = 0;
  let hi = changes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((changes[mid] as { revision: number }).revision <= revision) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
