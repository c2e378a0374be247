/**
 * `file:` backend: the whole store in one human-readable JSON file that
 * several processes on one host can share.
 *
 * URL: `file:./state.json`, `file:/abs/state.json`, options as a query string:
 * `?changeLog=4096`, `?lockTimeoutMs=10000`, `?groupCommit=false`, `?fsync=false`.
 *
 * A write waits in this process's queue (commit-queue.ts), takes the
 * cross-process lock (lock.ts), re-reads the file if another process changed
 * it (reader.ts), checks every queued write's condition against that state,
 * and replaces the file atomically and durably (replace.ts) — all writes that
 * queued up while the lock was busy go into the same rewrite, each with its
 * own result.
 */
import { resolve } from 'node:path';
import {
  BaseStore, ConflictError, DEFAULT_MAX_VALUE_BYTES, InvalidArgumentError,
  MAX_KEY_BYTES, assertKey, assertLimit, newWriterToken, assertAfter, assertOptions, assertPrefix, conditionFailure, encodeForWrite, jsonCodec,
  type AtomicOp, type Capabilities, type Codec, type Condition, type DeleteOptions, type Entry, type FailedCheck,
  type HistoryOptions, type ListOptions, type ListPage, type PutOptions, type StoredRecord,
  type WatchEvent, type WatchOptions,
} from '../core/index.js';
import { CommitQueue } from './commit-queue.js';
import { MAX_FILE_LENGTH, type FileRecord, type FileState } from './format.js';
import { ProcessLock } from './lock.js';
import { parseFileUrl, type FileStoreOptions } from './options.js';
import { StateReader } from './reader.js';
import { comparable, encodeValue, toEvent, toStored } from './records.js';
import { realStorePath } from './store-path.js';
import { isLive, type EncodedValue, type Transaction } from './transaction.js';
import { FileChanges, followChanges } from './watch.js';

export type { FileStoreOptions } from './options.js';

export class FileStore extends BaseStore {
  readonly backend = 'file';
  readonly capabilities: Capabilities;
  readonly path: string;
  private readonly lock: ProcessLock;
  private readonly codec: Codec;
  private readonly maxValueBytes: number;
  private readonly pollIntervalMs: number;
  /** The longest file (as text) a commit may leave; see FileStoreOptions.maxFileLength. */
  readonly maxFileLength: number;
  private readonly sweeper: NodeJS.Timeout;
  private readonly reader: StateReader;
  private readonly changes: FileChanges;
  private readonly commits: CommitQueue;

  static async fromUrl(url: string, options: FileStoreOptions = {}): Promise<FileStore> {
    const parsed = parseFileUrl(url, options);
    return new FileStore(parsed.path, parsed.options);
  }

  constructor(path: string, options: FileStoreOptions = {}) {
    super();
    this.path = resolve(path);
    this.codec = options.codec ?? jsonCodec;
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.valueFormat = { codec: this.codec, maxValueBytes: this.maxValueBytes };
    const changeLogSize = options.changeLogSize ?? 4096;
    const sync = options.fsync ?? true;
    this.pollIntervalMs = options.pollIntervalMs ?? 100;
    this.maxFileLength = options.maxFileLength ?? MAX_FILE_LENGTH;
    if (!Number.isSafeInteger(changeLogSize) || changeLogSize < 1) throw new InvalidArgumentError('changeLogSize must be a positive integer');
    if (!Number.isSafeInteger(this.maxFileLength) || this.maxFileLength < 1 || this.maxFileLength > MAX_FILE_LENGTH) {
      throw new InvalidArgumentError(`maxFileLength must be a positive integer of at most ${MAX_FILE_LENGTH} (the longest string this engine can read the file into), got ${options.maxFileLength}`);
    }
    this.capabilities = { atomic: true, ttl: true, history: true, watch: true, crossProcess: true, durability: sync ? 'fsync' : 'os-buffered' };
    // The file itself, through every symlink: each alias takes the same lock, and a commit replaces the file, never a link.
    this.path = realStorePath(this.path);
    this.lock = new ProcessLock(`${this.path}.lock`);
    this.reader = new StateReader(this.path);
    try {
      // A file that is not a revkit store fails here, at open, not at the first write.
      this.reader.read();
    } catch (err) {
      this.lock.close();
      throw err;
    }
    this.changes = new FileChanges(this.path, () => this.isClosed);
    this.commits = new CommitQueue({
      path: this.path,
      lockTimeoutMs: options.lockTimeoutMs ?? 10_000,
      groupCommit: options.groupCommit ?? true,
      sync,
      changeLogSize,
      maxFileLength: this.maxFileLength,
    }, this.lock, this.reader, this.changes, () => this.isClosed);
    this.sweeper = setInterval(() => this.sweepExpired(), options.sweepIntervalMs ?? 1000);
    this.sweeper.unref();
  }

