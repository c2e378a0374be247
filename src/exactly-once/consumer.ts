import { randomBytes } from 'node:crypto';
import {
  AbortedError, BackendError, ConflictError, InvalidArgumentError, isAmbiguous, OutcomeUnknownError, RetryExhaustedError, TooLargeError, UPDATE_DEFAULTS, assertOptions, assertSignal, sleep,
  type Store, type StoredRecord, type RetryPolicy,
} from '../core/index.js';
import { answerBy } from '../core/waiting.js';
import { canonicalJson, payloadHash } from './canonical.js';
import { decide, fitRecord, nextDedup } from './decide.js';
import { assertProducerId, layout, partitionName, DEFAULT_PREFIX } from './keys.js';
import { StagedTransaction, type Transaction } from './transaction.js';
import { assertAtomic } from './support.js';
import type { DedupRecord, EpochRecord, ExactlyOnceOptions, Outcome, Stamp } from './types.js';

export type Handler<P, R> = (tx: Transaction, payload: P, stamp: Stamp) => R | Promise<R>;

export interface ProcessOptions extends ExactlyOnceOptions {
  /** Applied results kept per (producer, partition) for duplicates to return (default 8). */
  window?: number;
  /**
   * Largest dedup record, in UTF-8 bytes of its JSON (default 256 KiB, a
   * quarter of the default value limit). Cached results are dropped oldest
   * first to stay within it (their duplicates are still recognised, without
   * the result); a message whose result does not fit even alone is refused
   * with TooLargeError, nothing written. Keep it well under the store's
   * `maxValueBytes`; on a store with a smaller limit, the first record the
   * store refuses for its size tells process() the limit, and it keeps just
   * under it on that store from then on (the message is not lost: its record
   * is built again to fit).
   */
  dedupBytes?: number;
  /** Attempts on conflict or transient store fault before RetryExhaustedError (default 64). */
  maxAttempts?: number;
  /** process() settles by then, also while a handler or the store hangs (default 30 s). */
  deadlineMs?: number;
  signal?: AbortSignal;
  retry?: RetryPolicy;
}

export const DEFAULT_WINDOW = 8;
export const DEFAULT_DEDUP_BYTES = 256 * 1024;

/** A store's value limit as a refused dedup record told it: the budget process() keeps to on that store from then on. */
const learnedBudget = new WeakMap<Store, number>();

/** Random bytes drawn a few kilobytes at a time: a draw per attempt showed in profiles (3 % of a message on SQLite). */
let tokenPool = Buffer.alloc(0);
let tokenAt = 0;
/** The token of one attempt's commit: 9 random bytes, base64url. */
function attemptToken(): string {
  if (tokenAt + 9 > tokenPool.length) {
    tokenPool = randomBytes(9 * 256);
    tokenAt = 0;
  }
  tokenAt += 9;
  return tokenPool.toString('base64url', tokenAt - 9, tokenAt);
}

/** Rejection marker of a handler that had not returned by the deadline or abort. */
const HANDLER_GAVE_NO_ANSWER: unique symbol = Symbol('handler gave no answer');

/**
 * Processes one stamped message exactly once: runs `handler` against a
 * transaction view and commits its writes together with the dedup record of
 * (producerId, partition) in one atomic commit. A conflict re-runs the
 * handler on fresh reads; a commit whose acknowledgement was lost is resolved
 * by the re-read (it shows up as a duplicate). Throws FencedError,
 * OutOfOrderError or SequenceReusedError without writing anything.
 *
 * Bounded by `maxAttempts`, `deadlineMs` and `signal`, also while the handler
 * or the store does not answer: then RetryExhaustedError (reason 'deadline'
 * or 'aborted'), and the run that did not answer commits nothing, ever (its
 * transaction is closed and its `tx.signal` aborted). When an earlier attempt's
 * commit may have landed unacknowledged (a lost acknowledgement, a commit cut
 * by close()), any error the call ends with — giving up, a handler that throws
 * on the retry, a closed store — is OutcomeUnknownError instead, with that
 * error as its cause (a redelivery of the message is answered duplicate if it
 * did).
 */
