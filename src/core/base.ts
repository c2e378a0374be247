import { setMaxListeners } from 'node:events';
import { ClosedError, ConflictError, InvalidArgumentError, UnsupportedError } from './errors.js';
import { assertKey, assertOptions, assertRevision, assertTtl, assertWriter } from './keys.js';
import { runUpdate } from './update.js';
import type { UpdatesAtOnce } from './update-now.js';
import { endOfMutatingAttempt } from './nested.js';
import { WriteCombiner } from './combine.js';
import { privateCopy } from './compose.js';
import { forgetOwnWrite } from './own-writes.js';
import { asWritten, copyWith, decodeStored } from './codec.js';
import type {
  AtomicBatch, AtomicOp, Capabilities, Codec, DeleteOptions, Entry, HistoryOptions, ListOptions, ListPage,
  Mutation, MutationOfDefaulted, PutOptions, Store, StoredRecord, UpdateOptions, UpdateOptionsWithDefault, WatchEvent, WatchOptions,
} from './types.js';

/**
 * Shared front of every backend: argument checks, the update loop, write
 * combining and the atomic() builder. Backends implement the primitives.
 */
export abstract class BaseStore implements Store {
  abstract readonly backend: string;
  abstract readonly capabilities: Capabilities;
  private closed = false;
  // Every update() waiting out a backoff listens to it: no listener limit (Node warns past 10).
  private readonly closer = unlimited(new AbortController());
  private readonly combiner = new WriteCombiner(this);
  /**
   * False where the store may refuse a value for reasons checkValue() cannot
   * see (a server's own validation): concurrent update()s then run one loop
   * each, so that each caller is told what it would be told alone.
   */
  protected get combinesUpdates(): boolean {
    // A backend that does not say how it checks values (valueFormat, checkValue) cannot have them checked: no combining.
    return this.valueFormat !== undefined || this.checkValue !== BaseStore.prototype.checkValue;
  }
  /** The codec and value limit of a backend that encodes, set by its constructor: checkValue() and copyValue() follow them. */
  protected valueFormat: { codec: Codec; maxValueBytes: number } | undefined;
  /** Set by a backend whose reads and writes run synchronously (memory): a lone update() is answered in one step (update-now.ts). */
  protected atOnce: UpdatesAtOnce | undefined;

  /** Aborted by close(): update()'s backoff sleeps end at once instead of outliving the store. */
  get closedSignal(): AbortSignal {
    return this.closer.signal;
  }

  abstract getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null>;
  abstract list<T = unknown>(options?: ListOptions): Promise<ListPage<T>>;
  abstract watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>>;
  abstract history<T = unknown>(key: string, options?: HistoryOptions): Promise<StoredRecord<T>[]>;
  protected abstract doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>>;
  protected abstract doDelete(key: string, options: DeleteOptions): Promise<number | null>;
  protected abstract doClose(): Promise<void>;

  /**
   * Throws what a write of `value` (to `key`) would be refused for (ValidationError,
   * TooLargeError), writes nothing, and returns the value as that write's
   * caller would get it back (its own decoded copy). update() calls it for
   * each value a combined write passes over: a caller whose value a later
   * caller's replaces in the same write is told what it would be told alone.
   * By the backend's valueFormat (a backend with limits of its own overrides
   * it); without one nothing is checked and the value comes back as it is.
   */
  checkValue(value: unknown, _key?: string): unknown {
    return this.valueFormat ? asWritten(this.valueFormat.codec, value, this.valueFormat.maxValueBytes) : value;
  }

  /** The value of bytes this store's write stored, as a read decodes them (what update() starts from without a read: own-writes.ts). */
  decodeOwnWrite(bytes: Uint8Array): unknown {
    if (this.valueFormat === undefined) throw new UnsupportedError('update() without a read', this.backend);
    return decodeStored(this.valueFormat.codec, bytes);
  }

  /** A private copy of a value read or composed, as a read would give it back (what update() hands a mutation). */
  copyValue(value: unknown): unknown {
    return this.valueFormat ? copyWith(this.valueFormat.codec, value) : privateCopy(value);
  }

  protected commitAtomic(_ops: AtomicOp[]): Promise<{ revision: number }> {
    return Promise.reject(new UnsupportedError('atomic', this.backend));
  }

  async get<T = unknown>(key: string): Promise<Entry<T> | null> {
    const record = await this.getRecord<T>(key);
    return record === null || 'deleted' in record ? null : record;
  }

