/**
 * What this process's update()s last wrote, per store and key: the read an
 * update() of the key may skip (docs/semantics.md, "update()"). A record
 * here is only a guess at the key's state — the write composed on it is
 * guarded by its revision, so a key changed since fails that write and the
 * attempt starts over from a real read. Only a written entry without an
 * expiry is kept (an expired key must read as absent), as a private copy
 * (a caller may change the entry it was answered with), for the
 * LAST_WRITES_KEPT keys written most recently.
 */
import type { Entry, StoredRecord } from './types.js';

export const LAST_WRITES_KEPT = 1_024;

const byStore = new WeakMap<object, Map<string, StoredRecord<unknown>>>();

export function lastWrite(store: object, key: string): StoredRecord<unknown> | undefined {
  return byStore.get(store)?.get(key);
}

export function rememberWrite(store: object, key: string, record: StoredRecord<unknown>): void {
  let kept = byStore.get(store);
  if (!kept) byStore.set(store, (kept = new Map()));
  kept.delete(key);
  kept.set(key, record);
  if (kept.size > LAST_WRITES_KEPT) kept.delete(kept.keys().next().value as string);
}

export function forgetWrite(store: object, key: string): void {
  byStore.get(store)?.delete(key);
}

/** After an update() wrote `entry` (null: nothing): what the next one of the key may start from. A store that reads inside its write has no use for it. */
export function rememberWritten(store: { updateInWrite?: unknown; readsEveryUpdate?: boolean; copyValue?(value: unknown): unknown }, key: string, entry: Entry<unknown> | null): void {
  if (store.updateInWrite !== undefined || store.readsEveryUpdate === true || store.copyValue === undefined) return;
  if (entry === null || entry.expiresAt !== undefined) return forgetWrite(store, key);
  rememberWrite(store, key, { ...entry, value: store.copyValue(entry.value) });
}
