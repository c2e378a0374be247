import {
  AsyncQueue, BackendError, BaseStore, UpdatesAtOnce, ConflictError, DEFAULT_MAX_VALUE_BYTES, HistoryGoneError, InvalidArgumentError, assertKey, assertLimit, assertAfter, assertOptions, assertPrefix,
  compareKeys, conditionFailure, decodeStored, encodeForWrite, jsonTextForWrite, keyFilter, isTombstone, jsonCodec,
  type AtomicOp, type Capabilities, type Codec, type DeleteOptions, type Entry, type FailedCheck, type HistoryOptions,
  type ListOptions, type ListPage, type PutOptions, type StoreOptions, type StoredRecord, type Tombstone, type WatchEvent, type WatchOptions,
} from '../core/index.js';
import { assertKnownUrlOptions } from '../core/redact.js';
import { MemoryWatcher } from './watcher.js';

export interface MemoryStoreOptions extends StoreOptions {
  /** Past revisions kept per key for history(); default 64. */
  historyDepth?: number;
  /**
   * Changes kept for watch({ fromRevision }); default 100,000. Trimmed by whole commits (an atomic commit is kept
   * or dropped whole), an eighth at a time: a watch reading from the log (from a revision, or a consumer that fell
   * behind) gets HistoryGoneError once it is more than about seven eighths of this behind the head.
   */
  changeLogSize?: number;
  /** How often expired keys are turned into tombstones; default 1000 ms. */
  sweepIntervalMs?: number;
}


/** How a value is kept: its JSON text (jsonCodec), else the codec's bytes. */
type Stored = Uint8Array | string;

/** Options a memory: URL may carry. */
const MEMORY_URL_OPTIONS = ['historyDepth', 'changeLogSize', 'sweepIntervalMs'] as const;

/** The reference semantics: everything in one process's memory. */
export class MemoryStore extends BaseStore {
  readonly backend = 'memory';
  readonly capabilities: Capabilities = { atomic: true, ttl: true, history: true, watch: true, crossProcess: false, durability: 'memory' };
  private readonly records = new Map<string, StoredRecord<Stored>>();
  private readonly past = new Map<string, StoredRecord<Stored>[]>();
  readonly changes: WatchEvent<Stored>[] = [];
  /** Every change at or below this revision has been trimmed off `changes`; nothing above it has. */
  trimmedThrough = 0;
  /** Changes logged since the store opened (never trimmed). */
  private logged = 0;
  private readonly watchers = new Set<MemoryWatcher<Stored>>();
  private revision = 0;
  private readonly codec: Codec;
  private readonly maxValueBytes: number;
  private readonly historyDepth: number;
  private readonly changeLogSize: number;
  private readonly sweeper: NodeJS.Timeout;

  /**
   * `memory:`, options in the query: `memory:?historyDepth=16&changeLogSize=1000&sweepIntervalMs=50`.
   * A path (`memory:name`) or any other option is refused: every open is a new, empty store.
   */
  static fromUrl(url: string, options: MemoryStoreOptions = {}): MemoryStore {
    const rest = url.replace(/^memory:/i, '');
    const q = rest.indexOf('?');
    const path = q === -1 ? rest : rest.slice(0, q);
    if (path !== '') throw new InvalidArgumentError(`a memory: URL takes no path or name (every open is a new, empty store), got ${JSON.stringify(path.length > 40 ? `${path.slice(0, 40)}…` : path)}; options go in the query: memory:?historyDepth=16`);
    const params = new URLSearchParams(q === -1 ? '' : rest.slice(q + 1));
    assertKnownUrlOptions(url, 'memory', params.keys(), MEMORY_URL_OPTIONS);
    const merged: MemoryStoreOptions = { ...options };
    for (const name of MEMORY_URL_OPTIONS) {
      const v = params.get(name);
      if (v === null) continue;
      const n = Number(v);
      if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
      merged[name] = n;
    }
    return new MemoryStore(merged);
  }

  constructor(options: MemoryStoreOptions = {}) {
    super();
    this.codec = options.codec ?? jsonCodec;
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.valueFormat = { codec: this.codec, maxValueBytes: this.maxValueBytes };
    // Only while update()'s reads and writes would be this class's own: a subclass that watches or
    // changes getRecord() or put() (tests do, to count calls or inject conflicts) keeps the loop.
    if (this.getRecord === MemoryStore.prototype.getRecord && this.put === BaseStore.prototype.put && this.doPut === MemoryStore.prototype.doPut) {
      this.atOnce = new UpdatesAtOnce(this, { read: (key) => this.decode(this.current(key)), write: (key, value, options) => this.putNow(key, value, options) });
    }
    this.historyDepth = options.historyDepth ?? 64;
    this.changeLogSize = options.changeLogSize ?? 100_000;
    this.sweeper = setInterval(() => this.sweepExpired(), options.sweepIntervalMs ?? 1000);
    this.sweeper.unref();
  }

