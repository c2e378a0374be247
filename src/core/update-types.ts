/** What update()'s attempt loop (update.ts) needs from a store, and the shapes it shares with the stores. */
import type { Entry, PutOptions, RetryPolicy, Store, StoredRecord } from './types.js';
import type { StopSignal } from './waiting.js';
import type { FindsWrites } from './own-write.js';

/** What the update loop needs from a store. */
export type UpdatableStore = Pick<Store, 'getRecord' | 'put' | 'history' | 'capabilities' | 'backend'> & FindsWrites & {
  /**
   * update()'s write on what this store object's last update() of the key wrote, without reading the key
   * first (own-writes.ts): guarded by that write's revision AND its writer token, so it lands only while
   * the key holds that very write. Throws ConflictError when it does not (nothing written), else as put().
   * Only where one statement or script can compare both (PostgreSQL, Redis).
   */
  putOnOwnWrite?(key: string, value: unknown, guard: PutOptions, ownWriter: string): Promise<Entry<unknown>>;
  /** With putOnOwnWrite: the value of bytes this store wrote (noted by own-writes.ts noteWrittenBytes), as a read decodes it. */
  decodeOwnWrite?(bytes: Uint8Array): unknown;
  /** Fires when the store is closed: a backoff sleep ends at once, and the next store call says so. */
  readonly closedSignal?: StopSignal;
  /** Throws what a write of `value` would be refused for, writing nothing; else the value as its caller gets it back (BaseStore.checkValue). */
  checkValue?(value: unknown, key: string): unknown;
  /** A private copy of a value read or composed, as the store's codec would give it back (BaseStore.copyValue). */
  copyValue?(value: unknown): unknown;
  /**
   * A store whose writes run synchronously in a write transaction (SQLite)
   * can read the key, let `decide` compose the attempt and write what it
   * returns, all in that transaction: no separate read, no conflict.
   * `decide` is called once, inside the transaction, with the key's current
   * record, and throws nothing; undefined: write nothing. (Should the store
   * roll the transaction back and run it again, it writes the same decision
   * if the key reads the same, and fails the write with a conflict if not.)
   * Resolves to the entry written (its value the stored copy), or null when
   * nothing was.
   */
  updateInWrite?(key: string, decide: (read: StoredRecord<unknown> | null) => InWriteDecision | undefined, ttlMs: number | undefined): Promise<Entry<unknown> | null>;
};

/**
 * What updateInWrite() rejects with, before calling `decide`, when it cannot
 * run the attempt in a write transaction soon (SQLite: another process holds
 * the write lock): the attempt reads and composes outside instead, so that a
 * mutation that writes nothing is answered without waiting for the lock.
 */
export const IN_WRITE_DECLINED: unique symbol = Symbol('revkit: the write transaction is not available now');

/** What an attempt composed inside the store's write transaction writes. */
export interface InWriteDecision {
  value: unknown;
  writer: string;
}

/** What every attempt of one loop shares: callers with their own TTL or retry policy run alone. */
export interface LoopPolicy {
  retry: RetryPolicy;
  ttlMs?: number;
}