export async function processMessage<P, R>(store: Store, stamp: Stamp, payload: P, handler: Handler<P, R>, options: ProcessOptions = {}): Promise<Outcome<R>> {
  assertAtomic(store, 'process');
  assertOptions(options, 'process()');
  assertSignal(options.signal, 'process()');
  const s = checkStamp(stamp);
  if (typeof handler !== 'function') throw new InvalidArgumentError('process() needs a handler function');
  const window = options.window ?? DEFAULT_WINDOW;
  if (!Number.isSafeInteger(window) || window < 1) throw new InvalidArgumentError('window must be a positive integer');
  const dedupBytes = options.dedupBytes ?? DEFAULT_DEDUP_BYTES;
  if (!Number.isSafeInteger(dedupBytes) || dedupBytes < 1) throw new InvalidArgumentError('dedupBytes must be a positive integer');
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const keys = layout(prefix);
  const epochKey = keys.epochKey(s.producerId);
  const dedupKey = keys.dedupKey(s.producerId, s.partition);
  const hash = payloadHash(payload);
  const maxAttempts = options.maxAttempts ?? UPDATE_DEFAULTS.maxAttempts;
  const deadline = Date.now() + (options.deadlineMs ?? UPDATE_DEFAULTS.deadlineMs);
  const signal = options.signal;
  let delay = 0;
  let lastError: unknown;
  // This call's attempts whose commit may have landed although it was not acknowledged: token → the result it carried.
  const maybeCommitted = new Map<string, unknown>();
  const giveUp = (attempts: number, reason: 'attempts' | 'deadline' | 'aborted', cause: unknown): never => {
    const exhausted = new RetryExhaustedError(dedupKey, attempts, cause, reason);
    if (maybeCommitted.size > 0) {
      throw new OutcomeUnknownError(dedupKey, `processing sequence ${s.sequence} of ${JSON.stringify(s.producerId)}/${JSON.stringify(s.partition)} gave up (${reason}) after a commit whose acknowledgement was lost: it may or may not have been applied (a redelivery tells: duplicate if it was)`, { cause: exhausted });
    }
    throw exhausted;
  };

  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) giveUp(attempt - 1, 'aborted', lastError ?? new AbortedError(signal.reason));
    let tx: StagedTransaction | undefined;
    try {
      const [epochRead, dedupRead] = await answerBy(Promise.all([store.getRecord<EpochRecord>(epochKey), store.getRecord<DedupRecord>(dedupKey)]), deadline, signal, false);
      const epochRecord = live(epochRead);
      const dedup = live(dedupRead);
      if (maybeCommitted.size > 0) {
        const own = await ownCommit<R>(store, dedupKey, dedupRead, s.sequence, maybeCommitted, (call) => answerBy(call, deadline, signal, false));
        if (own) return own;
      }
      const decision = decide<R>(s, hash, epochRecord, dedup);
      if (!decision.apply) return decision.outcome;

      const run = new StagedTransaction(store, prefix);
      tx = run;
      const result = await answerBy(Promise.resolve().then(() => handler(run, payload, s)), deadline, signal, false, HANDLER_GAVE_NO_ANSWER);
      run.close(); // what the handler did not stage by its return is not part of this commit
      // An abort that came while the handler ran is honoured before anything is written.
      if (signal?.aborted) giveUp(attempt, 'aborted', lastError ?? new AbortedError(signal.reason));
      const stored = result === undefined ? null : result;
      canonicalJson(stored); // the result is cached in the dedup record: refuse what JSON cannot carry before committing
      const token = attemptToken();
      const firstEpoch = (epochRecord?.retiredEpoch ?? 0) + 1;
      const unfitted = nextDedup(dedup, s, hash, stored, window, token, firstEpoch);
      let budget = Math.min(dedupBytes, learnedBudget.get(store) ?? dedupBytes);
      for (;;) {
        const fitted = fitRecord(unfitted, budget);
        if (!fitted) {
          throw new TooLargeError(`the dedup record of ${JSON.stringify(s.producerId)}/${JSON.stringify(s.partition)} with the result of sequence ${s.sequence} alone (nothing was written; see the dedupBytes option)`, recordBytes(unfitted, s.sequence), budget);
        }
        const batch = store.atomic().check(epochKey, revisionOf(epochRead)).check(dedupKey, revisionOf(dedupRead));
        await run.addTo(batch);
        batch.set(dedupKey, fitted.record);
        try {
          const { revision } = await answerBy(batch.commit(), deadline, signal, true);
          return { status: 'applied', result, revision };
        } catch (err) {
          // A lost acknowledgement, or a commit cut by close(): it may land (or have landed) all the same.
          if (isAmbiguous(err)) maybeCommitted.set(token, result);
          // The store's value limit is below the budget: keep just under it on this store from now on, and build the record again.
          if (TooLargeError.is(err) && err.limit > 0 && err.limit < fitted.bytes) {
            budget = budgetUnder(err.limit);
            learnedBudget.set(store, Math.min(budget, learnedBudget.get(store) ?? budget));
            continue;
          }
          throw err;
        }
      }
    } catch (err) {
      if (err === HANDLER_GAVE_NO_ANSWER) {
        const reason = signal?.aborted ? 'aborted' : 'deadline';
        // The run goes on without us: it can stage nothing more, and its signal tells it to stop.
        tx?.close(new AbortedError(`process() gave up on this handler run (${reason}): nothing it stages will be committed`));
        giveUp(attempt, reason, lastError);
      }
      if (!ConflictError.is(err) && !(BackendError.is(err) && (err.transient || err.ambiguous))) {
        // An earlier attempt's commit may still land (or have landed) unseen: this call cannot say "not applied".
        if (maybeCommitted.size > 0 && !OutcomeUnknownError.is(err)) {
          throw new OutcomeUnknownError(dedupKey, `processing sequence ${s.sequence} of ${JSON.stringify(s.producerId)}/${JSON.stringify(s.partition)} failed after a commit whose acknowledgement was lost: it may or may not have been applied (a redelivery tells: duplicate if it was)`, { cause: err });
        }
        throw err;
      }
      lastError = err;
    } finally {
      tx?.close();
    }
    if (signal?.aborted) giveUp(attempt, 'aborted', lastError);
    if (attempt >= maxAttempts) giveUp(attempt, 'attempts', lastError);
    const remaining = deadline - Date.now();
    if (remaining <= 0) giveUp(attempt, 'deadline', lastError);
    delay = BackendError.is(lastError) ? UPDATE_DEFAULTS.outageRetry.delay(attempt, delay) : (options.retry ?? UPDATE_DEFAULTS.retry).delay(attempt, delay);
    if (delay >= remaining) {
      await sleep(remaining, signal).catch(() => undefined);
      giveUp(attempt, signal?.aborted ? 'aborted' : 'deadline', lastError);
    }
    try {
      await sleep(delay, signal);
    } catch {
      giveUp(attempt, 'aborted', lastError);
    }
  }
}

