/**
 * `file:` backend: the whole store in one human-readable JSON file that
 * several processes on one host can share.
 *
 * URL: `file:./state.json`, `file:/abs/state.json`, options as a query string:
 * `?changeLog=4096`, `?lockTimeoutMs=10000`, `?groupCommit=false`, `?fsync=false`.
 *
 * A write waits in this process's queue, takes the cross-process lock
 * (lock.ts), re-reads the file if another process changed it, checks every
 * queued write's condition against that state, and replaces the file
 * atomically and durably (replace.ts) — all writes that queued up while the
 * lock was busy go into the same rewrite, each with its own result.
 */
import { closeSync, fstatSync, lstatSync, openSync, readFileSync, readlinkSync, readSync, realpathSync, watch as watchFs, type FSWatcher } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { EventEmitter } from 'node:events';
import {
  AsyncQueue, BackendError, BaseStore, ClosedError, ConflictError, DEFAULT_MAX_VALUE_BYTES, HistoryGoneError, InvalidArgumentError, TooLargeError,
  assertKey, assertLimit, assertPrefix, assertValueSize, conditionFailure, jsonCodec, keyFilter, sleep,
  type AtomicOp, type Capabilities, type Codec, type Condition, type DeleteOptions, type Entry, type FailedCheck,
  type HistoryOptions, type ListOptions, type ListPage, type PutOptions, type StoreOptions, type StoredRecord,
  type WatchEvent, type WatchOptions,
} from '../core/index.js';
import { MAX_FILE_LENGTH, assertReadableSize, emptyState, headerRevision, parse, readText, serialize, textOver, type FileRecord, type FileState } from './format.js';
import { assertKnownUrlOptions } from '../core/redact.js';
import { ProcessLock } from './lock.js';
import { removeStaleTemps, replaceFile, tempName, type FileStamp } from './replace.js';
import { Transaction, isLive, nextState, type EncodedValue } from './transaction.js';

export interface FileStoreOptions extends StoreOptions {
  /** Changes kept in the file for watch({ fromRevision }) and history(); default 4096. */
  changeLogSize?: number;
  /** How long a write waits for another process's lock before a transient BackendError; default 10 s. */
  lockTimeoutMs?: number;
  /** Commit every write queued while the lock was busy in one rewrite (default true); false: one write per rewrite. */
  groupCommit?: boolean;
  /** fsync the file and its folder on every commit (default true). */
  fsync?: boolean;
  /** How often watchers look for other processes' writes when no file event came; default 100 ms. */
  pollIntervalMs?: number;
  /** How often expired keys are turned into tombstones; default 1000 ms. */
  sweepIntervalMs?: number;
  /**
   * The longest file a commit may leave, as the length of its text (UTF-16
   * code units: bytes, for ASCII). A write that would make the file longer
   * is refused with TooLargeError and nothing is written. Default and maximum:
   * the longest string the JavaScript engine can hold (MAX_FILE_LENGTH,
   * 536,870,888 on 64-bit Node), since the file is read back as one string.
   */
  maxFileLength?: number;
}

interface Pending {
  run: (tx: Transaction) => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  deadline: number;
}

const HEAD_BYTES = 96;
/**
 * Stale temp files are looked for on every lock acquisition while the folder
 * holds up to this many names (listing them costs ~0.1 ms); in a larger folder,
 * on every ⌈names / LIST_NAMES⌉-th, so a commit never pays for listing more
 * than about this many (README.md has the figures).
 */
const LIST_NAMES = 200;

/** Options a file: URL may carry; any other is refused. */
const URL_OPTIONS = ['changeLog', 'lockTimeoutMs', 'groupCommit', 'fsync'] as const;

