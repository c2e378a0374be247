import type { Store, StoredRecord } from '../core/index.js';

/** A record as a decision needs it: its revision (null: never written) and its value (null: none, or deleted). */
export interface Known<T> {
  revision: number | null;
  value: T | null;
}

export function knownOf<T>(record: StoredRecord<T> | null): Known<T> {
  if (record === null) return { revision: null, value: null };
  return { revision: record.revision, value: 'deleted' in record ? null : record.value };
}

/** Keys remembered per store: a producer's epoch record and one dedup record per partition it sends on. */
const KEPT_PER_STORE = 4096;

/**
 * The epoch and dedup records this process last read or committed, per store,
 * so that a message's first attempt can decide without reading them. Safe
 * because the commit checks both revisions: if either record moved since
 * (another consumer, a new epoch, a retirement), the commit is refused as a
 * conflict and the next attempt reads them afresh. consumer.ts takes only a
 * decision to apply on what is remembered; every other answer (duplicate,
 * fenced, out of order) is given on a fresh read. Values are kept as JSON text
 * and parsed for each use, so that nothing a caller holds (a result it was
 * returned) can change what a later commit writes.
 */
const rememberedByStore = new WeakMap<Store, Map<string, { revision: number | null; text: string }>>();

export function remembered<T>(store: Store, key: string): Known<T> | undefined {
  const known = rememberedByStore.get(store)?.get(key);
  return known && { revision: known.revision, value: JSON.parse(known.text) as T | null };
}

/** `text`: the value's JSON when the caller has it already. */
export function remember(store: Store, key: string, known: Known<unknown>, text = JSON.stringify(known.value)): void {
  let kept = rememberedByStore.get(store);
  if (!kept) rememberedByStore.set(store, (kept = new Map()));
  kept.delete(key); // set again last: the least recently used goes first
  kept.set(key, { revision: known.revision, text });
  if (kept.size > KEPT_PER_STORE) kept.delete(kept.keys().next().value as string);
}

export function forget(store: Store, ...keys: string[]): void {
  const kept = rememberedByStore.get(store);
  for (const key of keys) kept?.delete(key);
}
