import { AbortedError, BackendError, ConflictError, RetryExhaustedError } from './errors.js';
import { answerBy, backoffDelay, findOwnWrite, newWriterToken, runUpdate, sleep, UPDATE_DEFAULTS, type UpdatableStore } from './update.js';
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

/** What one attempt of a batch computed: who is settled how if its write commits. */
interface Attempt {
  applied: Caller[];
  failed: Map<Caller, unknown>;
}

/**
 * DESIGN §4: concurrent update()s of one key in one process are combined —
 * read once, apply each queued mutation in arrival order, write once. Each
 * caller still gets its own result or its own error:
 * - a mutation that throws or fails validation is left out of the combined
 *   value, and its error is delivered only once the state it saw is known to
 *   be the committed one (the write succeeded, or nothing needed writing);
 *   when the write conflicts, it runs again on the fresh state like the others;
 * - when the combined write itself is refused for good (too large, say), the
 *   callers run one by one, so each gets the verdict on its own value.
 * A batch runs while the next one collects arrivals, so a process never
 * competes with itself for the key.
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
        const thisBatch: Batch = { callers: [], started: false };
        batch = thisBatch;
        this.forming.set(key, thisBatch);
        const previous = this.running.get(key) ?? Promise.resolve();
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
      const queued = batch;
      const signal = opts.signal;
      // A caller aborted while still queued leaves at once instead of waiting for its batch.
      const onAbort = () => {
        if (queued.started) return;
        queued.callers = queued.callers.filter((c) => c !== caller);
        reject(new RetryExhaustedError(key, 0, new AbortedError(signal?.reason), 'aborted'));
      };
      const done = () => signal?.removeEventListener('abort', onAbort);
      const caller: Caller = {
        fn: fn as Mutation<unknown>,
        opts: opts as UpdateOptions<unknown>,
        deadline: Date.now() + (opts.deadlineMs ?? UPDATE_DEFAULTS.deadlineMs),
        attempts: 0,
        resolve: (entry) => (done(), resolve(entry as Entry<T> | null)),
        reject: (err) => (done(), reject(err)),
      };
      batch.callers.push(caller);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Never rejects: whatever goes wrong is delivered to the callers, so the next batch always runs. */
  private async runBatch(key: string, callers: Caller[]): Promise<void> {
    let pending = callers;
    try {
      pending = await this.attemptLoop(key, pending);
      // A write refused for good: each caller runs alone and gets its own verdict.
      for (const c of pending) await runUpdate(this.store, key, c.fn, c.opts).then(c.resolve, c.reject);
    } catch (err) {
      for (const c of pending) c.reject(err);
    }
  }

  /** Returns the callers that must run alone; settles everyone else. */
  private async attemptLoop(key: string, callers: Caller[]): Promise<Caller[]> {
    const writer = newWriterToken();
    let ambiguous: { base: number; attempt: Attempt } | undefined;
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
      if (pending.length === 0) return [];
      for (const c of pending) c.attempts++;

      let read: StoredRecord<unknown> | null = null;
      let attempt: Attempt | undefined;
      try {
        const soonest = Math.min(...pending.map((c) => c.deadline));
        read = await answerBy(this.store.getRecord(key), soonest, undefined, false);
        if (ambiguous) {
          const own = await findOwnWrite(this.store, key, read, writer, ambiguous.base);
          if (own) {
            settle(ambiguous.attempt, own);
            return [];
          }
        }
        const live = read !== null && !isTombstone(read);
        let value: unknown = live ? (read as Entry<unknown>).value : undefined;
        let exists = live;
        let changed = false;
        attempt = { applied: [], failed: new Map() };
        for (const c of pending) {
          try {
            const next = await c.fn(exists ? structuredClone(value) : defaultOf(c.opts));
            if (next !== SKIP) {
              value = await validateCandidate(key, next, c.opts);
              exists = true;
              changed = true;
            }
            attempt.applied.push(c);
          } catch (err) {
            attempt.failed.set(c, err);
          }
        }
        if (!changed) {
          settle(attempt, live ? (read as Entry<unknown>) : null);
          return [];
        }
        const guard: PutOptions = read === null ? { ifAbsent: true } : { ifRevision: read.revision };
        guard.writer = writer;
        settle(attempt, await answerBy(this.store.put(key, value, guard), soonest, undefined, true));
        return [];
      } catch (err) {
        if (ConflictError.is(err)) {
          lastError = err;
        } else if (BackendError.is(err) && err.transient) {
          lastError = err;
          if (err.ambiguous && !ambiguous && attempt) ambiguous = { base: read?.revision ?? 0, attempt };
        } else if (pending.length > 1) {
          return pending;
        } else {
          for (const c of pending) c.reject(err);
          return [];
        }
      }
      // Conflict or outage: every pending caller, failed ones included, runs again on the fresh state.
      const delay = backoffDelay(lastError, pending[0]?.attempts ?? 1, previousDelay);
      previousDelay = delay;
      for (const c of pending) {
        try {
          c.opts.onRetry?.({ key, attempt: c.attempts, error: lastError, delayMs: delay });
        } catch {
          // A metrics hook must not break the update.
        }
      }
      const soonest = Math.min(...pending.map((c) => c.deadline)) - Date.now();
      await sleep(Math.max(0, Math.min(delay, soonest)));
    }
    return [];
  }
}

function settle(attempt: Attempt, entry: Entry<unknown> | null): void {
  for (const c of attempt.applied) c.resolve(entry);
  for (const [c, err] of attempt.failed) c.reject(err);
}

function defaultOf(opts: UpdateOptions<unknown>): unknown {
  const d = opts.default;
  return typeof d === 'function' ? (d as () => unknown)() : structuredClone(d);
}
