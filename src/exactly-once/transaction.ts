import { AbortedError, InvalidArgumentError, assertKey, type AtomicBatch, type Store, type StoredRecord } from '../core/index.js';

/**
 * What a handler sees of the store. Reads go to the store and are recorded
 * as checks of the commit (so the commit fails if anything read has changed);
 * writes are staged here, visible to the handler itself and to nobody else
 * until the commit that also records the message as processed.
 */
export interface Transaction {
  /** The live value, or undefined; sees this handler's own staged writes. */
  get<T = unknown>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): void;
  delete(key: string): void;
  /** get, then put what `fn` returns; returns the new value. */
  update<T = unknown>(key: string, fn: (current: T | undefined) => T): Promise<T>;
  /**
   * Aborted when process() stops waiting for this handler run (its deadline
   * passed or its signal aborted): nothing the run staged will commit, and
   * every later call on this transaction throws AbortedError. Pass it on to
   * whatever the handler waits for.
   */
  readonly signal: AbortSignal;
}

type Staged = { kind: 'set'; value: unknown } | { kind: 'delete' };

export class StagedTransaction implements Transaction {
  private readonly reads = new Map<string, Promise<StoredRecord | null>>();
  private readonly writes = new Map<string, Staged>();
  private controller: AbortController | undefined;
  private closed = false;
  private abortReason: unknown;

  constructor(private readonly store: Store, private readonly reservedPrefix: string) {}

  get signal(): AbortSignal {
    // Made on first use: most handlers never look, and a controller per message is not free.
    this.controller ??= new AbortController();
    if (this.abortReason !== undefined && !this.controller.signal.aborted) this.controller.abort(this.abortReason);
    return this.controller.signal;
  }

  /**
   * Ends the transaction: from now on it takes no reads or writes (a handler
   * still running after process() gave up on it cannot stage anything). With
   * a reason (process() gave up on the run), `signal` aborts with it.
   */
  close(abortReason?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    if (abortReason === undefined) return;
    this.abortReason = abortReason;
    this.controller?.abort(abortReason);
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    this.assertOpen();
    assertKey(key);
    const staged = this.writes.get(key);
    if (staged) return staged.kind === 'set' ? (structuredClone(staged.value) as T) : undefined;
    let read = this.reads.get(key);
    if (!read) {
      read = this.store.getRecord(key);
      this.reads.set(key, read);
    }
    const record = await read;
    return record === null || 'deleted' in record ? undefined : (record.value as T);
  }

  put(key: string, value: unknown): void {
    this.assertWritable(key);
    if (value === undefined) throw new InvalidArgumentError('put() needs a value; use delete() to remove a key');
    this.writes.set(key, { kind: 'set', value: structuredClone(value) });
  }

  delete(key: string): void {
    this.assertWritable(key);
    this.writes.set(key, { kind: 'delete' });
  }

  async update<T = unknown>(key: string, fn: (current: T | undefined) => T): Promise<T> {
    const next = fn(await this.get<T>(key));
    this.assertOpen();
    this.put(key, next);
    return next;
  }

  /** Adds a check per key read (at the revision read, or "no live value") and every staged write. */
  async addTo(batch: AtomicBatch): Promise<void> {
    for (const [key, read] of this.reads) {
      const record = await read;
      batch.check(key, record === null ? null : record.revision);
    }
    for (const [key, staged] of this.writes) {
      if (staged.kind === 'set') batch.set(key, staged.value);
      else batch.delete(key);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new AbortedError(this.abortReason);
  }

  private assertWritable(key: string): void {
    this.assertOpen();
    assertKey(key);
    if (key.startsWith(this.reservedPrefix)) {
      throw new InvalidArgumentError(`a handler may not write ${JSON.stringify(key)}: keys under ${JSON.stringify(this.reservedPrefix)} hold the exactly-once state`);
    }
  }
}
