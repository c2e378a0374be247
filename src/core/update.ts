import { randomBytes } from 'node:crypto';
import { AbortedError, BackendError, ConflictError, RetryExhaustedError, RevkitError } from './errors.js';
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
export type UpdatableStore = Pick<Store, 'getRecord' | 'put' | 'history' | 'capabilities'>;

/**
 * DESIGN §4: read (tombstones included), apply the mutation to a private
 * copy, validate, write guarded by what was read; on conflict or transient
 * fault back off and start over from the read.
 */
export async function runUpdate<T>(store: UpdatableStore, key: string, fn: Mutation<T>, opts: UpdateOptions<T> = {}): Promise<Entry<T> | null> {
  const maxAttempts = opts.maxAttempts ?? UPDATE_DEFAULTS.maxAttempts;
  const deadline = Date.now() + (opts.deadlineMs ?? UPDATE_DEFAULTS.deadlineMs);
  const policy = opts.retry ?? UPDATE_DEFAULTS.retry;
  const writer = newWriterToken();
  let lastError: unknown;
  let previousDelay = 0;
  // Revision read before a write whose acknowledgement was lost; a later
  // record carrying our token above it means that write did commit.
  let ambiguousBase: number | undefined;

  for (let attempt = 1; ; attempt++) {
    if (opts.signal?.aborted) throw new RetryExhaustedError(key, attempt - 1, lastError ?? new AbortedError(opts.signal.reason), 'aborted');
    let read: StoredRecord<T> | null = null;
    try {
      read = await answerBy(store.getRecord<T>(key), deadline, opts.signal, false);
      if (ambiguousBase !== undefined) {
        const own = await findOwnWrite(store, key, read, writer, ambiguousBase);
        if (own) return own;
      }
      const live = read !== null && !isTombstone(read);
      const current = live ? structuredClone((read as Entry<T>).value) : defaultValue(opts);
      const next = await fn(current);
      if (next === SKIP) return live ? (read as Entry<T>) : null;
      const candidate = await validateCandidate(key, next as T, opts);
      const guard: PutOptions = read === null ? { ifAbsent: true } : { ifRevision: read.revision };
      guard.writer = writer;
      if (opts.ttlMs !== undefined) guard.ttlMs = opts.ttlMs;
      return await answerBy(store.put<T>(key, candidate, guard), deadline, opts.signal, true);
    } catch (err) {
      if (ConflictError.is(err)) {
        lastError = err;
      } else if (BackendError.is(err) && err.transient) {
        lastError = err;
        if (err.ambiguous && ambiguousBase === undefined) ambiguousBase = read?.revision ?? 0;
      } else {
        throw err;
      }
    }
    if (attempt >= maxAttempts) throw new RetryExhaustedError(key, attempt, lastError, 'attempts');
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new RetryExhaustedError(key, attempt, lastError, 'deadline');
    const delay = backoffDelay(lastError, attempt, previousDelay, policy);
    previousDelay = delay;
    try {
      opts.onRetry?.({ key, attempt, error: lastError, delayMs: delay });
    } catch {
      // A metrics hook must not break the update.
    }
    if (delay >= remaining) {
      await sleep(remaining, opts.signal).catch(() => undefined);
      throw new RetryExhaustedError(key, attempt, lastError, opts.signal?.aborted ? 'aborted' : 'deadline');
    }
    try {
      await sleep(delay, opts.signal);
    } catch {
      throw new RetryExhaustedError(key, attempt, lastError, 'aborted');
    }
  }
}

function defaultValue<T>(opts: UpdateOptions<T>): T | undefined {
  const d = opts.default;
  return typeof d === 'function' ? (d as () => T)() : structuredClone(d);
}

export async function findOwnWrite<T>(store: UpdatableStore, key: string, read: StoredRecord<T> | null, writer: string, base: number): Promise<Entry<T> | null> {
  if (read && read.writer === writer && read.revision > base) return isTombstone(read) ? null : read;
  if (!store.capabilities.history || read === null || read.revision <= base) return null;
  // Someone may have written on top of our committed write: look back.
  try {
    const past = await store.history<T>(key, { limit: 64 });
    const own = past.find((r) => r.writer === writer && r.revision > base);
    return own && !isTombstone(own) ? own : null;
  } catch (err) {
    if (RevkitError.is(err)) return null;
    throw err;
  }
}

/**
 * A store call that never answers (a connection stuck mid-reconnect) must not
 * hold update() past its deadline or its signal: past either, the call counts
 * as a transient fault — ambiguous for a write, which may still commit, and
 * is then recognised by its writer token — and the loop's own bounds end it.
 */
export function answerBy<R>(call: Promise<R>, deadline: number, signal: AbortSignal | undefined, write: boolean): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    const giveUp = () => {
      cleanup();
      reject(new BackendError('the store gave no answer before the deadline', { transient: true, ambiguous: write }));
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

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError(signal.reason));
    if (ms <= 0 && !signal) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(timer);
      reject(new AbortedError(signal?.reason));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
