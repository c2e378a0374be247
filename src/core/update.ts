import { randomBytes } from 'node:crypto';
import { AbortedError, BackendError, ClosedError, ConflictError, isAmbiguous, OutcomeUnknownError, RetryExhaustedError } from './errors.js';
import { exponentialJitter } from './retry.js';
import { isTombstone, SKIP, type Entry, type Mutation, type PutOptions, type Store, type StoredRecord, type UpdateOptions } from './types.js';
import { validateCandidate } from './validate.js';

/** Chosen from the hot-key benchmark (BENCHMARKS.md). */
export const UPDATE_DEFAULTS = {
  maxAttempts: 64,
  deadlineMs: 30_000,
  retry: exponentialJitter({ baseMs: 1, capMs: 256 }),
  /**
   * An unreachable store is not a contended key: waiting longer between
   * attempts lets update() ride out a restart within its deadline instead of
   * burning every attempt in the first second.
   */
  outageRetry: exponentialJitter({ baseMs: 50, capMs: 2_000 }),
};

/** The delay before the next attempt: conflicts use the caller's policy, outages the outage policy. */
export function backoffDelay(error: unknown, attempt: number, previousDelayMs: number, policy = UPDATE_DEFAULTS.retry): number {
  const chosen = BackendError.is(error) ? UPDATE_DEFAULTS.outageRetry : policy;
  return Math.max(0, chosen.delay(attempt, previousDelayMs));
}

// 72 random bits per process, then a counter: unique across processes and restarts without a
// crypto call per update().
const PROCESS_TAG = randomBytes(9).toString('base64url');
let writerCounter = 0;

export function newWriterToken(): string {
  return `${PROCESS_TAG}_${(writerCounter++).toString(36)}`;
}

/** What the update loop needs from a store. */
export type UpdatableStore = Pick<Store, 'getRecord' | 'put' | 'history' | 'capabilities' | 'backend'> & {
  /** Fires when the store is closed: a backoff sleep ends at once, and the next store call says so. */
  readonly closedSignal?: StopSignal;
};

/**
 * docs/semantics.md, "update()": read (tombstones included), apply the mutation to a private
 * copy, validate, write guarded by what was read; on conflict or transient
 * fault back off and start over from the read. A write whose acknowledgement
 * was lost is looked for by its writer token before anything is applied
 * again; when its fate cannot be established the caller is told so
 * (OutcomeUnknownError) instead of risking a second application.
 */
export async function runUpdate<T>(store: UpdatableStore, key: string, fn: Mutation<T>, opts: UpdateOptions<T> = {}): Promise<Entry<T> | null> {
  const maxAttempts = opts.maxAttempts ?? UPDATE_DEFAULTS.maxAttempts;
  const deadline = Date.now() + (opts.deadlineMs ?? UPDATE_DEFAULTS.deadlineMs);
  const policy = opts.retry ?? UPDATE_DEFAULTS.retry;
  const writer = newWriterToken();
  let lastError: unknown;
  let previousDelay = 0;
  // The revision read before our first write whose acknowledgement was lost:
  // a record carrying our token above it means one of our writes committed.
  // Every attempt carries the same token, so one look covers all ambiguous attempts.
  let suspect: { base: number } | undefined;
  const giveUp = (attempts: number, reason: 'attempts' | 'deadline' | 'aborted', cause: unknown): never => {
    const exhausted = new RetryExhaustedError(key, attempts, cause, reason);
    if (suspect) throw new OutcomeUnknownError(key, undefined, { cause: exhausted });
    throw exhausted;
  };

  for (let attempt = 1; ; attempt++) {
    if (opts.signal?.aborted) giveUp(attempt - 1, 'aborted', lastError ?? new AbortedError(opts.signal.reason));
    if (store.closedSignal?.aborted) {
      const closed = new ClosedError(store.backend, { cause: lastError });
      throw suspect ? new OutcomeUnknownError(key, undefined, { cause: closed }) : closed;
    }
    let read: StoredRecord<T> | null = null;
    try {
      read = await answerBy(store.getRecord<T>(key), deadline, opts.signal, false);
      if (suspect) {
        const verdict = await lookForOwnWrite(store, key, read, writer, suspect.base, deadline, opts.signal);
        if (verdict.state === 'committed') return isTombstone(verdict.record) ? null : verdict.record;
        if (verdict.state === 'unknown') throw new OutcomeUnknownError(key, undefined, { cause: lastError });
        if (verdict.state === 'absent') suspect = undefined;
        // 'pending': the write may still land, but it is guarded by the revision we read again now,
        // so at most one of it and the next write can commit; the next re-read tells which.
        // A call that has answered, even with an error, proves nothing: the statement may still be
        // running on a server whose client went away, and land after we read.
      }
      const live = read !== null && !isTombstone(read);
      const current = live ? structuredClone((read as Entry<T>).value) : defaultValue(opts);
      const next = await answerBy(Promise.resolve().then(() => fn(current)), deadline, opts.signal, false, MUTATION_GAVE_NO_ANSWER);
      // "No change" cannot be promised while an earlier write of this call may still land.
      if (next === SKIP) {
        if (suspect) throw new OutcomeUnknownError(key, undefined, { cause: lastError });
        return live ? (read as Entry<T>) : null;
      }
      const candidate = await validateCandidate(key, next as T, opts);
      // An abort that came while the mutation ran is honoured before anything is written.
      if (opts.signal?.aborted) giveUp(attempt, 'aborted', lastError ?? new AbortedError(opts.signal.reason));
      // Never written: ifRevision 0, not ifAbsent — a tombstone must not let this write land after a later delete.
      const guard: PutOptions = { ifRevision: read === null ? 0 : read.revision };
      guard.writer = writer;
      if (opts.ttlMs !== undefined) guard.ttlMs = opts.ttlMs;
      try {
        return await answerBy(store.put<T>(key, candidate, guard), deadline, opts.signal, true);
      } catch (err) {
        if (isAmbiguous(err)) suspect = { base: suspect?.base ?? read?.revision ?? 0 };
        throw err;
      }
    } catch (err) {
      if (err === MUTATION_GAVE_NO_ANSWER) giveUp(attempt, opts.signal?.aborted ? 'aborted' : 'deadline', lastError);
      if (ConflictError.is(err) || (BackendError.is(err) && err.transient)) {
        lastError = err;
      } else if (suspect && !OutcomeUnknownError.is(err)) {
        throw new OutcomeUnknownError(key, undefined, { cause: err });
      } else {
        throw err;
      }
    }
    if (attempt >= maxAttempts) giveUp(attempt, 'attempts', lastError);
    const remaining = deadline - Date.now();
    if (remaining <= 0) giveUp(attempt, 'deadline', lastError);
    const delay = backoffDelay(lastError, attempt, previousDelay, policy);
    previousDelay = delay;
    try {
      opts.onRetry?.({ key, attempt, error: lastError, delayMs: delay });
    } catch {
      // A metrics hook must not break the update.
    }
    if (delay >= remaining) {
      await sleep(remaining, opts.signal, store.closedSignal).catch(() => undefined);
      if (!store.closedSignal?.aborted) giveUp(attempt, opts.signal?.aborted ? 'aborted' : 'deadline', lastError);
    }
    try {
      await sleep(delay, opts.signal, store.closedSignal);
    } catch {
      giveUp(attempt, 'aborted', lastError);
    }
  }
}

