import { deepEqual } from './equal.js';
import type { FailedCheck } from './errors.js';
import { isTombstone, type Condition, type StoredRecord } from './types.js';

/**
 * Evaluates a write condition against the current record, for backends that
 * check conditions in-process while holding their own lock (memory, SQLite,
 * file). Returns the failed check, or null when the write may go ahead.
 * An expired entry counts as absent, at its revision.
 */
export function conditionFailure(key: string, current: StoredRecord | null, cond: Condition, now = Date.now()): FailedCheck | null {
  const live = current !== null && !isTombstone(current) && !(current.expiresAt !== undefined && current.expiresAt <= now);
  const actual = current === null ? null : current.revision;
  if (cond.ifAbsent) return live ? { key, expected: 'absent', actual } : null;
  // ifRevision 0: never written — no record at all, not even a tombstone (update()'s create guard:
  // unlike ifAbsent it can never be satisfied again once the key was written, so a cut create cannot land late).
  if (cond.ifRevision !== undefined) return (actual ?? 0) === cond.ifRevision ? null : { key, expected: cond.ifRevision, actual };
  if (cond.ifValue !== undefined) return live && deepEqual((current as { value: unknown }).value, cond.ifValue) ? null : { key, expected: 'value', actual };
  return null;
}
