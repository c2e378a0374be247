import { randomBytes } from 'node:crypto';
import {
  BackendError, ConflictError, InvalidArgumentError, RetryExhaustedError, UPDATE_DEFAULTS, sleep,
  type Store, type StoredRecord, type RetryPolicy,
} from '../core/index.js';
import { canonicalJson, payloadHash } from './canonical.js';
import { decide, nextDedup } from './decide.js';
import { assertProducerId, layout, partitionName, DEFAULT_PREFIX } from './keys.js';
import { StagedTransaction, type Transaction } from './transaction.js';
import { assertAtomic } from './support.js';
import type { DedupRecord, EpochRecord, ExactlyOnceOptions, Outcome, Stamp } from './types.js';

export type Handler<P, R> = (tx: Transaction, payload: P, stamp: Stamp) => R | Promise<R>;

export interface ProcessOptions extends ExactlyOnceOptions {
  /** Applied results kept per (producer, partition) for duplicates to return (default 8). */
  window?: number;
  /** Attempts on conflict or transient store fault before RetryExhaustedError (default 64). */
  maxAttempts?: number;
  deadlineMs?: number;
  signal?: AbortSignal;
  retry?: RetryPolicy;
}

export const DEFAULT_WINDOW = 8;

/**
 * Processes one stamped message exactly once: runs `handler` against a
 * transaction view and commits its writes together with the dedup record of
 * (producerId, partition) in one atomic commit. A conflict re-runs the
 * handler on fresh reads; a commit whose acknowledgement was lost is resolved
 * by the re-read (it shows up as a duplicate). Throws FencedError,
 * OutOfOrderError or SequenceReusedError without writing anything.
 */
export async function process<P, R>(store: Store, stamp: Stamp, payload: P, handler: Handler<P, R>, options: ProcessOptions = {}): Promise<Outcome<R>> {
  assertAtomic(store, 'process');
  const s = checkStamp(stamp);
  if (typeof handler !== 'function') throw new InvalidArgumentError('process() needs a handler function');
  const window = options.window ?? DEFAULT_WINDOW;
  if (!Number.isSafeInteger(window) || window < 1) throw new InvalidArgumentError('window must be a positive integer');
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const keys = layout(prefix);
  const epochKey = keys.epochKey(s.producerId);
  const dedupKey = keys.dedupKey(s.producerId, s.partition);
  const hash = payloadHash(payload);
  const maxAttempts = options.maxAttempts ?? UPDATE_DEFAULTS.maxAttempts;
  const deadline = Date.now() + (options.deadlineMs ?? UPDATE_DEFAULTS.deadlineMs);
  let delay = 0;
  // Tokens of this call's attempts whose commit may have landed although it was not acknowledged.
  const maybeCommitted = new Set<string>();
  for (let attempt = 1; ; attempt++) {
    let lastError: unknown;
    try {
      const [epochRead, dedupRead] = await Promise.all([store.getRecord<EpochRecord>(epochKey), store.getRecord<DedupRecord>(dedupKey)]);
      const epochRecord = live(epochRead);
      const dedup = live(dedupRead);
      if (maybeCommitted.size > 0) {
        const own = await ownCommit<R>(store, dedupKey, dedupRead, s.sequence, maybeCommitted);
        if (own) return own;
      }
      const decision = decide<R>(s, hash, epochRecord, dedup);
      if (!decision.apply) return decision.outcome;

      const tx = new StagedTransaction(store, prefix);
      const result = await handler(tx, payload, s);
      const stored = result === undefined ? null : result;
      canonicalJson(stored); // the result is cached in the dedup record: refuse what JSON cannot carry before committing
      const batch = store.atomic().check(epochKey, revisionOf(epochRead)).check(dedupKey, revisionOf(dedupRead));
      await tx.addTo(batch);
      const token = randomBytes(9).toString('base64url');
      batch.set(dedupKey, nextDedup(dedup, s, hash, stored, window, token));
      try {
        const { revision } = await batch.commit();
        return { status: 'applied', result, revision };
      } catch (err) {
        if (BackendError.is(err) && err.ambiguous) maybeCommitted.add(token);
        throw err;
      }
    } catch (err) {
      if (!ConflictError.is(err) && !(BackendError.is(err) && (err.transient || err.ambiguous))) throw err;
      lastError = err;
    }
    const reason = options.signal?.aborted ? 'aborted' : Date.now() >= deadline ? 'deadline' : attempt >= maxAttempts ? 'attempts' : undefined;
    if (reason) throw new RetryExhaustedError(dedupKey, attempt, lastError, reason);
    delay = BackendError.is(lastError) ? UPDATE_DEFAULTS.outageRetry.delay(attempt, delay) : (options.retry ?? UPDATE_DEFAULTS.retry).delay(attempt, delay);
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), options.signal).catch(() => undefined);
  }
}

/** A consumer bound to one store and its options: `consumer(store).process(stamp, payload, handler)`. */
export function consumer(store: Store, options: ProcessOptions = {}) {
  assertAtomic(store, 'consumer');
  return {
    process: <P, R>(stamp: Stamp, payload: P, handler: Handler<P, R>, more: ProcessOptions = {}) => process(store, stamp, payload, handler, { ...options, ...more }),
  };
}

/**
 * After a lost acknowledgement: did one of this call's own attempts commit?
 * Its token in the dedup record says so (another consumer applying the same
 * redelivered message would have written its own token: that is a duplicate).
 * The revision is the dedup record's whose lastSequence is this stamp's —
 * the current one, or, if later messages moved it on, one in its history.
 * Past the history kept, the call answers what any redelivery would: duplicate.
 */
async function ownCommit<R>(store: Store, dedupKey: string, dedupRead: StoredRecord<DedupRecord> | null, sequence: number, tokens: Set<string>): Promise<Outcome<R> | undefined> {
  const dedup = live(dedupRead);
  const mine = dedup?.recent.find((r) => r.sequence === sequence && r.commit !== undefined && tokens.has(r.commit));
  if (!dedup || !mine || !dedupRead) return undefined;
  if (dedup.lastSequence === sequence) return { status: 'applied', result: mine.result as R, revision: dedupRead.revision };
  const committed = (await store.history<DedupRecord>(dedupKey)).find((r) => !('deleted' in r) && r.value.lastSequence === sequence);
  return committed ? { status: 'applied', result: mine.result as R, revision: committed.revision } : undefined;
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