/** Rejection marker of a mutation that had not returned by the caller's deadline or abort. */
export const MUTATION_GAVE_NO_ANSWER: unique symbol = Symbol('mutation gave no answer');

function defaultValue<T>(opts: UpdateOptions<T>): T | undefined {
  const d = opts.default;
  return typeof d === 'function' ? (d as () => T)() : structuredClone(d);
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
export async function lookForOwnWrite<T>(store: UpdatableStore, key: string, read: StoredRecord<T> | null, writer: string, base: number, deadline: number, signal: StopSignal | undefined): Promise<OwnWriteVerdict<T>> {
  if (read && read.writer === writer && read.revision > base) return { state: 'committed', record: read };
  if ((read?.revision ?? 0) <= base) return { state: 'pending' };
  if (!store.capabilities.history) return { state: 'unknown' };
  let past: StoredRecord<T>[];
  try {
    // Bounded like every store call of the loop: a history read that never answers must not hold the caller.
    past = await answerBy(store.history<T>(key, { limit: HISTORY_LOOKBACK }), deadline, signal, false);
  } catch (err) {
    if (BackendError.is(err) && err.transient) throw err;
    return { state: 'unknown' };
  }
  const own = past.find((r) => r.writer === writer && r.revision > base);
  if (own) return { state: 'committed', record: own };
  return past.some((r) => r.revision <= base) ? { state: 'absent' } : { state: 'unknown' };
}

/** As far back as update() looks for its own write; every backend caps history below this. */
const HISTORY_LOOKBACK = 10_000;

/**
 * A store call that never answers (a connection stuck mid-reconnect) must not
 * hold update() past its deadline or its signal: past either, the call counts
 * as a transient fault — ambiguous for a write, which may still commit, and
 * is then recognised by its writer token — and the loop's own bounds end it.
 */
/**
 * What answerBy() and sleep() need of a signal: an AbortSignal, or the
 * combiner's cheaper StopWhen (an AbortController per attempt was a tenth
 * of update()'s CPU at one writer).
 */
export interface StopSignal {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export function answerBy<R>(call: Promise<R>, deadline: number, signal: StopSignal | undefined, write: boolean, gaveNoAnswer?: unknown): Promise<R> {
  const noAnswer = () => gaveNoAnswer ?? new BackendError('the store gave no answer before the deadline', { transient: true, ambiguous: write });
  if (signal?.aborted) {
    call.catch(() => undefined);
    return Promise.reject(noAnswer());
  }
  return new Promise<R>((resolve, reject) => {
    const giveUp = () => {
      cleanup();
      reject(noAnswer());
    };
    const timer = setTimeout(giveUp, Math.max(0, deadline - Date.now()));
    signal?.addEventListener('abort', giveUp, { once: true });
    function cleanup() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', giveUp);
    }
    call.then(
      (value) => (cleanup(), resolve(value)),
      (err) => (cleanup(), reject(err)),
    );
  });
}

/** Waits `ms`; rejects with AbortedError when `signal` aborts; resolves early when `wake` fires. */
export function sleep(ms: number, signal?: StopSignal, wake?: StopSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError(signal.reason));
    if (wake?.aborted || (ms <= 0 && !signal)) return resolve();
    const timer = setTimeout(done, ms);
    function cleanup() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      wake?.removeEventListener('abort', done);
    }
    function done() {
      cleanup();
      resolve();
    }
    function onAbort() {
      cleanup();
      reject(new AbortedError(signal?.reason));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    wake?.addEventListener('abort', done, { once: true });
  });
}
