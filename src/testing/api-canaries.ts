/**
 * Canaries of the API-level kind: every write that reaches the
 * store is a correct compare-and-swap, so a store-level history stays
 * linearizable — only what update() callers are told is wrong. The checker
 * must catch them from the API-level operations.
 */
import { setImmediate as yieldTurn } from 'node:timers/promises';
import { SKIP, type Entry, type Mutation, type Store, type UpdateOptions } from '../core/index.js';
import { PassThroughStore } from './pass-through-store.js';

interface Batch {
  fns: Mutation<unknown>[];
  result: Promise<Entry<unknown> | null>;
}

/**
 * Issue 10, defect #1: concurrent update()s of a key are combined — read
 * once, apply every caller's mutation in arrival order, write once — but
 * every caller is handed the batch's final entry instead of the value its
 * own mutation produced. Eight concurrent increments all return 8.
 */
export class SharedResultStore extends PassThroughStore {
  private readonly batches = new Map<string, Batch>();

  constructor(inner: Store) {
    super(inner, `shared-result(${inner.backend})`);
  }

  override update<T = unknown>(key: string, fn: Mutation<T>, options: UpdateOptions<T> = {}): Promise<Entry<T> | null> {
    let batch = this.batches.get(key);
    if (!batch) {
      const fns: Mutation<unknown>[] = [];
      batch = { fns, result: this.commit(key, fns, options as UpdateOptions<unknown>) };
      this.batches.set(key, batch);
    }
    batch.fns.push(fn as Mutation<unknown>);
    return batch.result as Promise<Entry<T> | null>;
  }

  private async commit(key: string, fns: Mutation<unknown>[], options: UpdateOptions<unknown>): Promise<Entry<unknown> | null> {
    await yieldTurn(); // callers arriving meanwhile join this batch
    this.batches.delete(key);
    const all: Mutation<unknown> = async (current) => {
      let value = current;
      let changed = false;
      for (const fn of fns) {
        const next = await fn(value);
        if (next !== SKIP) [value, changed] = [next, true];
      }
      return changed ? value : SKIP;
    };
    return this.inner.update(key, all, { ...options, combine: false });
  }
}

/**
 * Issue 10, defects #3, #4 and #7: the write of an update() commits, its
 * acknowledgement is lost, and the retry does not recognise its own write —
 * so the mutation runs again on top of itself and the caller is told the
 * second result. Every `every`-th update() loses its acknowledgement.
 */
export class DoubleApplyStore extends PassThroughStore {
  private calls = 0;

  constructor(inner: Store, private readonly every = 5) {
    super(inner, `double-apply(${inner.backend})`);
  }

  override async update<T = unknown>(key: string, fn: Mutation<T>, options: UpdateOptions<T> = {}): Promise<Entry<T> | null> {
    const loseAck = ++this.calls % this.every === 0;
    const first = await this.inner.update<T>(key, fn, options);
    return loseAck ? this.inner.update<T>(key, fn, options) : first;
  }
}

export type CanaryKind = 'lost-update' | 'shared-result' | 'double-apply';
export const canaryKinds: readonly CanaryKind[] = ['lost-update', 'shared-result', 'double-apply'];
