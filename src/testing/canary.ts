import { setImmediate as yieldTurn } from 'node:timers/promises';
import { ConflictError, conditionFailure, type AtomicOp, type DeleteOptions, type Entry, type InWriteDecision, type PutOptions, type Store, type StoredRecord } from '../core/index.js';
import { WrappingStore } from './wrapping-store.js';

/**
 * The deliberately broken store every lost-update test must catch: it checks
 * the condition with a read, yields, then writes unconditionally — the
 * check-then-act race that a real compare-and-swap closes.
 */
export class CanaryStore extends WrappingStore {
  constructor(inner: Store) {
    super(inner, `canary(${inner.backend})`);
  }

  getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    return this.inner.getRecord<T>(key);
  }

  protected async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    const failure = conditionFailure(key, await this.inner.getRecord(key), options);
    if (failure) throw new ConflictError([failure]);
    await yieldTurn();
    const blind: PutOptions = {};
    if (options.ttlMs !== undefined) blind.ttlMs = options.ttlMs;
    if (options.writer !== undefined) blind.writer = options.writer;
    return this.inner.put<T>(key, value, blind);
  }

  protected async doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    const failure = conditionFailure(key, await this.inner.getRecord(key), options);
    if (failure) throw new ConflictError([failure]);
    await yieldTurn();
    return this.inner.delete(key);
  }

  protected override async commitAtomic(ops: AtomicOp[]): Promise<{ revision: number }> {
    const batch = this.inner.atomic();
    for (const op of ops) {
      if (op.type === 'set') batch.set(op.key, op.value, op.ttlMs === undefined ? undefined : { ttlMs: op.ttlMs });
      else if (op.type === 'delete') batch.delete(op.key);
    }
    for (const op of ops) {
      if (op.type !== 'check') continue;
      const failure = conditionFailure(op.key, await this.inner.getRecord(op.key), op.revision === null ? { ifAbsent: true } : { ifRevision: op.revision });
      if (failure) throw new ConflictError([failure]);
    }
    await yieldTurn();
    return batch.commit();
  }

  protected doClose(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * The same race in update()'s one-transaction path (a store's updateInWrite,
 * SQLite's): the attempt is composed from a read taken before the write,
 * then written without a condition. The lost-update tests that run on SQLite
 * must catch it as they catch CanaryStore.
 */
export class InWriteCanaryStore extends CanaryStore {
  async updateInWrite(key: string, decide: (read: StoredRecord | null) => InWriteDecision | undefined, ttlMs: number | undefined): Promise<Entry | null> {
    const read = await this.inner.getRecord(key);
    await yieldTurn();
    const decision = decide(read);
    if (decision === undefined) return null;
    return this.inner.put(key, decision.value, ttlMs === undefined ? { writer: decision.writer } : { writer: decision.writer, ttlMs });
  }
}

export function canary(inner: Store): CanaryStore {
  return new CanaryStore(inner);
}
