import {
  BackendError, type AtomicOp, type HistoryOptions, type DeleteOptions, type Entry, type PutOptions, type Store, type StoredRecord,
} from '../core/index.js';
import { WrappingStore } from './wrapping-store.js';

/**
 * - `lost-ack`: the call reaches the store and commits, then its answer is
 *   lost (an ambiguous, transient `BackendError`);
 * - `fail-before`: the call fails before reaching the store (transient, not ambiguous);
 * - `lost-request`: the call fails without reaching the store, but with an
 *   ambiguous error (a connection dropped while sending: the caller cannot tell);
 * - `fail-permanent`: the call fails for good (a non-transient `BackendError`);
 * - `stall`: the call waits `stallMs`, then reaches the store and answers;
 *   without `stallMs` it never reaches the store and never answers.
 * - `late-landing`: the call fails at once with an ambiguous error, but the
 *   write itself is held and reaches the store just before the next write
 *   that passes through (or at `landHeld()`): a statement still running on a
 *   server whose client went away, committing while the caller retries.
 */
export type FaultKind = 'lost-ack' | 'fail-before' | 'lost-request' | 'fail-permanent' | 'stall' | 'late-landing';
export type FaultOperation = 'getRecord' | 'put' | 'delete' | 'atomic' | 'history';

export interface FaultRule {
  kind: FaultKind;
  /** Which calls it applies to; every write (`put`, `delete`, `atomic`) when omitted. */
  op?: FaultOperation;
  /** Only calls on this key (atomic commits: any key in the batch). */
  key?: string;
  /** How many matching calls it hits before it is used up; 1 when omitted. */
  times?: number;
  stallMs?: number;
  /** For `late-landing`: when the held write reaches the store — before the next write (default) or only at `landHeld()`. */
  landsAt?: 'next-write' | 'landHeld';
  /** For `lost-ack`: the error the caller gets instead of the default ambiguous BackendError (a ClosedError of a write cut by close(), say). */
  error?: () => Error;
  /** Runs once the fault has happened, before the caller hears of it (e.g. another writer moves the key). */
  then?: (inner: Store) => unknown;
}

export interface InjectedFault {
  kind: FaultKind;
  op: FaultOperation;
  key: string;
}

/**
 * Puts scripted faults between any store and its callers, so update(), the
 * write combiner and the server can be driven through lost acknowledgements,
 * failures before commit and stalls on every backend. Its own `update()` (from
 * BaseStore) combines and retries over the faulty calls like any store's.
 */
export class FaultStore extends WrappingStore {
  private rules: Array<FaultRule & { left: number }> = [];
  /** Every fault that fired, in order. */
  readonly injected: InjectedFault[] = [];
  /** Writes cut from their callers by `late-landing`, not yet landed. */
  private held: Array<{ land: () => Promise<unknown>; onNextWrite: boolean }> = [];
  /** Counts of calls that reached the inner store, by operation. */
  readonly calls: Record<FaultOperation, number> = { getRecord: 0, put: 0, delete: 0, atomic: 0, history: 0 };

  constructor(inner: Store) {
    super(inner, inner.backend);
  }

  inject(rule: FaultRule): this {
    this.rules.push({ ...rule, left: rule.times ?? 1 });
    return this;
  }

  /** Lets every held `late-landing` write reach the store now, in order; a refused one (its guard moved) is dropped. */
  async landHeld(which: 'all' | 'next-write' = 'all'): Promise<void> {
    const landing = this.held.filter((h) => which === 'all' || h.onNextWrite);
    this.held = this.held.filter((h) => !landing.includes(h));
    for (const h of landing) await h.land().catch(() => undefined);
  }

  /** Removes every rule not yet used up. */
  clear(): void {
    this.rules = [];
  }

  getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    return this.run('getRecord', [key], () => this.inner.getRecord<T>(key));
  }

  override history<T = unknown>(key: string, options?: HistoryOptions): Promise<StoredRecord<T>[]> {
    return this.run('history', [key], () => this.inner.history<T>(key, options));
  }

  protected doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    return this.run('put', [key], () => this.inner.put<T>(key, value, options));
  }

  protected doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    return this.run('delete', [key], () => this.inner.delete(key, options));
  }

  protected override commitAtomic(ops: AtomicOp[]): Promise<{ revision: number }> {
    return this.run('atomic', ops.map((op) => op.key), () => {
      const batch = this.inner.atomic();
      for (const op of ops) {
        if (op.type === 'check') batch.check(op.key, op.revision);
        else if (op.type === 'set') batch.set(op.key, op.value, op.ttlMs === undefined ? undefined : { ttlMs: op.ttlMs });
        else batch.delete(op.key);
      }
      return batch.commit();
    });
  }

  protected doClose(): Promise<void> {
    return this.inner.close();
  }

  private async run<R>(op: FaultOperation, keys: string[], call: () => Promise<R>): Promise<R> {
    const rule = this.take(op, keys);
    const isWrite = op === 'put' || op === 'delete' || op === 'atomic';
    if (isWrite && this.held.length > 0) await this.landHeld('next-write');
    if (!rule) {
      this.calls[op]++;
      return call();
    }
    this.injected.push({ kind: rule.kind, op, key: keys[0] ?? '' });
    switch (rule.kind) {
      case 'fail-before':
        await rule.then?.(this.inner);
        throw new BackendError(`injected fault: ${op} failed before reaching the store`, { transient: true });
      case 'lost-request':
        await rule.then?.(this.inner);
        throw new BackendError(`injected fault: the connection dropped while sending ${op}`, { transient: true, ambiguous: true });
      case 'fail-permanent':
        await rule.then?.(this.inner);
        throw new BackendError(`injected fault: ${op} failed for good`, { transient: false });
      case 'lost-ack':
        this.calls[op]++;
        try {
          await call();
        } catch (err) {
          // The call failed on its own (a busy server, say): nothing was acknowledged to lose, so the fault waits for the next call.
          this.injected.pop();
          if (this.rules.includes(rule)) rule.left++;
          else this.rules.unshift({ ...rule, left: 1 });
          throw err;
        }
        await rule.then?.(this.inner);
        throw rule.error?.() ?? new BackendError(`injected fault: the acknowledgement of ${op} was lost`, { transient: true, ambiguous: true });
      case 'late-landing':
        this.held.push({
          land: () => {
            this.calls[op]++;
            return call();
          },
          onNextWrite: rule.landsAt !== 'landHeld',
        });
        await rule.then?.(this.inner);
        throw new BackendError(`injected fault: the connection was cut while ${op} still ran on the server`, { transient: true, ambiguous: true });
      case 'stall':
        if (rule.stallMs === undefined) return new Promise<R>(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, rule.stallMs));
        this.calls[op]++;
        return call();
    }
  }

  private take(op: FaultOperation, keys: string[]): (FaultRule & { left: number }) | undefined {
    const isWrite = op === 'put' || op === 'delete' || op === 'atomic';
    const rule = this.rules.find((r) => (r.op === undefined ? isWrite : r.op === op) && (r.key === undefined || keys.includes(r.key)));
    if (!rule) return undefined;
    if (--rule.left <= 0) this.rules = this.rules.filter((r) => r !== rule);
    return rule;
  }
}
