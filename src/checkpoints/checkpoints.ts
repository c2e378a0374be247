import {
  AbortedError, BackendError, ConflictError, InvalidArgumentError, OutcomeUnknownError, RetryExhaustedError, SKIP, UPDATE_DEFAULTS, assertKey, assertPrefix, assertStore, exponentialJitter, isTombstone, lossIn, sleep,
  type Store, type StoredRecord, type UpdateOptions,
} from '../core/index.js';
import { isResumeKey } from './canonical.js';

const OUTCOME_UNKNOWN_RETRIES = 3;

/** Where a subscription has got to: every event up to `sequence` is handled. */
export interface Cursor {
  sequence: number;
  /** The id of the last event handled, when the source has one. */
  eventId?: string;
}

export interface CheckpointsOptions {
  /** Cursors are stored under `<prefix><resumeKey>`. */
  prefix: string;
  /** Combine concurrent advances of one cursor in this process (default: the store's default). */
  combine?: boolean;
  /** Bounds of each advance's read-modify-write loop (defaults: update()'s). */
  maxAttempts?: number;
  deadlineMs?: number;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface AdvanceResult {
  /** True when this call moved the cursor; false when it was already at or past the sequence given. */
  advanced: boolean;
  /** The cursor as this call left it (its own when advanced, else the one that was ahead). */
  current: Cursor;
}

/** A cursor with the revision of the record it was read from. */
export interface CursorRecord {
  cursor: Cursor | null;
  /** The revision of the cursor's record: its entry's, or its tombstone's; null when it was never written. */
  revision: number | null;
}

export interface ListedCursor {
  key: string;
  cursor: Cursor;
}

/** `delete` was refused: the cursor is past what the caller saw. */
export class CheckpointMovedError extends ConflictError {
  readonly seen: number;
  readonly cursor: Cursor;
  constructor(key: string, seen: number, cursor: Cursor, revision: number) {
    super([{ key, expected: 'value', actual: revision }], cursor);
    this.message = `checkpoint ${JSON.stringify(key)} moved to sequence ${cursor.sequence}, past the ${seen} the caller saw; not deleted`;
    this.seen = seen;
    this.cursor = cursor;
  }
}

/**
 * src/checkpoints/README.md: per-subscription resume cursors that only move forward. Every
 * rule is a compare-and-swap on the store, so it holds across processes on
 * any backend.
 */
export class Checkpoints {
  readonly store: Store;
  readonly prefix: string;
  private readonly updateOptions: Pick<UpdateOptions<Cursor>, 'combine' | 'maxAttempts' | 'deadlineMs'>;

  constructor(store: Store, options: CheckpointsOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('checkpoints() needs options with a prefix');
    assertPrefix(options.prefix);
    this.store = store;
    this.prefix = options.prefix;
    this.updateOptions = {};
    if (options.combine !== undefined) this.updateOptions.combine = options.combine;
    if (options.maxAttempts !== undefined) this.updateOptions.maxAttempts = options.maxAttempts;
    if (options.deadlineMs !== undefined) this.updateOptions.deadlineMs = options.deadlineMs;
  }

  /** The store key a cursor lives under. */
  storeKey(key: string): string {
    if (!isResumeKey(key)) throw new InvalidArgumentError(`a checkpoint key must be a resume key (64 lowercase hex digits, see resumeKey()), got ${JSON.stringify(key)}`);
    const full = this.prefix + key;
    assertKey(full);
    return full;
  }

  async get(key: string): Promise<Cursor | null> {
    const full = this.storeKey(key);
    const entry = await this.store.get(full);
    return entry === null ? null : parseCursor(full, entry.value);
  }

