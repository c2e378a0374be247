/**
 * The errors of the features built on the store (exactly-once, locks) and of
 * replicated engines. Apart from errors.ts only for its length; the codes,
 * statuses and `is()` live there.
 */
import { RevkitError } from './errors.js';

/** Where an exactly-once refusal happened: the stamp's producer, partition, epoch and sequence. */
export interface StampDetails {
  producerId?: string;
  partition?: string;
  epoch?: number;
  sequence?: number;
}

/** A stamp from an epoch older than the producer's current one: its instance was replaced (a zombie). */
export class FencedError extends RevkitError {
  static override readonly code = 'ERR_FENCED' as const;
  /** `applied`: false when the stamp was never applied; 'unknown' when the dedup record no longer tells. */
  readonly details: StampDetails & { currentEpoch?: number; applied?: false | 'unknown' };
  constructor(message: string, details: StampDetails & { currentEpoch?: number; applied?: false | 'unknown' } = {}) {
    super('ERR_FENCED', message);
    this.details = details;
  }
}

/** A stamp past the next expected sequence (a gap): nothing was written; retry once the gap is filled. */
export class OutOfOrderError extends RevkitError {
  static override readonly code = 'ERR_OUT_OF_ORDER' as const;
  readonly details: StampDetails & { expectedSequence?: number };
  constructor(message: string, details: StampDetails & { expectedSequence?: number } = {}) {
    super('ERR_OUT_OF_ORDER', message);
    this.details = details;
  }
}

/** A sequence already applied with a different payload. */
export class SequenceReusedError extends RevkitError {
  static override readonly code = 'ERR_SEQUENCE_REUSED' as const;
  readonly details: StampDetails;
  constructor(message: string, details: StampDetails = {}) {
    super('ERR_SEQUENCE_REUSED', message);
    this.details = details;
  }
}

/** Details of a lock refusal: which lock, and the fence the caller held. */
export interface LockDetails {
  name: string;
  /** The lock key. */
  key: string;
  fence?: number;
}

/**
 * A lock or leadership this caller held is gone (released, expired and taken
 * by another holder, or its session was lost): a fenced write was refused and
 * nothing was written.
 */
export class LockLostError extends RevkitError {
  static override readonly code = 'ERR_LOCK_LOST' as const;
  readonly details: LockDetails;
  constructor(message: string, details: LockDetails, options?: { cause?: unknown }) {
    super('ERR_LOCK_LOST', message, options);
    this.details = details;
  }
}

/** `waitMs` passed before the lock could be acquired; nothing is left queued. */
export class LockTimeoutError extends RevkitError {
  static override readonly code = 'ERR_LOCK_TIMEOUT' as const;
  readonly details: LockDetails & { waitMs: number };
  constructor(details: LockDetails & { waitMs: number }) {
    super('ERR_LOCK_TIMEOUT', `the lock ${JSON.stringify(details.name)} was not acquired within ${details.waitMs} ms`);
    this.details = details;
  }
}

/** What a store knows of the writes a server lost (DESIGN §6, replicated engines). */
export interface DataLossDetails {
  /** The store, as a redacted address. */
  store: string;
  /**
   * Revisions this client was told of that the serving member does not have:
   * every revision r with `after < r <= upTo` (as far as this client knows).
   */
  after?: number;
  upTo?: number;
  /** When the loss was detected (ISO 8601). */
  detectedAt?: string;
  /** The exact ranges (after, upTo] when the lost revisions are not one run (`after`/`upTo` are then their hull). */
  ranges?: Array<{ after: number; upTo: number }>;
}

/**
 * The server lost acknowledged writes (a failover to a replica that missed
 * them, a restart without persistence): answering would serve the past, or
 * reuse revisions already handed out. Every operation fails with this until
 * an operator accepts the loss (`store.acceptLoss()`, `revkit accept-loss`).
 */
export class DataLostError extends RevkitError {
  static override readonly code = 'ERR_DATA_LOST' as const;
  readonly details: DataLossDetails;
  constructor(message: string, details: DataLossDetails, options?: { cause?: unknown }) {
    super('ERR_DATA_LOST', message, options);
    this.details = details;
  }
}


/**
 * The loss a call's error reports, or undefined. A loss reaches a caller as
 * the `DataLostError` itself or, when the caller's own write may have landed,
 * as the cause of an `OutcomeUnknownError` (DESIGN §4.7) — the only report of
 * it the process may get (Redis tells a process once). Searches the cause
 * chain and an AggregateError's errors; matches by code, as `is()` does, so
 * an error of another copy of revkit (another bundle, another realm) counts.
 */
export function lossIn(err: unknown): DataLostError | undefined {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  // Bounded: a hostile or cyclic chain must not hang or throw where a caller only asks.
  while (queue.length > 0 && seen.size < 256) {
    const at = queue.shift();
    if (typeof at !== 'object' || at === null || seen.has(at)) continue;
    seen.add(at);
    // A throwing getter or a revoked proxy answers nothing, and does not hide the rest.
    if (attempt(() => DataLostError.is(at))) return at as DataLostError;
    queue.push(attempt(() => (at as { cause?: unknown }).cause));
    const errors = attempt(() => (at as { errors?: unknown }).errors);
    if (Array.isArray(errors)) queue.push(...errors.slice(0, 64));
  }
  return undefined;
}

function attempt<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}
