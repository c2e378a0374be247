import { randomBytes } from 'node:crypto';
import { BackendError } from './errors.js';
import { DataLostError } from './feature-errors.js';
import type { Store, StoredRecord } from './types.js';
import { answerBy, type StopSignal } from './waiting.js';

// 72 random bits per process, then a counter: unique across processes and restarts without a
// crypto call per update().
const PROCESS_TAG = randomBytes(9).toString('base64url');
let writerCounter = 0;

/** The token an update() attempt writes with, by which it finds its own write after a lost acknowledgement. */
export function newWriterToken(): string {
  return `${PROCESS_TAG}_${(writerCounter++).toString(36)}`;
}

export type OwnWriteVerdict<T> =
  | { state: 'committed'; record: StoredRecord<T> }
  /** It did not commit and no longer can: the key moved past its guard without it. */
  | { state: 'absent' }
  /** Not committed yet, and its guard still holds: it may yet land, whatever its call answered. */
  | { state: 'pending' }
  /** It may have committed under later writes that history no longer reaches. */
  | { state: 'unknown' };

/**
 * Was the write carrying `writer`, guarded by revision `base`, committed?
 * Looks at the record just read, then back through history until below
 * `base` (one call with a large limit; backends cap it at what they keep).
 */
export async function lookForOwnWrite<T>(
  store: Pick<Store, 'history' | 'capabilities'> & FindsWrites, key: string, read: StoredRecord<T> | null, writer: string, base: number, deadline: number, signal: StopSignal | undefined,
): Promise<OwnWriteVerdict<T>> {
  if (read && read.writer === writer && read.revision > base) return { state: 'committed', record: read };
  if ((read?.revision ?? 0) <= base) return { state: 'pending' };
  if (!store.capabilities.history) return { state: 'unknown' };
  let past: StoredRecord<T>[];
  try {
    // Bounded like every store call of the loop: a history read that never answers must not hold the caller.
    past = await answerBy(store.history<T>(key, { limit: HISTORY_LOOKBACK }), deadline, signal, false);
  } catch (err) {
    return cannotTell(err);
  }
  const own = past.find((r) => r.writer === writer && r.revision > base);
  if (own) return { state: 'committed', record: own };
  if (past.some((r) => r.revision <= base)) return { state: 'absent' };
  // History keeps a key's last writes only; a write guarded by an old revision (update()'s own-write guess,
  // own-writes.ts) may lie beyond it, where a store's change log may still tell.
  if (store.findWrite === undefined) return { state: 'unknown' };
  let found: StoredRecord<T> | 'absent' | undefined;
  try {
    found = (await answerBy(store.findWrite(key, writer, base), deadline, signal, false)) as StoredRecord<T> | 'absent' | undefined;
  } catch (err) {
    return cannotTell(err);
  }
  if (found === 'absent') return { state: 'absent' };
  return found === undefined ? { state: 'unknown' } : { state: 'committed', record: found };
}

/** A look-up that failed: 'unknown' — but a store that lost acknowledged writes answers nothing about them, and a passing fault may answer next time: those are the caller's to hear. */
function cannotTell(err: unknown): { state: 'unknown' } {
  if ((BackendError.is(err) && err.transient) || DataLostError.is(err)) throw err;
  return { state: 'unknown' };
}

/** A store that can look for a write by its token beyond history(): PostgreSQL's and Redis' change logs. */
export interface FindsWrites {
  /**
   * The change of `key` above revision `base` written with `writer`; 'absent' when it is not there and the store
   * kept every change above `base`; undefined when it cannot tell.
   */
  findWrite?(key: string, writer: string, base: number): Promise<StoredRecord<unknown> | 'absent' | undefined>;
}

/** As far back as update() looks for its own write; every backend caps history below this. */
const HISTORY_LOOKBACK = 10_000;