  /** Moves the cursor to `to` if that is ahead of it; never backwards. */
  async advance(key: string, to: Cursor, options: CallOptions = {}): Promise<AdvanceResult> {
    const full = this.storeKey(key);
    const next = checkCursor(to);
    let uncertain = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.advanceOnce(full, next, options);
        if (!uncertain) return result;
        // The attempt whose outcome was unknown may be the one that moved it.
        const ours = result.current.sequence === next.sequence && result.current.eventId === next.eventId;
        return { advanced: result.advanced || ours, current: result.current };
      } catch (err) {
        // update() never re-applies a write whose outcome it cannot establish, since a mutation
        // could count twice. Moving to a maximum can be done again: if it took, nothing changes.
        // Not when the store reported a loss: the caller must hear it (the store may report it only once).
        if (!OutcomeUnknownError.is(err) || lossIn(err) || attempt >= OUTCOME_UNKNOWN_RETRIES) throw err;
        uncertain = true;
      }
    }
  }

  private async advanceOnce(full: string, next: Cursor, options: CallOptions): Promise<AdvanceResult> {
    let advanced = false;
    const entry = await this.store.update<Cursor>(full, (stored) => {
      advanced = false;
      if (stored !== undefined && parseCursor(full, stored).sequence >= next.sequence) return SKIP;
      advanced = true;
      return next;
    }, { ...this.updateOptions, ...(options.signal ? { signal: options.signal } : {}) });
    if (entry === null) throw new BackendError(`advance of ${JSON.stringify(full)} returned nothing`, { transient: false });
    return { advanced, current: parseCursor(full, entry.value) };
  }

  /**
   * The cursor and the revision of its record (a removed cursor reads as null
   * with the revision of its removal). What `advanceIfUnmoved()` is guarded by.
   */
  async read(key: string): Promise<CursorRecord> {
    const full = this.storeKey(key);
    const record = await this.store.getRecord(full);
    if (record === null) return { cursor: null, revision: null };
    if (isTombstone(record)) return { cursor: null, revision: record.revision };
    return { cursor: parseCursor(full, record.value), revision: record.revision };
  }

  /**
   * The advance of a consumer that must yield to a `reset()` or `delete()`
   * (what follow() uses): writes `to` only if the cursor's record is still at
   * `basis`, the revision the caller last read (`read()`) or wrote (null: it
   * was never written). Returns the revision of the write, or null when anyone
   * else wrote the cursor meanwhile — a reset, a delete, another consumer, a
   * plain advance(): the caller then reads the cursor again and resumes from
   * what it finds. Unlike advance() it does not compare sequences: the caller
   * knows where it is. A write whose answer was lost is sent again under the
   * same guard; if the first one landed, the second finds it and returns null.
   */
  async advanceIfUnmoved(key: string, to: Cursor, basis: number | null, options: CallOptions = {}): Promise<number | null> {
    const full = this.storeKey(key);
    const next = checkCursor(to);
    if (basis !== null && (!Number.isSafeInteger(basis) || basis < 1)) throw new InvalidArgumentError(`advanceIfUnmoved() needs the revision of the cursor's record (a positive integer) or null, got ${basis}`);
    const maxAttempts = this.updateOptions.maxAttempts ?? UPDATE_DEFAULTS.maxAttempts;
    const deadline = Date.now() + (this.updateOptions.deadlineMs ?? UPDATE_DEFAULTS.deadlineMs);
    let ambiguous = false;
    // Once a write of ours may have landed, whatever ends the call is an unknown outcome, its cause kept.
    const ending = (err: unknown) => (ambiguous ? new OutcomeUnknownError(full, undefined, { cause: err }) : err);
    let delay = 0;
    for (let attempt = 1; ; attempt++) {
      if (options.signal?.aborted) throw ending(new AbortedError(options.signal.reason));
      try {
        return (await this.store.put(full, next, { ifRevision: basis ?? 0 })).revision;
      } catch (err) {
        if (ConflictError.is(err)) return null;
        // A write of ours may have landed: whatever ends the call now, its outcome is unknown (DESIGN §4.7),
        // a loss reported meanwhile included — as the cause, so the caller still hears of it (lossIn).
        if (ambiguous && !(BackendError.is(err) && err.transient)) throw ending(err);
        if (!BackendError.is(err) || !err.transient) throw err;
        ambiguous ||= err.ambiguous === true;
        const reason = attempt >= maxAttempts ? 'attempts' : Date.now() >= deadline ? 'deadline' : undefined;
        if (reason !== undefined) {
          const exhausted = new RetryExhaustedError(full, attempt, err, reason);
          throw ending(exhausted);
        }
        delay = UPDATE_DEFAULTS.outageRetry.delay(attempt, delay);
        try {
          await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), options.signal);
        } catch (aborted) {
          throw ending(aborted);
        }
      }
    }
  }

  /**
   * The explicit way back: puts the cursor at `to` whatever it is now, or
   * removes it when `to` is omitted. A follow() running on the cursor yields:
   * it records nothing more from where it was and resumes from `to` (from the
   * beginning when removed), handling every event after it again.
   */
  async reset(key: string, to?: Cursor): Promise<Cursor | null> {
    const full = this.storeKey(key);
    if (to === undefined) {
      await this.store.delete(full);
      return null;
    }
    const entry = await this.store.put(full, checkCursor(to));
    return parseCursor(full, entry.value);
  }

  /**
   * Removes the cursor unless another writer advanced it past `ifAt` (the
   * sequence, or cursor, the caller saw): then `CheckpointMovedError`
   * (ERR_CONFLICT). Returns false when there was no cursor. A follow()
   * running on the cursor yields to a delete that went through, as to reset().
   */
  async delete(key: string, options: { ifAt: number | Cursor } & CallOptions): Promise<boolean> {
    const full = this.storeKey(key);
    const seen = typeof options?.ifAt === 'number' ? options.ifAt : options?.ifAt?.sequence;
    if (typeof seen !== 'number' || !Number.isSafeInteger(seen) || seen < 0) {
      throw new InvalidArgumentError('delete() needs { ifAt }: the sequence (or cursor) the caller saw, a non-negative integer');
    }
    const backoff = exponentialJitter({ baseMs: 1, capMs: 100 });
    let delay = 0;
    for (let attempt = 1; attempt <= 64; attempt++) {
      const record: StoredRecord | null = await this.store.getRecord(full);
      if (record === null || isTombstone(record)) return false;
      const cursor = parseCursor(full, record.value);
      if (cursor.sequence > seen) throw new CheckpointMovedError(full, seen, cursor, record.revision);
      try {
        await this.store.delete(full, { ifRevision: record.revision });
        return true;
      } catch (err) {
        // Someone wrote in between (an advance or a reset): look again.
        if (!ConflictError.is(err) || attempt === 64) throw err;
      }
      delay = backoff.delay(attempt, delay);
      await sleep(delay, options.signal);
    }
    throw new RetryExhaustedError(full, 64, undefined, 'attempts');
  }

  /** Every cursor under the prefix, in key order. */
  async list(): Promise<ListedCursor[]> {
    const found: ListedCursor[] = [];
    let after: string | undefined;
    do {
      const page = await this.store.list({ prefix: this.prefix, limit: 1000, ...(after !== undefined ? { after } : {}) });
      for (const entry of page.entries) {
        const key = entry.key.slice(this.prefix.length);
        // Another set of checkpoints (or other data) may live under a longer prefix.
        if (isResumeKey(key)) found.push({ key, cursor: parseCursor(entry.key, entry.value) });
      }
      after = page.cursor;
    } while (after !== undefined);
    return found;
  }
}

export function checkpoints(store: Store, options: CheckpointsOptions): Checkpoints {
  assertStore(store, 'checkpoints()');
  return new Checkpoints(store, options);
}

function checkCursor(cursor: unknown): Cursor {
  if (cursor === null || typeof cursor !== 'object') throw new InvalidArgumentError('a cursor must be an object { sequence, eventId? }');
  const { sequence, eventId } = cursor as Record<string, unknown>;
  if (typeof sequence !== 'number' || !Number.isSafeInteger(sequence) || sequence < 0) {
    throw new InvalidArgumentError(`a cursor's sequence must be a non-negative safe integer, got ${typeof sequence === 'number' ? sequence : typeof sequence}`);
  }
  if (eventId !== undefined && typeof eventId !== 'string') throw new InvalidArgumentError(`a cursor's eventId must be a string, got ${typeof eventId}`);
  return eventId === undefined ? { sequence } : { sequence, eventId };
}

/** A stored value that is not a cursor is a fault of the data, not of the caller. */
function parseCursor(key: string, value: unknown): Cursor {
  try {
    return checkCursor(value);
  } catch (cause) {
    throw new BackendError(`the value under ${JSON.stringify(key)} is not a checkpoint cursor`, { transient: false, cause });
  }
}