  async put<T = unknown>(key: string, value: T, options: PutOptions = {}): Promise<Entry<T>> {
    this.assertOpen();
    assertKey(key);
    assertOptions(options, 'put()');
    checkCondition(options);
    assertTtl(options.ttlMs);
    if (options.ttlMs !== undefined && !this.capabilities.ttl) throw new UnsupportedError('ttl', this.backend);
    // Not needed for safety (an update()'s guess is guarded by its own token), only to spare its round trip.
    forgetOwnWrite(this, key);
    return this.doPut(key, value, options);
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<number | null> {
    this.assertOpen();
    assertKey(key);
    assertOptions(options, 'delete()');
    checkCondition(options);
    forgetOwnWrite(this, key);
    return this.doDelete(key, options);
  }

  update<T = unknown>(key: string, fn: MutationOfDefaulted<T>, options: UpdateOptionsWithDefault<T>): Promise<Entry<T> | null>;
  update<T = unknown>(key: string, fn: Mutation<T>, options?: UpdateOptions<T>): Promise<Entry<T> | null>;
  // Not async: a lone update() on memory is answered in one step, and an async wrapper would add a promise to resolve.
  update<T = unknown>(key: string, fn: Mutation<T>, options: UpdateOptions<T> = {}): Promise<Entry<T> | null> {
    try {
      this.assertOpen();
      assertKey(key);
      if (typeof fn !== 'function') throw new InvalidArgumentError('update() needs a mutation function');
      assertOptions(options, 'update()');
      assertTtl(options.ttlMs);
      if (options.ttlMs !== undefined && !this.capabilities.ttl) throw new UnsupportedError('ttl', this.backend);
      const combine = this.combinesUpdates && options.combine !== false && WriteCombiner.canCombine(options as UpdateOptions<unknown>);
      const after = combine ? endOfMutatingAttempt(this, key) : undefined;
      if (after !== undefined) return this.combiner.update(key, fn, options, after);
      // Callers the combiner holds for the key came first: one arriving now joins them, in its turn.
      if (this.atOnce !== undefined && this.combiner.isIdle(key)) return this.atOnce.update(key, fn, options, combine);
      if (!combine) return runUpdate(this, key, fn, options);
      return this.combiner.update(key, fn, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  atomic(): AtomicBatch {
    const ops: AtomicOp[] = [];
    const batch: AtomicBatch = {
      check: (key, revision) => {
        assertKey(key);
        if (revision !== null) assertRevision(revision);
        ops.push({ type: 'check', key, revision });
        return batch;
      },
      set: (key, value, options) => {
        assertKey(key);
        assertOptions(options, 'atomic().set()');
        assertTtl(options?.ttlMs);
        ops.push(options?.ttlMs === undefined ? { type: 'set', key, value } : { type: 'set', key, value, ttlMs: options.ttlMs });
        return batch;
      },
      delete: (key) => {
        assertKey(key);
        ops.push({ type: 'delete', key });
        return batch;
      },
      commit: async () => {
        this.assertOpen();
        if (!this.capabilities.atomic) throw new UnsupportedError('atomic', this.backend);
        const writes = ops.filter((op) => op.type !== 'check').map((op) => op.key);
        if (new Set(writes).size !== writes.length) throw new InvalidArgumentError('an atomic batch writes each key at most once');
        if (ops.some((op) => op.type === 'set' && op.ttlMs !== undefined) && !this.capabilities.ttl) {
          throw new UnsupportedError('ttl', this.backend);
        }
        return this.commitAtomic(ops).catch((err: unknown) => {
          throw ConflictError.is(err) ? ConflictError.ofAtomicCommit(err) : err;
        });
      },
    };
    return batch;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closer.abort();
    await this.doClose();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  protected assertOpen(): void {
    if (this.closed) throw new ClosedError(this.backend);
  }
}

function unlimited(controller: AbortController): AbortController {
  setMaxListeners(0, controller.signal);
  return controller;
}

function checkCondition(options: PutOptions): void {
  assertWriter(options.writer);
  let count = 0;
  if (options.ifAbsent !== undefined) {
    if (options.ifAbsent !== true) throw new InvalidArgumentError('ifAbsent must be true when given');
    count++;
  }
  if (options.ifRevision !== undefined) {
    assertRevision(options.ifRevision, 'ifRevision');
    count++;
  }
  if ('ifValue' in options && options.ifValue !== undefined) count++;
  if (count > 1) throw new InvalidArgumentError('give at most one of ifAbsent, ifRevision, ifValue');
}