  /** How many times this store has rewritten the file (each rewrite commits a whole group of writes). */
  get rewrites(): number {
    return this.commits.rewrites;
  }

  async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.assertOpen();
    assertKey(key);
    const rec = this.reader.read().records.get(key);
    return rec === undefined ? null : toStored<T>(this.codec, rec, Date.now());
  }

  protected async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    const { stored, value: copy } = this.encode(value);
    const rec = await this.enqueue((tx) => {
      this.assertCondition(tx, key, options);
      return tx.put(key, stored, tx.nextRevision(), options.ttlMs, options.writer);
    });
    return toStored<T>(this.codec, rec, Number.NEGATIVE_INFINITY, { value: copy }) as Entry<T>;
  }

  protected async doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    return this.enqueue((tx) => {
      const current = this.assertCondition(tx, key, options);
      if (!isLive(current, tx.now)) return null;
      return tx.remove(key, tx.nextRevision(), options.writer).revision;
    });
  }

  protected override async commitAtomic(ops: AtomicOp[]): Promise<{ revision: number }> {
    const encoded = new Map<string, EncodedValue>();
    for (const op of ops) if (op.type === 'set') encoded.set(op.key, this.encode(op.value).stored);
    return this.enqueue((tx) => {
      const failed: FailedCheck[] = [];
      for (const op of ops) {
        if (op.type !== 'check') continue;
        const failure = conditionFailure(op.key, comparable(this.codec, tx.get(op.key), false), op.revision === null ? { ifAbsent: true } : { ifRevision: op.revision }, tx.now);
        if (failure) failed.push(failure);
      }
      if (failed.length > 0) throw new ConflictError(failed);
      const writes = ops.filter((op) => op.type === 'set' || (op.type === 'delete' && isLive(tx.get(op.key), tx.now)));
      if (writes.length === 0) {
        // Writes nothing: draws no revision (the next write would get it, unseen by a watch from our answer);
        // answers the highest revision its keys were found at, else the head — both committed (DESIGN §3).
        const seen = Math.max(0, ...ops.map((op) => tx.get(op.key)?.revision ?? 0));
        return { revision: seen > 0 ? seen : tx.revision };
      }
      const revision = tx.nextRevision();
      for (const op of writes) {
        if (op.type === 'set') tx.put(op.key, encoded.get(op.key) as EncodedValue, revision, op.ttlMs, undefined);
        else tx.remove(op.key, revision, undefined);
      }
      return { revision };
    });
  }

  async list<T = unknown>(options: ListOptions = {}): Promise<ListPage<T>> {
    assertOptions(options, 'list()');
    this.assertOpen();
    const prefix = options.prefix ?? '';
    assertPrefix(prefix);
    assertAfter(options.after);
    const limit = assertLimit(options.limit, 10_000) ?? 1000;
    const state = this.reader.read();
    const now = Date.now();
    const keys = sortedKeys(state);
    // Keys with the prefix are one run of the byte order: a page starts at its place in it, found by halving.
    let start = firstAtOrAfter(keys, prefix, false);
    if (options.after !== undefined) start = Math.max(start, firstAtOrAfter(keys, options.after, true));
    const entries: Entry<T>[] = [];
    for (let i = start; i < keys.length; i++) {
      const key = keys[i] as string;
      if (!key.startsWith(prefix)) break;
      const rec = state.records.get(key);
      if (!isLive(rec, now)) continue;
      if (entries.length === limit) return { entries, cursor: entries[entries.length - 1]?.key as string };
      entries.push(toStored<T>(this.codec, rec as FileRecord, now) as Entry<T>);
    }
    return { entries };
  }

  /** The file is replaced whole after its commit: the revision in it has committed. */
  async headRevision(): Promise<number> {
    this.assertOpen();
    return this.reader.read().revision;
  }

  async history<T = unknown>(key: string, options: HistoryOptions = {}): Promise<StoredRecord<T>[]> {
    assertOptions(options, 'history()');
    this.assertOpen();
    assertKey(key);
    const limit = assertLimit(options.limit, 10_000) ?? 100;
    const { changes } = this.reader.read();
    const found: StoredRecord<T>[] = [];
    for (let i = changes.length - 1; i >= 0 && found.length < limit; i--) {
      const c = changes[i] as FileRecord;
      if (c.key === key) found.push(toStored<T>(this.codec, c, Number.NEGATIVE_INFINITY));
    }
    return found;
  }

  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    this.assertOpen();
    return followChanges<T>({
      read: () => this.reader.read(),
      toEvent: <E>(change: FileRecord) => toEvent<E>(this.codec, change),
      isClosed: () => this.isClosed,
    }, this.changes, options, this.pollIntervalMs);
  }

  /** Turns expired keys into tombstones with a new revision, so watchers see a delete. */
  async sweepExpired(): Promise<number> {
    if (this.isClosed) return 0;
    try {
      const now = Date.now();
      let any = false;
      for (const r of this.reader.read().records.values()) if (r.expiresAt !== undefined && r.expiresAt <= now && !r.deleted) any = true;
      if (!any) return 0;
      return await this.enqueue((tx) => {
        let count = 0;
        for (const key of tx.base.records.keys()) {
          const r = tx.get(key);
          if (r && !r.deleted && r.expiresAt !== undefined && r.expiresAt <= tx.now) {
            tx.remove(key, tx.nextRevision(), undefined);
            count++;
          }
        }
        return count;
      });
    } catch {
      // Housekeeping: the next sweep, or another process, does it.
      return 0;
    }
  }

  protected async doClose(): Promise<void> {
    clearInterval(this.sweeper);
    this.changes.emit();
    await this.commits.drained;
    this.changes.close();
    this.lock.close();
  }

  private enqueue<R>(run: (tx: Transaction) => R): Promise<R> {
    this.assertOpen();
    return this.commits.enqueue(run);
  }

  private assertCondition(tx: Transaction, key: string, cond: Condition): FileRecord | null {
    const current = tx.get(key);
    const failure = conditionFailure(key, comparable(this.codec, current, cond.ifValue !== undefined), cond, tx.now);
    if (failure) throw new ConflictError([failure]);
    return current;
  }

  /**
   * Near maxFileLength (within one write of a value at its largest) a value's own write may be refused
   * for the file's length, which only building that file tells: there update()s are not combined, and
   * the check of a value a later caller's replaces builds it — only for callers that arrived while the
   * file was far from the limit and find it near by the time their attempt runs.
   */
  protected override get combinesUpdates(): boolean {
    // By the size this store last read or wrote: another process may have grown the file since, and the
    // attempt's own read then shows it to checkValue(), which is exact either way (reading the file's
    // header on every update() cost an open and an fstat per call).
    if (this.reader.lastSize === 0) this.reader.read();
    return !this.nearFileLimit();
  }

  override checkValue(value: unknown, key?: string): unknown {
    if (key === undefined || !this.nearFileLimit()) return super.checkValue(value);
    const { stored, value: copy } = this.encode(value);
    this.commits.assertWouldFit(key, stored, newWriterToken());
    return copy;
  }

  private nearFileLimit(): boolean {
    const oneWrite = 2 * (Math.ceil((this.maxValueBytes * 4) / 3) + 4 * MAX_KEY_BYTES) + 1024; // record and change, base64, keys escaped
    return this.reader.lastSize + oneWrite > this.maxFileLength;
  }

  private encode(value: unknown): { stored: EncodedValue; value: unknown } {
    const { bytes, value: copy } = encodeForWrite(this.codec, value, this.maxValueBytes);
    return { stored: encodeValue(this.codec, bytes), value: copy };
  }
}

/** The index of the first key ≥ `bound` (> `bound` when `strictly`) in UTF-8 byte order. */
function firstAtOrAfter(keys: string[], bound: string, strictly: boolean): number {
  const target = Buffer.from(bound, 'utf8');
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    const order = Buffer.compare(Buffer.from(keys[mid] as string, 'utf8'), target);
    if (order < 0 || (strictly && order === 0)) low = mid + 1;
    else high = mid;
  }
  return low;
}

function sortedKeys(state: FileState): string[] {
  state.sortedKeys ??= [...state.records.keys()]
    .map((key) => ({ key, bytes: Buffer.from(key, 'utf8') }))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes))
    .map((k) => k.key);
  return state.sortedKeys;
}

export function fileStore(path: string, options?: FileStoreOptions): FileStore {
  return new FileStore(path, options);
}
