import { AbortedError, BackendError, ConflictError, RetryExhaustedError } from './errors.js';
import { backoffDelay, findOwnWrite, newWriterToken, sleep, UPDATE_DEFAULTS, type UpdatableStore } from './update.js';
import { isTombstone, SKIP, type Entry, type Mutation, type PutOptions, type StoredRecord, type UpdateOptions } from './types.js';
import { validateCandidate } from './validate.js';

interface Caller {
  fn: Mutation<unknown>;
  opts: UpdateOptions<unknown>;
  deadline: number;
  attempts: number;
  resolve: (entry: Entry<unknown> | null) => void;
  reject: (err: unknown) => void;
}

interface Batch {
  callers: Caller[];
  started: boolean;
}

/**
 * DESIGN §4: concurrent update()s of one key in one process are combined —
 * read once, apply each queued mutation in arrival order, write once. Each
 * caller still gets its own result or its own error: a mutation that throws
 * or fails validation is left out of the combined value and only its caller
 * sees the error. A batch runs while the next one collects arrivals, so a
 * process never competes with itself for the key.
 */
export class WriteCombiner {
  private readonly forming = new Map<string, Batch>();
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly store: UpdatableStore) {}

  /** Per-caller TTLs and retry policies do not merge into one write. */
  static canCombine(opts: UpdateOptions<unknown>): boolean {
    return opts.ttlMs === undefined && opts.retry === undefined;
  }

  update<T>(key: string, fn: Mutation<T>, opts: UpdateOptions<T>): Promise<Entry<T> | null> {
    return new Promise((resolve, reject) => {
      let batch = this.forming.get(key);
      if (!batch) {
        batch = { callers: [], started: false };
        this.forming.set(key, batch);
        const previous = this.running.get(key) ?? Promise.resolve();
        const thisBatch = batch;
        const run = previous.then(() => {
          this.forming.delete(key);
          thisBatch.started = true;
          return this.runBatch(key, thisBatch.callers);
        });
        this.running.set(key, run);
        void run.then(() => {
          if (this.running.get(key) === run) this.running.delete(key);
        });
      }
      batch.callers.push({
        fn: fn as Mutation<unknown>,
        opts: opts as UpdateOptions<unknown>,
        deadline: Date.now() + (opts.deadlineMs ?? UPDATE_DEFAULTS.deadlineMs),
        attempts: 0,
        resolve: resolve as (e: Entry<unknown> | null) => void,
        reject,
      });
    });
  }

  private async runBatch(key: string, callers: Caller[]): Promise<void> {
    const writer = newWriterToken();
    let ambiguousBase: number | undefined;
    let lastError: unknown;
    let previousDelay = 0;
    let pending = callers;

    while (pending.length > 0) {
      pending = pending.filter((c) => {
        if (c.opts.signal?.aborted) c.reject(new RetryExhaustedError(key, c.attempts, lastError ?? new AbortedError(c.opts.signal.reason), 'aborted'));
        else if (c.attempts >= (c.opts.maxAttempts ?? UPDATE_DEFAULTS.maxAttempts)) c.reject(new RetryExhaustedError(key, c.attempts, lastError, 'attempts'));
        else if (Date.now() >= c.deadline) c.reject(new RetryExhaustedError(key, c.attempts, lastError, 'deadline'));
        else return true;
        return false;
      });
      if (pending.length === 0) return;
      for (const c of pending) c.attempts++;

      let read: StoredRecord<unknown> | null = null;
      const failed = new Set<Caller>();
      try {
        read = await this.store.getRecord(key);
        if (ambiguousBase !== undefined) {
          const own = await findOwnWrite(this.store, key, read, writer, ambiguousBase);
          if (own) return settleAll(pending, own);
        }
        const live = read !== null && !isTombstone(read);
        let value: unknown = live ? (read as Entry<unknown>).value : undefined;
        let exists = live;
        let changed = false;
        const applied: Caller[] = [];
        for (const c of pending) {
          try {
            const current = exists ? structuredClone(value) : defaultOf(c.opts);
            const next = await c.fn(current);
            if (next === SKIP) {
              applied.push(c);
              continue;
            }
            value = await validateCandidate(key, next, c.opts);
            exists = true;
            changed = true;
            applied.push(c);
          } catch (err) {
            failed.add(c);
            c.reject(err);
          }
        }
        if (!changed) return settleAll(applied, live ? (read as Entry<unknown>) : null);
        const guard: PutOptions = read === null ? { ifAbsent: true } : { ifRevision: read.revision };
        guard.writer = writer;
        const entry = await this.store.put(key, value, guard);
        return settleAll(applied, entry);
      } catch (err) {
        if (ConflictError.is(err)) lastError = err;
        else if (BackendError.is(err) && err.transient) {
          lastError = err;
          if (err.ambiguous && ambiguousBase === undefined) ambiguousBase = read?.revision ?? 0;
        } else {
          for (const c of pending) c.reject(err);
          return;
        }
      }
      // Callers whose mutation failed were rejected above; retry the rest.
      pending = pending.filter((c) => !failed.has(c));
      if (pending.length === 0) return;
      const delay = backoffDelay(lastError, pending[0]?.attempts ?? 1, previousDelay);
      previousDelay = delay;
      for (const c of pending) c.opts.onRetry?.({ key, attempt: c.attempts, error: lastError, delayMs: delay });
      const soonest = Math.min(...pending.map((c) => c.deadline)) - Date.now();
      await sleep(Math.max(0, Math.min(delay, soonest)));
    }
  }
}

function settleAll(callers: Caller[], entry: Entry<unknown> | null): void {
  for (const c of callers) c.resolve(entry);
}

function defaultOf(opts: UpdateOptions<unknown>): unknown {
  const d = opts.default;
  return typeof d === 'function' ? (d as () => unknown)() : structuredClone(d);
}