/** A consumer bound to one store and its options: `consumer(store).process(stamp, payload, handler)`. */
export function consumer(store: Store, options: ProcessOptions = {}) {
  assertAtomic(store, 'consumer');
  assertOptions(options, 'consumer()');
  assertSignal(options.signal, 'consumer()');
  return {
    process: <P, R>(stamp: Stamp, payload: P, handler: Handler<P, R>, more: ProcessOptions = {}) => processMessage(store, stamp, payload, handler, { ...options, ...more }),
  };
}

/**
 * After a lost acknowledgement: did one of this call's own attempts commit?
 * Its token in the dedup record says so (another consumer applying the same
 * redelivered message would have written its own token: that is a duplicate).
 * The result is the one that attempt's handler returned (kept here: the
 * record may have dropped it to stay within its byte budget). The revision
 * is the dedup record's whose lastSequence is this stamp's — the current
 * one, or, if later messages moved it on, one in its history; there the token
 * is looked up too when later messages pushed the stamp out of the record's
 * recent window before the retry read it. Past the history kept, the call
 * answers what any redelivery would: duplicate.
 */
async function ownCommit<R>(
  store: Store, dedupKey: string, dedupRead: StoredRecord<DedupRecord> | null, sequence: number, tokens: Map<string, unknown>,
  bounded: <T>(call: Promise<T>) => Promise<T>,
): Promise<Outcome<R> | undefined> {
  const dedup = live(dedupRead);
  if (!dedup || !dedupRead || dedup.lastSequence < sequence) return undefined; // not applied: no attempt of ours landed
  const own = (record: DedupRecord) => record.recent.find((r) => r.sequence === sequence && r.commit !== undefined && tokens.has(r.commit));
  const applied = (token: string, revision: number): Outcome<R> => ({ status: 'applied', result: tokens.get(token) as R, revision });
  const mine = own(dedup);
  if (mine && dedup.lastSequence === sequence) return applied(mine.commit as string, dedupRead.revision);
  // Within the window under another token: another consumer applied it (a duplicate), no need to look further.
  if (!mine && dedup.recent.some((r) => r.sequence === sequence)) return undefined;
  const committed = (await bounded(store.history<DedupRecord>(dedupKey))).find((r) => !('deleted' in r) && r.value.lastSequence === sequence);
  if (!committed || 'deleted' in committed) return undefined;
  const ours = own(committed.value);
  return ours ? applied(ours.commit as string, committed.revision) : undefined;
}

/** A budget just under a store's value limit: 1 KiB (a sixteenth of a small limit) left for what a backend adds around a value. */
function budgetUnder(limit: number): number {
  return Math.max(1, limit - Math.min(1024, Math.floor(limit / 16)));
}

/** Bytes of the smallest record that holds this sequence's result: its own entry only. */
function recordBytes(record: DedupRecord, sequence: number): number {
  return Buffer.byteLength(JSON.stringify({ ...record, recent: record.recent.filter((r) => r.sequence === sequence) }), 'utf8');
}

function live<T>(record: StoredRecord<T> | null): T | null {
  return record === null || 'deleted' in record ? null : record.value;
}

/** The check that guards a read: its revision (live or tombstone), or "never written". */
function revisionOf(record: StoredRecord | null): number | null {
  return record === null ? null : record.revision;
}

function checkStamp(stamp: Stamp): Stamp {
  if (typeof stamp !== 'object' || stamp === null) throw new InvalidArgumentError('process() needs a stamp from producer.stamp()');
  assertProducerId(stamp.producerId);
  if (!Number.isSafeInteger(stamp.epoch) || stamp.epoch < 1) throw new InvalidArgumentError('a stamp epoch is a positive integer');
  if (!Number.isSafeInteger(stamp.sequence) || stamp.sequence < 0) throw new InvalidArgumentError('a stamp sequence is a non-negative integer');
  return { producerId: stamp.producerId, epoch: stamp.epoch, partition: partitionName(stamp.partition), sequence: stamp.sequence };
}

/**
 * @deprecated Use processMessage(): a module-level `process` shadows Node's
 * global `process` wherever it is imported by that name.
 */
export const process = processMessage;