  async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.assertOpen();
    assertKey(key);
    return this.decode<T>(this.current(key));
  }

  protected async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    return this.putNow(key, value, options);
  }

  private putNow<T>(key: string, value: T, options: PutOptions): Entry<T> {
    const encoded = this.encode(value);
    const failure = conditionFailure(key, this.comparable(key, options), options);
    if (failure) throw new ConflictError([failure]);
    const revision = ++this.revision;
    const entry = this.write(key, encoded.stored, revision, options.ttlMs, options.writer);
    this.trimChanges();
    return { ...entry, value: encoded.value as T };
  }

  protected async doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    const current = this.current(key);
    const failure = conditionFailure(key, this.comparable(key, options), options);
    if (failure) throw new ConflictError([failure]);
    if (!this.isLive(current)) return null;
    const revision = ++this.revision;
    this.remove(key, revision, options.writer);
    this.trimChanges();
    return revision;
  }

  protected override async commitAtomic(ops: AtomicOp[]): Promise<{ revision: number }> {
    const failed: FailedCheck[] = [];
    const encoded = new Map<string, Stored>();
    for (const op of ops) {
      if (op.type === 'set') encoded.set(op.key, this.encode(op.value).stored);
      if (op.type !== 'check') continue;
      const failure = conditionFailure(op.key, this.current(op.key), op.revision === null ? { ifAbsent: true } : { ifRevision: op.revision });
      if (failure) failed.push(failure);
    }
    if (failed.length > 0) throw new ConflictError(failed);
    // Each key is written at most once, so what a delete finds now is what it finds when it runs.
    const now = Date.now();
    const writes = ops.filter((op) => op.type === 'set' || (op.type === 'delete' && this.isLive(this.current(op.key), now)));
    if (writes.length === 0) return { revision: this.nothingWritten(ops) };
    const revision = ++this.revision;
    for (const op of writes) {
      if (op.type === 'set') this.write(op.key, encoded.get(op.key) as Stored, revision, op.ttlMs, undefined);
      else this.remove(op.key, revision, undefined);
    }
    this.trimChanges();
    return { revision };
  }

  async list<T = unknown>(options: ListOptions = {}): Promise<ListPage<T>> {
    assertOptions(options, 'list()');
    this.assertOpen();
    const prefix = options.prefix ?? '';
    assertPrefix(prefix);
    assertAfter(options.after);
    const limit = assertLimit(options.limit, 10_000) ?? 1000;
    const keys = [...this.records.keys()]
      .filter((k) => k.startsWith(prefix) && (options.after === undefined || compareKeys(k, options.after) > 0) && this.isLive(this.current(k)))
      .sort(compareKeys);
    const page = keys.slice(0, limit);
    const entries = page.map((k) => this.decode<T>(this.current(k)) as Entry<T>);
    return keys.length > limit ? { entries, cursor: page[page.length - 1] as string } : { entries };
  }

  async headRevision(): Promise<number> {
    this.assertOpen();
    return this.revision;
  }

  async history<T = unknown>(key: string, options: HistoryOptions = {}): Promise<StoredRecord<T>[]> {
    assertOptions(options, 'history()');
    this.assertOpen();
    assertKey(key);
    const limit = assertLimit(options.limit, this.historyDepth) ?? this.historyDepth;
    const past = this.past.get(key) ?? [];
    // Newest first, within the depth kept (the array holds up to twice it between trims).
    const newest = past.slice(Math.max(0, past.length - Math.min(limit, this.historyDepth))).reverse();
    return newest.map((r) => this.decode<T>(r) as StoredRecord<T>);
  }

  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    this.assertOpen();
    const matches = keyFilter(options);
    const queue = new AsyncQueue<WatchEvent>(options.signal);
    // Live from now on; from a revision, it first reads the change log (watcher.ts: also when its consumer falls behind).
    const watcher = new MemoryWatcher<Stored>(matches, queue, this, this.revision, this.logged);
    if (options.fromRevision !== undefined) watcher.startFrom(options.fromRevision);
    if (queue.closed) return queue as AsyncIterable<WatchEvent<T>>;
    this.watchers.add(watcher);
    queue.onClose(() => this.watchers.delete(watcher));
    return queue as AsyncIterable<WatchEvent<T>>;
  }

  protected async doClose(): Promise<void> {
    clearInterval(this.sweeper);
    for (const w of this.watchers) w.queue.end();
    this.watchers.clear();
  }

  /** ifValue compares decoded values; the other conditions only need revisions. */
  private comparable(key: string, cond: { ifValue?: unknown }): StoredRecord | null {
    return cond.ifValue === undefined ? this.current(key) : this.decode(this.current(key));
  }

  private current(key: string): StoredRecord<Stored> | null {
    return this.records.get(key) ?? null;
  }

  private isLive(record: StoredRecord<Stored> | null, now = Date.now()): boolean {
    return record !== null && !isTombstone(record) && !(record.expiresAt !== undefined && record.expiresAt <= now);
  }

  private write(key: string, bytes: Stored, revision: number, ttlMs: number | undefined, writer: string | undefined): Entry<Stored> {
    const previous = this.current(key);
    const now = Date.now();
    const entry: Entry<Stored> = {
      key,
      value: bytes,
      revision,
      createdRevision: this.isLive(previous, now) ? (previous as Entry<Stored>).createdRevision : revision,
      updatedAt: now,
    };
    if (ttlMs !== undefined) entry.expiresAt = now + ttlMs;
    if (writer !== undefined) entry.writer = writer;
    this.commit(entry, { type: 'put', key, revision, entry });
    return entry;
  }

  private remove(key: string, revision: number, writer: string | undefined): void {
    const tombstone: Tombstone = { key, revision, deleted: true, updatedAt: Date.now() };
    if (writer !== undefined) tombstone.writer = writer;
    this.commit(tombstone, { type: 'delete', key, revision });
  }

  private commit(record: StoredRecord<Stored>, event: WatchEvent<Stored>): void {
    this.records.set(record.key, record);
    // Oldest first, trimmed in chunks: an unshift per write moved the whole history.
    let past = this.past.get(record.key);
    if (past === undefined) this.past.set(record.key, (past = []));
    past.push(record);
    if (past.length >= 2 * this.historyDepth) past.splice(0, past.length - this.historyDepth);
    this.changes.push(event);
    this.logged += 1;
    for (const w of this.watchers) w.offer(event, this.logged);
  }

  /**
   * Called after a whole commit: drops the oldest changes, in chunks of an
   * eighth (a splice per write would copy the whole log every time), and only
   * whole commits — the cut moves back to the first change of the commit it
   * falls in, so an atomic commit's writes are kept or dropped together.
   */
  private trimChanges(): void {
    if (this.changes.length <= this.changeLogSize + Math.ceil(this.changeLogSize / 8)) return;
    let cut = this.changes.length - this.changeLogSize;
    while (cut > 0 && (this.changes[cut] as WatchEvent).revision === (this.changes[cut - 1] as WatchEvent).revision) cut--;
    if (cut === 0) return; // one commit larger than the log: kept whole until later changes push the cut past its end
    this.trimmedThrough = (this.changes[cut - 1] as WatchEvent).revision;
    this.changes.splice(0, cut);
  }

  /**
   * The answer of a commit that writes nothing (checks only, deletes of absent
   * keys): no revision is drawn. It is the highest revision its keys were
   * found at — already committed, so the next write gets a higher one — or,
   * when none of them was ever written, the head (every revision up to it has
   * committed; 0 on an empty store).
   */
  private nothingWritten(ops: AtomicOp[]): number {
    let seen = 0;
    for (const op of ops) seen = Math.max(seen, this.current(op.key)?.revision ?? 0);
    return seen > 0 ? seen : this.revision;
  }

  private sweepExpired(): void {
    const now = Date.now();
    for (const [key, record] of this.records) {
      if (!isTombstone(record) && record.expiresAt !== undefined && record.expiresAt <= now) {
        this.remove(key, ++this.revision, undefined);
        this.trimChanges();
      }
    }
  }

  private decode<T>(record: StoredRecord<Stored> | null): StoredRecord<T> | null {
    if (record === null) return null;
    if (isTombstone(record)) return { ...record };
    if (record.expiresAt !== undefined && record.expiresAt <= Date.now()) {
      const t: Tombstone = { key: record.key, revision: record.revision, deleted: true };
      return t;
    }
    return { ...record, value: this.decodeValue(record) as T };
  }

  /** One watcher's own copy of a change; a value its codec cannot read ends that watch with the error (the write stands). */
  deliver(queue: AsyncQueue<WatchEvent>, event: WatchEvent<Stored>): boolean {
    let copy: WatchEvent;
    try {
      copy = event.type === 'put' ? { ...event, entry: { ...event.entry, value: this.decodeValue(event.entry) } } : { ...event };
    } catch (err) {
      queue.fail(err);
      return false;
    }
    queue.push(copy);
    return true;
  }

  /** With jsonCodec a value is kept as its JSON text: no ArrayBuffer per value (a third of a lone update()'s garbage). */
  private encode(value: unknown): { stored: Stored; value: unknown } {
    if (this.codec === jsonCodec) {
      const { text, value: copy } = jsonTextForWrite(value, this.maxValueBytes);
      return { stored: text, value: copy };
    }
    const { bytes, value: copy } = encodeForWrite(this.codec, value, this.maxValueBytes);
    return { stored: bytes, value: copy };
  }

  private decodeValue(entry: Entry<Stored>): unknown {
    try {
      return typeof entry.value === 'string' ? JSON.parse(entry.value) : decodeStored(this.codec, entry.value);
    } catch (cause) {
      throw new BackendError(`the value of ${JSON.stringify(entry.key)} at revision ${entry.revision} cannot be decoded with the ${this.codec.name} codec`, { transient: false, cause });
    }
  }
}

export function memoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
