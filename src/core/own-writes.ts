/**
 * What this store object's update()s last wrote, per key: the read the next
 * update() of the key may skip (docs/semantics.md, "update()"). The write
 * composed on it is guarded by that write's revision AND its writer token
 * (UpdatableStore.putOnOwnWrite). A revision alone proves nothing once a
 * store's revisions start over underneath an open store object (dropped and
 * created again, a server on memory restarted): another writer's value can
 * sit at the same revision. A token is a fresh one per attempt, 72 random
 * bits of this process and a counter: a key holds it only if it holds this
 * very write, whose value is the one kept here.
 *
 * An entry is taken when an update() starts from it (its mutations may change
 * the value they are given) and kept again only when a write lands. Kept: the
 * OWN_WRITES_KEPT keys written last, without an expiry (an expired key reads
 * as absent). A key whose guess missed is read first for its next
 * READS_AFTER_MISS update()s: one that other writers keep changing would pay
 * a wasted round trip on every call.
 */
import type { Entry, StoredRecord } from './types.js';

export const OWN_WRITES_KEPT = 64;
export const READS_AFTER_MISS = 8;

interface Kept {
  record: StoredRecord<unknown> | undefined;
  readsFirst: number;
}

const byStore = new WeakMap<object, Map<string, Kept>>();

/** The record of this store object's last update() of `key`, removed from the keeping; undefined: read the key. */
export function takeOwnWrite(store: object, key: string): StoredRecord<unknown> | undefined {
  const kept = byStore.get(store)?.get(key);
  if (kept === undefined) return undefined;
  if (kept.readsFirst > 0) {
    kept.readsFirst--;
    return undefined;
  }
  const record = kept.record;
  kept.record = undefined;
  return record;
}

/** An update()'s write landed: `entry`, written with `writer`, `value` a private copy of its value. */
export function keepOwnWrite(store: object, key: string, entry: Entry<unknown>, writer: string, value: unknown): void {
  if (entry.expiresAt !== undefined) return forgetOwnWrite(store, key);
  let keys = byStore.get(store);
  if (keys === undefined) byStore.set(store, (keys = new Map()));
  const readsFirst = keys.get(key)?.readsFirst ?? 0;
  keys.delete(key);
  keys.set(key, { record: { ...entry, value, writer }, readsFirst });
  if (keys.size > OWN_WRITES_KEPT) keys.delete(keys.keys().next().value as string);
}

/** A write started from the kept record did not land on it: the key moved on. */
export function missedOwnWrite(store: object, key: string): void {
  const kept = byStore.get(store)?.get(key);
  if (kept !== undefined) {
    kept.record = undefined;
    kept.readsFirst = READS_AFTER_MISS;
  }
}

export function forgetOwnWrite(store: object, key: string): void {
  const kept = byStore.get(store)?.get(key);
  if (kept !== undefined) kept.record = undefined;
}