export class FileStore extends BaseStore {
  readonly backend = 'file';
  readonly capabilities: Capabilities;
  readonly path: string;
  private readonly lock: ProcessLock;
  private readonly codec: Codec;
  private readonly maxValueBytes: number;
  private readonly changeLogSize: number;
  private readonly lockTimeoutMs: number;
  private readonly groupCommit: boolean;
  private readonly sync: boolean;
  private readonly pollIntervalMs: number;
  /** The longest file (as text) a commit may leave; see FileStoreOptions.maxFileLength. */
  readonly maxFileLength: number;
  private readonly sweeper: NodeJS.Timeout;
  private readonly changed = new EventEmitter();
  private cache: { state: FileState; stamp: FileStamp | null } | null = null;
  private readonly queue: Pending[] = [];
  private draining: Promise<void> | null = null;
  /** Lock acquisitions since this store last listed the folder for stale temp files, and how many apart it lists. */
  private sinceListing = 0;
  private listEvery = 1;
  private fsWatcher: FSWatcher | null = null;
  private watchers = 0;
  private rewriteCount = 0;
  /** The commit being renamed into place, and what its file looks like. */
  private pending: (() => void) | null = null;
  private pendingStamp: FileStamp | null = null;

  static async fromUrl(url: string, options: FileStoreOptions = {}): Promise<FileStore> {
    const rest = url.replace(/^file:(\/\/)?/i, '');
    const [path = '', query = ''] = rest.split('?', 2);
    if (path === '') throw new InvalidArgumentError('a file URL needs a path, e.g. file:./state.json');
    const params = new URLSearchParams(query);
    assertKnownUrlOptions(url, 'file', params.keys(), URL_OPTIONS);
    const merged: FileStoreOptions = { ...options };
    const number = (name: string) => {
      const v = params.get(name);
      if (v === null) return undefined;
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got ${v}`);
      return n;
    };
    const flag = (name: string) => {
      const v = params.get(name);
      if (v === null) return undefined;
      if (v !== 'true' && v !== 'false') throw new InvalidArgumentError(`${name} must be true or false, got ${v}`);
      return v === 'true';
    };
    const changeLog = number('changeLog');
    if (changeLog !== undefined) merged.changeLogSize = changeLog;
    const lockTimeoutMs = number('lockTimeoutMs');
    if (lockTimeoutMs !== undefined) merged.lockTimeoutMs = lockTimeoutMs;
    const group = flag('groupCommit');
    if (group !== undefined) merged.groupCommit = group;
    const fsync = flag('fsync');
    if (fsync !== undefined) merged.fsync = fsync;
    return new FileStore(decodeURIComponent(path), merged);
  }

  constructor(path: string, options: FileStoreOptions = {}) {
    super();
    this.path = resolve(path);
    this.codec = options.codec ?? jsonCodec;
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.changeLogSize = options.changeLogSize ?? 4096;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
    this.groupCommit = options.groupCommit ?? true;
    this.sync = options.fsync ?? true;
    this.pollIntervalMs = options.pollIntervalMs ?? 100;
    this.maxFileLength = options.maxFileLength ?? MAX_FILE_LENGTH;
    if (!Number.isSafeInteger(this.changeLogSize) || this.changeLogSize < 1) throw new InvalidArgumentError('changeLogSize must be a positive integer');
    if (!Number.isSafeInteger(this.maxFileLength) || this.maxFileLength < 1 || this.maxFileLength > MAX_FILE_LENGTH) {
      throw new InvalidArgumentError(`maxFileLength must be a positive integer of at most ${MAX_FILE_LENGTH} (the longest string this engine can read the file into), got ${options.maxFileLength}`);
    }
    this.capabilities = { atomic: true, ttl: true, history: true, watch: true, crossProcess: true, durability: this.sync ? 'fsync' : 'os-buffered' };
    // The file itself, through every symlink: each alias takes the same lock, and a commit replaces the file, never a link.
    this.path = realStorePath(this.path);
    this.lock = new ProcessLock(`${this.path}.lock`);
    try {
      // A file that is not a revkit store fails here, at open, not at the first write.
      this.refresh();
    } catch (err) {
      this.lock.close();
      throw err;
    }
    this.changed.setMaxListeners(0);
    this.sweeper = setInterval(() => this.sweepExpired(), options.sweepIntervalMs ?? 1000);
    this.sweeper.unref();
  }

  /** How many times this store has rewritten the file (each rewrite commits a whole group of writes). */
  get rewrites(): number {
    return this.rewriteCount;
  }

  async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.assertOpen();
    assertKey(key);
    const rec = this.refresh().records.get(key);
    return rec === undefined ? null : this.toStored<T>(rec, Date.now());
  }

  protected async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    const encoded = this.encode(value);
    const rec = await this.enqueue((tx) => {
      this.assertCondition(tx, key, options);
      return tx.put(key, encoded, tx.nextRevision(), options.ttlMs, options.writer);
    });
    return this.toStored<T>(rec, Number.NEGATIVE_INFINITY) as Entry<T>;
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
    for (const op of ops) if (op.type === 'set') encoded.set(op.key, this.encode(op.value));
    return this.enqueue((tx) => {
      const failed: FailedCheck[] = [];
      for (const op of ops) {
        if (op.type !== 'check') continue;
        const failure = conditionFailure(op.key, this.comparable(tx.get(op.key), false), op.revision === null ? { ifAbsent: true } : { ifRevision: op.revision }, tx.now);
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
    this.assertOpen();
    const prefix = options.prefix ?? '';
    assertPrefix(prefix);
    const limit = assertLimit(options.limit, 10_000) ?? 1000;
    const state = this.refresh();
    const now = Date.now();
    const after = options.after === undefined ? null : Buffer.from(options.after, 'utf8');
    const entries: Entry<T>[] = [];
    for (const key of sortedKeys(state)) {
      if (!key.startsWith(prefix) || (after !== null && Buffer.compare(Buffer.from(key, 'utf8'), after) <= 0)) continue;
      const rec = state.records.get(key);
      if (!isLive(rec, now)) continue;
      if (entries.length === limit) return { entries, cursor: entries[entries.length - 1]?.key as string };
      entries.push(this.toStored<T>(rec as FileRecord, now) as Entry<T>);
    }
    return { entries };
  }

  /** The file is replaced whole after its commit: the revision in it has committed. */
  async headRevision(): Promise<number> {
    this.assertOpen();
    return this.refresh().revision;
  }

  async history<T = unknown>(key: string, options: HistoryOptions = {}): Promise<StoredRecord<T>[]> {
    this.assertOpen();
    assertKey(key);
    const limit = assertLimit(options.limit, 10_000) ?? 100;
    const { changes } = this.refresh();
    const found: StoredRecord<T>[] = [];
    for (let i = changes.length - 1; i >= 0 && found.length < limit; i--) {
      const c = changes[i] as FileRecord;
      if (c.key === key) found.push(this.toStored<T>(c, Number.NEGATIVE_INFINITY));
    }
    return found;
  }

  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    this.assertOpen();
    const matches = keyFilter(options);
    const queue = new AsyncQueue<WatchEvent<T>>(options.signal);
    let position: number;
    try {
      position = options.fromRevision ?? this.refresh().revision;
    } catch (err) {
      queue.fail(err);
      return queue;
    }
    let wake: (() => void) | undefined;
    const onChange = () => wake?.();
    this.changed.on('change', onChange);
    this.watchFolder(+1);
    queue.onClose(() => {
      this.changed.off('change', onChange);
      this.watchFolder(-1);
      wake?.();
    });
    const poll = async () => {
      while (!queue.closed && !this.isClosed) {
        const state = this.refresh();
        if (position < state.prunedBelow && state.revision > position) throw new HistoryGoneError(position, state.prunedBelow + 1);
        for (let i = firstAfter(state.changes, position); i < state.changes.length; i++) {
          const c = state.changes[i] as FileRecord;
          if (matches(c.key)) queue.push(this.toEvent<T>(c));
        }
        position = Math.max(position, state.revision);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, this.pollIntervalMs);
          wake = done;
          function done() {
            clearTimeout(timer);
            resolve();
          }
        });
        wake = undefined;
      }
      queue.end();
    };
    poll().catch((err) => queue.fail(err));
    return queue;
  }

  /** Turns expired keys into tombstones with a new revision, so watchers see a delete. */
  async sweepExpired(): Promise<number> {
    if (this.isClosed) return 0;
    try {
      const now = Date.now();
      let any = false;
      for (const r of this.refresh().records.values()) if (r.expiresAt !== undefined && r.expiresAt <= now && !r.deleted) any = true;
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
    this.changed.emit('change');
    await this.draining;
    this.fsWatcher?.close();
    this.fsWatcher = null;
    this.lock.close();
  }

  // ---- the write path ----

  private enqueue<R>(run: (tx: Transaction) => R): Promise<R> {
    this.assertOpen();
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject, deadline: Date.now() + this.lockTimeoutMs });
      this.kick();
    });
  }

  private kick(): void {
    if (this.draining !== null) return;
    this.draining = this.drain().finally(() => {
      this.draining = null;
      // A write queued between the loop's last check and here.
      if (this.queue.length > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    // Writes of a group whose file came out too long, still to commit one per rewrite.
    let ungrouped = 0;
    try {
      while (this.queue.length > 0) {
        const locked = await this.lock.acquire(() => this.dropTimedOut());
        if (!locked) continue;
        try {
          const one = !this.groupCommit || ungrouped > 0;
          if (ungrouped > 0) ungrouped--;
          const batch = one ? this.queue.splice(0, 1) : this.queue.splice(0);
          if ((await this.commit(batch)) === 'split') {
            // Each write then gets the answer it gets alone: only those that do not fit are refused.
            const deadline = Date.now() + this.lockTimeoutMs;
            for (const op of batch) op.deadline = deadline;
            this.queue.unshift(...batch);
            ungrouped = batch.length;
          }
        } finally {
          this.lock.release();
        }
        // Other processes wait by polling: a holder that took the lock straight back would starve them.
        if (this.lock.contended && this.queue.length > 0) await sleep(Math.random() * 5);
      }
    } catch (err) {
      for (const op of this.queue.splice(0)) op.reject(err);
    }
  }

  /** Rejects writes whose lock wait ran out; true when nothing is left waiting. */
  private dropTimedOut(): boolean {
    const now = Date.now();
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const op = this.queue[i] as Pending;
      if (this.isClosed) op.reject(new ClosedError(this.backend));
      else if (op.deadline <= now) {
        op.reject(new BackendError(`the write lock ${this.path}.lock was not free within ${this.lockTimeoutMs} ms (another process holds it); nothing was written`, { transient: true }));
      } else continue;
      this.queue.splice(i, 1);
    }
    return this.queue.length === 0;
  }

  /**
   * Runs under the lock: one rewrite for the whole batch, each write with its
   * own result or error. 'split': the group's file would be too long, nothing
   * was written and nobody answered; commit its writes one by one.
   */
  private async commit(batch: Pending[]): Promise<void | 'split'> {
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    // Temp files of this store left by a writer that died: looked for when the lock is taken (every time,
    // in a folder of up to LIST_NAMES names), alongside this commit's own work, done before the lock goes.
    const temp = tempName(this.path);
    const cleaning = ++this.sinceListing >= this.listEvery ? this.removeStaleTemps(temp) : undefined;
    try {
      const base = this.refresh();
      const tx = new Transaction(base);
      for (const op of batch) {
        try {
          outcomes.push({ ok: true, value: op.run(tx) });
        } catch (error) {
          outcomes.push({ ok: false, error });
        }
      }
      if (tx.changes.length > 0) {
        const next = nextState(tx, this.changeLogSize);
        const bytes = serialize(next.revision, next.prunedBelow, next.records(), next.changes, next.current);
        const length = textOver(bytes, this.maxFileLength);
        if (length.over) {
          if (batch.length > 1) return 'split';
          throw this.tooLarge(bytes.length, length.length);
        }
        this.rewriteCount++;
        await replaceFile(this.path, bytes, this.sync, {
          // From here a read that finds the new file in place applies the commit itself, instead of parsing it.
          written: (stamp) => {
            this.pending = () => {
              this.pending = null;
              if (this.cache?.state !== base) return;
              next.apply();
              this.cache.stamp = stamp;
            };
            this.pendingStamp = stamp;
          },
          replaced: () => {
            this.pending?.();
            this.changed.emit('change');
          },
        }, temp);
      }
    } catch (error) {
      this.pending = null;
      // Nothing of this batch is known to be durable: every caller gets the error (ambiguous when the new file is in place).
      for (const op of batch) op.reject(error);
      return;
    } finally {
      await cleaning;
    }
    batch.forEach((op, i) => {
      const outcome = outcomes[i] as (typeof outcomes)[number];
      if (outcome.ok) op.resolve(outcome.value);
      else op.reject(outcome.error);
    });
  }

  private async removeStaleTemps(own: string): Promise<void> {
    this.sinceListing = 0;
    const { entries } = await removeStaleTemps(this.path, own);
    this.listEvery = Math.max(1, Math.ceil(entries / LIST_NAMES));
  }

  private tooLarge(bytes: number, length: number): TooLargeError {
    const err = new TooLargeError(this.path, length, this.maxFileLength);
    err.message = `this write would make ${this.path} ${bytes} bytes long, ${length} characters as text, over the limit of ${this.maxFileLength}`
      + `${this.maxFileLength === MAX_FILE_LENGTH ? ' (the longest string this engine can read the file back into)' : ' (maxFileLength)'}; nothing was written`;
    return err;
  }

  private assertCondition(tx: Transaction, key: string, cond: Condition): FileRecord | null {
    const current = tx.get(key);
    const failure = conditionFailure(key, this.comparable(current, cond.ifValue !== undefined), cond, tx.now);
    if (failure) throw new ConflictError([failure]);
    return current;
  }

  /** The shape conditionFailure reads; the value is decoded only for ifValue. */
  private comparable(rec: FileRecord | null, withValue: boolean): StoredRecord | null {
    if (rec === null) return null;
    if (rec.deleted) return { key: rec.key, revision: rec.revision, deleted: true };
    const entry: Entry = { key: rec.key, value: withValue ? this.decode(rec) : undefined, revision: rec.revision, createdRevision: rec.createdRevision as number, updatedAt: rec.updatedAt as number };
    if (rec.expiresAt !== undefined) entry.expiresAt = rec.expiresAt;
    return entry;
  }

  // ---- reading the file ----

  /**
   * The state on disk. The file is only ever replaced, never changed in
   * place, so what one open descriptor reads is one committed version; it is
   * parsed again only when its inode, size, mtime or header revision differ
   * from the cached one's.
   */
  private refresh(): FileState {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw this.readError(err);
      if (this.cache?.stamp !== null) this.cache = { state: emptyState(), stamp: null };
      return this.cache.state;
    }
    try {
      const st = fstatSync(fd);
      if (this.pending !== null && sameStamp(this.pendingStamp, st)) this.pending();
      const cached = this.cache;
      if (cached && sameStamp(cached.stamp, st)) {
        const head = Buffer.alloc(HEAD_BYTES);
        const n = readSync(fd, head, 0, HEAD_BYTES, 0);
        if (headerRevision(head.toString('utf8', 0, n)) === cached.state.revision) return cached.state;
      }
      assertReadableSize(st.size, this.path);
      const state = parse(readText(readFileSync(fd), this.path), this.path);
      this.cache = { state, stamp: { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs } };
      return state;
    } catch (err) {
      throw this.readError(err);
    } finally {
      closeSync(fd);
    }
  }

  private readError(err: unknown): unknown {
    if (err instanceof Error && 'syscall' in err) {
      return new BackendError(`cannot read ${this.path}: ${err.message}`, { transient: false, cause: err });
    }
    return err;
  }

  /** One folder watch per store while any watch() runs; polling covers file systems without events. */
  private watchFolder(delta: number): void {
    this.watchers += delta;
    if (this.watchers > 0 && this.fsWatcher === null && !this.isClosed) {
      const name = basename(this.path);
      try {
        this.fsWatcher = watchFs(dirname(this.path), { persistent: false }, (_event, file) => {
          if (file === null || file === name) this.changed.emit('change');
        });
        this.fsWatcher.on('error', () => {
          this.fsWatcher?.close();
          this.fsWatcher = null;
        });
      } catch {
        this.fsWatcher = null;
      }
    } else if (this.watchers === 0 && this.fsWatcher !== null) {
      this.fsWatcher.close();
      this.fsWatcher = null;
    }
  }

  // ---- values ----

  private encode(value: unknown): EncodedValue {
    const bytes = this.codec.encode(value);
    assertValueSize(bytes, this.maxValueBytes);
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    // JSON goes into the file as JSON, readable and diffable; other codecs' bytes as base64.
    return this.codec === jsonCodec ? { encoding: 'json', data: buf.toString('utf8') } : { encoding: 'base64', data: buf.toString('base64') };
  }

  private decode(rec: FileRecord): unknown {
    try {
      if (rec.encoding === 'json' && this.codec === jsonCodec) return JSON.parse(rec.data as string);
      return this.codec.decode(Buffer.from(rec.data as string, rec.encoding === 'json' ? 'utf8' : 'base64'));
    } catch (cause) {
      throw new BackendError(`the value of ${JSON.stringify(rec.key)} at revision ${rec.revision} cannot be decoded with the ${this.codec.name} codec`, { transient: false, cause });
    }
  }

  private toStored<T>(rec: FileRecord, now: number): StoredRecord<T> {
    const writer = rec.writer === undefined ? {} : { writer: rec.writer };
    if (rec.deleted) return { key: rec.key, revision: rec.revision, deleted: true, ...writer, ...(rec.updatedAt === undefined ? {} : { updatedAt: rec.updatedAt }) };
    if (!isLive(rec, now)) return { key: rec.key, revision: rec.revision, deleted: true, ...writer };
    const entry: Entry<T> = {
      key: rec.key,
      value: this.decode(rec) as T,
      revision: rec.revision,
      createdRevision: rec.createdRevision as number,
      updatedAt: rec.updatedAt as number,
      ...writer,
    };
    if (rec.expiresAt !== undefined) entry.expiresAt = rec.expiresAt;
    return entry;
  }

  private toEvent<T>(c: FileRecord): WatchEvent<T> {
    if (c.deleted) return { type: 'delete', key: c.key, revision: c.revision };
    return { type: 'put', key: c.key, revision: c.revision, entry: this.toStored<T>(c, Number.NEGATIVE_INFINITY) as Entry<T> };
  }
}

function sameStamp(stamp: FileStamp | null, st: FileStamp): boolean {
  return stamp !== null && stamp.ino === st.ino && stamp.size === st.size && stamp.mtimeMs === st.mtimeMs;
}

/** Index of the first change after `revision` (the log is in revision order). */
function firstAfter(changes: FileRecord[], revision: number): number {
  let lo = 0;
  let hi = changes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((changes[mid] as FileRecord).revision <= revision) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function sortedKeys(state: FileState): string[] {
  state.sortedKeys ??= [...state.records.keys()]
    .map((key) => ({ key, bytes: Buffer.from(key, 'utf8') }))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes))
    .map((k) => k.key);
  return state.sortedKeys;
}

/**
 * The path of the file a store path names, with every symlink resolved (its
 * folder created if missing): the file's real path when it exists; else, for a
 * link to a file not yet there, where the link points; else the real path of
 * its folder plus its name. Two paths to one file — a symlink and its target,
 * a linked folder — so give one lock (`<path>.lock`) and one file to replace:
 * renaming the new version over a symlink would turn the link into a file of
 * its own, and the stores behind it would silently part.
 */
function realStorePath(given: string): string {
  let path = given;
  for (let hops = 0; ; hops++) {
    try {
      return realpathSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw cannotUse(given, err);
    }
    let link = false;
    try {
      link = lstatSync(path).isSymbolicLink();
    } catch {
      // Not there at all: a new store.
    }
    if (link && hops < 40) {
      path = resolve(dirname(path), readlinkSync(path));
      continue;
    }
    if (link) throw new InvalidArgumentError(`the store path ${given} goes through more than 40 symbolic links`);
    // A misspelled path must not quietly become a new, empty store: the folder must exist (the file may be new).
    let folder: string;
    try {
      folder = realpathSync(dirname(path));
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new InvalidArgumentError(`file: the folder ${dirname(path)} does not exist — check the path for a typo, or create the folder first`);
      }
      throw new BackendError(`cannot open the folder of ${path}: ${(cause as Error).message}`, { transient: false, cause });
    }
    return join(folder, basename(path));
  }
}

function cannotUse(path: string, cause: unknown): BackendError {
  return new BackendError(`cannot resolve the store path ${path}: ${(cause as Error).message}`, { transient: false, cause });
}

export function fileStore(path: string, options?: FileStoreOptions): FileStore {
  return new FileStore(path, options);
}
