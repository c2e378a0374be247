/**
 * What this store object's update()s last wrote, per key: the read the next
 * update() of the key may skip (docs/semantics.md, "update()"). The write
 * composed on it is guarded by that write's revision AND its writer token
 * (UpdatableStore.putOnOwnWrite). A revision alone proves nothing once a
 * store's revisions start over underneath an open store object (dropped and
 * created again, a server on memory restarted): another writer's value can
 * sit at the same revision. A token is a fresh one per attempt, 72 random
 * bits of this process and a counter: a key holds it only if it holds this
 * very write.
 *
 * Kept are the bytes the store wrote, decoded when taken: the
 * mutation gets what a read would give, whatever the codec, and nothing it or
 * a caller does to a value reaches what is kept. At most OWN_WRITE_BYTES a
 * value and OWN_WRITES_KEPT keys (the last written) per store object; no write
 * with an expiry (an expired key reads as absent). A key whose guess missed is
 * read first for its next READS_AFTER_MISS update()s, twice as many after each
 * further miss (up to 1,024) until a guess lands: one that other writers keep
 * changing would pay a wasted round trip and a second run of its mutations on
 * every call.
 */
import type { Entry, StoredRecord } from './types.js';

export const OWN_WRITES_KEPT = 64;
export const OWN_WRITE_BYTES = 16 * 1024;
export const READS_AFTER_MISS = 8;
const MOST_READS_AFTER_MISSES = 1_024;

interface Kept {
  record: Omit<Entry<unknown>, 'value'> | undefined;
  bytes: Uint8Array | undefined;
  readsFirst: number;
  /** Guesses missed since one last landed: each doubles the reads first (a key other writers keep changing). */
  misses: number;
}

const byStore = new WeakMap<object, Map<string, Kept>>();
const writtenBytes = new WeakMap<object, Uint8Array>();
const wanted = new WeakSet<object>();

/** The options of an update()'s write: a store that guesses (putOnOwnWrite) notes the bytes it stores (noteWrittenBytes). */
export function wantWrittenBytes<O extends object>(store: GuessingStore, options: O): O {
  if (store.putOnOwnWrite !== undefined) wanted.add(options);
  return options;
}

/**
 * A backend's write notes the bytes it stored with the entry it answers, when its options ask for them
 * (an update()'s write, whose loop takes them back at once: takeWrittenBytes; a caller holding an entry
 * of put() holds no second copy of its value).
 */
export function noteWrittenBytes(options: object, entry: object, bytes: Uint8Array): void {
  if (wanted.has(options)) writtenBytes.set(entry, bytes);
}

export function takeWrittenBytes(entry: object): Uint8Array | undefined {
  const bytes = writtenBytes.get(entry);
  writtenBytes.delete(entry);
  return bytes;
}

/** What guessing needs of a store (UpdatableStore's putOnOwnWrite and decodeOwnWrite). */
interface GuessingStore {
  putOnOwnWrite?: unknown;
  decodeOwnWrite?(bytes: Uint8Array): unknown;
}

/**
 * The record of this store object's last update() of `key`, its value decoded as a read decodes it;
 * undefined: read the key. A value that no longer decodes is not guessed on.
 */
export function takeOwnWrite(store: GuessingStore, key: string): StoredRecord<unknown> | undefined {
  if (store.putOnOwnWrite === undefined || store.decodeOwnWrite === undefined) return undefined;
  const kept = byStore.get(store)?.get(key);
  if (kept === undefined) return undefined;
  if (kept.readsFirst > 0) {
    kept.readsFirst--;
    return undefined;
  }
  const { record, bytes } = kept;
  if (record === undefined || bytes === undefined) return undefined;
  // Taken: of several update()s of the key at once (combine: false), one guesses and the others read —
  // all guessing on one write, all but one would miss, and read, and write again.
  forgetOwnWrite(store, key);
  try {
    return { ...record, value: store.decodeOwnWrite(bytes) };
  } catch {
    return undefined;
  }
}

/** An update()'s write landed (`guessed`: one started from the kept record): `entry`, written with `writer`, `bytes` what the store stored. */
export function keepOwnWrite(store: object, key: string, entry: Entry<unknown>, writer: string, bytes: Uint8Array, guessed: boolean): void {
  if (entry.expiresAt !== undefined || bytes.byteLength > OWN_WRITE_BYTES) return forgetOwnWrite(store, key);
  let keys = byStore.get(store);
  if (keys === undefined) byStore.set(store, (keys = new Map()));
  const before = keys.get(key);
  keys.delete(key);
  const { value: _value, ...record } = entry;
  keys.set(key, { record: { ...record, writer }, bytes, readsFirst: before?.readsFirst ?? 0, misses: guessed ? 0 : (before?.misses ?? 0) });
  if (keys.size > OWN_WRITES_KEPT) keys.delete(keys.keys().next().value as string);
}

/** A write started from the kept record did not land on it: the key moved on. */
export function missedOwnWrite(store: object, key: string): void {
  const kept = byStore.get(store)?.get(key);
  if (kept !== undefined) {
    forgetOwnWrite(store, key);
    kept.readsFirst = Math.min(MOST_READS_AFTER_MISSES, READS_AFTER_MISS << kept.misses);
    kept.misses = Math.min(kept.misses + 1, 16);
  }
}

export function forgetOwnWrite(store: object, key: string): void {
  const kept = byStore.get(store)?.get(key);
  if (kept !== undefined) {
    kept.record = undefined;
    kept.bytes = undefined;
  }
}
