/**
 * SQLite backend (better-sqlite3), the embedded default.
 *
 * URL: `sqlite:./path.db`, `sqlite:/abs/path.db`, options as a query string:
 * `?synchronous=normal` (default full), `?historyRetention=100000`,
 * `?groupCommit=false` (one transaction per write; for comparisons).
 *
 * Every write runs in BEGIN IMMEDIATE, so the condition check and the write
 * are one step across every process that opens the file. Revisions come
 * from one counter row inside that transaction: store-wide, strictly
 * increasing, committed in revision order — which makes the `changes` table
 * a gap-free log for watch() even across processes.
 *
 * Writes from one process that arrive together share one transaction and one
 * fsync (group commit, ./group-commit.ts), each with its own condition check
 * and its own outcome.
 */
import { statSync, watch as watchFiles, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { EventEmitter } from 'node:events';
import Database from 'better-sqlite3';
import {
  AsyncQueue, BackendError, BaseStore, ClosedError, ConflictError, DEFAULT_MAX_VALUE_BYTES, HistoryGoneError, InvalidArgumentError,
  assertKey, assertLimit, assertPrefix, assertValueSize, conditionFailure, jsonCodec, keyFilter,
  type AtomicOp, type Capabilities, type Codec, type Condition, type DeleteOptions, type Entry, type FailedCheck,
  type HistoryOptions, type ListOptions, type ListPage, type PutOptions, type StoreOptions, type StoredRecord,
  type WatchEvent, type WatchOptions,
} from '../core/index.js';
import { assertKnownUrlOptions } from '../core/redact.js';
import { migrate } from './schema.js';
import { GroupCommit } from './group-commit.js';

export interface SqliteStoreOptions extends StoreOptions {
  /** `full` (default) fsyncs every commit; `normal` may lose the last commits on power loss, never corrupts. */
  synchronous?: 'full' | 'normal';
  /** Changes kept for watch({ fromRevision }) and history(); default 100,000 revisions. */
  historyRetention?: number;
  /** How long a write waits for another process's write lock before a transient BackendError; default 10 s. */
  lockTimeoutMs?: number;
  /**
   * Watchers wake when the database file or its WAL changes (fs.watch) and on
   * this process's own writes; they also look every pollIntervalMs in case a
   * file event is missed; default 1000 ms (20 ms where fs.watch is unavailable).
   */
  pollIntervalMs?: number;
  /** How often expired keys are turned into tombstones; default 1000 ms. */
  sweepIntervalMs?: number;
  /** `false`: one transaction (one fsync) per write, as before group commit; for comparisons. Default true. */
  groupCommit?: boolean;
}

interface Row {
  key: string;
  value: Buffer | null;
  revision: number;
  created_revision: number | null;
  updated_at: number;
  expires_at: number | null;
  deleted: number;
  writer: string | null;
}

/** Row columns in the order of the INSERTs below. */
type RowValues = [key: string, value: Buffer | null, revision: number, createdRevision: number | null, updatedAt: number, expiresAt: number | null, deleted: 0 | 1, writer: string | null];

// A short busy wait inside SQLite, then async waits in JS: a writer blocked
// by another process never freezes the event loop for more than this.
const BUSY_SLICE_MS = 5;
const OPEN_TIMEOUT_MS = 10_000;
/** Changes read per watch poll. */
const PAGE = 1000;

/** Options a sqlite: URL may carry. */
const URL_OPTIONS = ['synchronous', 'historyRetention', 'groupCommit'] as const;

export class SqliteStore extends BaseStore {
  readonly backend = 'sqlite';
  readonly capabilities: Capabilities;
  readonly path: string;
  private readonly db: Database.Database;
  private readonly codec: Codec;
  private readonly maxValueBytes: number;
  private readonly retention: number;
  private readonly lockTimeoutMs: number;
  private pollIntervalMs: number;
  private readonly pollOption: number | undefined;
  /** 'write': this process wrote, or the database files changed (another process wrote). */
  private readonly localWrites = new EventEmitter();
  private fileWatcher: FSWatcher | undefined;
  private readonly sweeper: NodeJS.Timeout;
  private readonly stmt: Statements;
  /** The revision drawn by this process's latest write transaction. */
  private lastRevision = 0;
  /** The newest revision inside the open write transaction; undefined until a write of it draws one. */
  private txHead: number | undefined;
  /** better-sqlite3 builds a transaction wrapper per call to transaction(): build one, pass the work in. */
  private readonly inTransaction: Database.Transaction<(fn: () => unknown) => unknown>;
  private commitsSincePrune = 0;
  private readonly group: GroupCommit;

  /** `sqlite:./path.db?synchronous=normal&historyRetention=100000&groupCommit=false`; any other option is refused. */
  static async fromUrl(url: string, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
    const rest = url.replace(/^sqlite:(\/\/)?/i, '');
    const [path = '', query = ''] = rest.split('?', 2);
    if (path === '') throw new InvalidArgumentError('a sqlite URL needs a file path, e.g. sqlite:./data/revkit.db');
    const params = new URLSearchParams(query);
    assertKnownUrlOptions(url, 'sqlite', params.keys(), URL_OPTIONS);
    const merged: SqliteStoreOptions = { ...options };
    const sync = params.get('synchronous');
    if (sync !== null) {
      if (sync !== 'full' && sync !== 'normal') throw new InvalidArgumentError(`synchronous must be full or normal, got ${sync}`);
      merged.synchronous = sync;
    }
    const retention = params.get('historyRetention');
    if (retention !== null) {
      const n = Number(retention);
      if (!/^\d+$/.test(retention) || !Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`historyRetention must be a positive integer, got ${retention}`);
      merged.historyRetention = n;
    }
    const group = params.get('groupCommit');
    if (group !== null) {
      if (group !== 'true' && group !== 'false') throw new InvalidArgumentError(`groupCommit must be true or false, got ${group}`);
      merged.groupCommit = group === 'true';
    }
    return new SqliteStore(path, merged);
  }

  constructor(path: string, options: SqliteStoreOptions = {}) {
    super();
    this.path = path === ':memory:' ? path : resolve(path);
    const synchronous = options.synchronous ?? 'full';
    // A misspelled path must not quietly become a new, empty store: the folder must exist (the file may be new).
    if (this.path !== ':memory:' && missing(dirname(this.path))) {
      throw new InvalidArgumentError(`sqlite: the folder ${dirname(this.path)} does not exist — check the path for a typo, or create the folder first`);
    }
    try {
      // Opening may wait for another process's migration: a blocking wait is fine once, at start.
      this.db = new Database(this.path, { timeout: OPEN_TIMEOUT_MS });
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      migrate(this.db);
      this.db.pragma(`busy_timeout = ${BUSY_SLICE_MS}`);
    } catch (cause) {
      throw new BackendError(`cannot open SQLite database ${this.path}: ${(cause as Error).message}`, { transient: isBusy(cause), cause });
    }
    this.capabilities = {
      atomic: true, ttl: true, history: true, watch: true, crossProcess: this.path !== ':memory:',
      durability: synchronous === 'full' ? 'fsync' : 'os-buffered',
    };
    this.codec = options.codec ?? jsonCodec;
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.retention = options.historyRetention ?? 100_000;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
    this.pollOption = options.pollIntervalMs;
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.localWrites.setMaxListeners(0);
    this.stmt = prepareStatements(this.db);
    this.inTransaction = this.db.transaction((fn: () => unknown) => fn());
    this.group = new GroupCommit({
      transaction: (body) => this.inTransaction.immediate(() => {
        this.txHead = undefined;
        body();
      }),
      runWrite: (run, guarded) => {
        const head = this.txHead;
        try {
          // Called inside the open transaction, better-sqlite3's wrapper runs `run` in a SAVEPOINT.
          return guarded ? this.inTransaction(run) : run();
        } catch (err) {
          this.txHead = head; // its rows are rolled back: so is the revision it drew
          throw err;
        }
      },
      isStoreError: (err) => isSqliteError(err),
      inTransaction: () => this.db.inTransaction,
      isBusy,
      translate: (err) => this.translate(err),
      committed: (writes) => this.afterCommit(writes),
      isOpen: () => this.db.open,
      lockTimeout: () => `the SQLite write lock on ${this.path} was not free within ${this.lockTimeoutMs} ms`,
    }, this.lockTimeoutMs, options.groupCommit ?? true);
    this.sweeper = setInterval(() => void this.sweepExpired().catch(() => undefined), options.sweepIntervalMs ?? 1000);
    this.sweeper.unref();
  }

  /** How many write transactions this store has committed; concurrent writes share one (group commit). */
  get commitCount(): number {
    return this.group.commits;
  }

  async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.assertOpen();
    assertKey(key);
    const row = this.read(() => this.stmt.get.get(key));
    return row === undefined ? null : this.toRecord<T>(row, Date.now());
  }

  protected async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    const bytes = this.encode(value);
    const entry = await this.write(() => {
      const previous = this.assertCondition(key, options);
      return this.apply(key, previous, bytes, this.nextRevision(), options.ttlMs, options.writer);
    });
    entry.value = this.codec.decode(bytes); // the caller's own copy; `entry` is fresh from apply()
    return entry as Entry<T>;
  }

  protected async doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    return this.write(() => {
      const current = this.assertCondition(key, options);
      if (current === null || isDeadRecord(current)) return null; // nothing deleted: no revision drawn
      const revision = this.nextRevision();
      this.remove(key, revision, options.writer);
      return revision;
    }, (revision) => revision !== null);
  }

  protected override async commitAtomic(ops: AtomicOp[]): Promise<{ revision: number }> {
    const encoded = new Map<string, Buffer>();
    for (const op of ops) if (op.type === 'set') encoded.set(op.key, this.encode(op.value));
    let wrote = false;
    return this.write(() => {
      wrote = false;
      const failed: FailedCheck[] = [];
      const found = new Map<string, StoredRecord | null>();
      for (const op of ops) if (!found.has(op.key)) found.set(op.key, this.current(op.key));
      for (const op of ops) {
        if (op.type !== 'check') continue;
        const failure = conditionFailure(op.key, found.get(op.key) ?? null, op.revision === null ? { ifAbsent: true } : { ifRevision: op.revision });
        if (failure) failed.push(failure);
      }
      if (failed.length > 0) throw new ConflictError(failed);
      // Each key is written at most once, so what is found before the writes is what each write replaces.
      const now = Date.now();
      const writes = ops.filter((op) => op.type === 'set' || (op.type === 'delete' && isLive(found.get(op.key) ?? null, now)));
      if (writes.length === 0) return { revision: this.nothingWritten(found) };
      const revision = this.nextRevision();
      for (const op of writes) {
        if (op.type === 'set') this.apply(op.key, found.get(op.key) ?? null, encoded.get(op.key) as Buffer, revision, op.ttlMs, undefined);
        else this.remove(op.key, revision, undefined);
      }
      wrote = true;
      return { revision };
    }, () => wrote);
  }

  async list<T = unknown>(options: ListOptions = {}): Promise<ListPage<T>> {
    this.assertOpen();
    const prefix = options.prefix ?? '';
    assertPrefix(prefix);
    const limit = assertLimit(options.limit, 10_000) ?? 1000;
    const now = Date.now();
    const entries: Entry<T>[] = [];
    let more = false;
    this.read(() => {
      // One lower bound, so the index seek starts at the page (with two, SQLite seeks on the first and scans the rest of the prefix).
      // Keys compare as UTF-8 bytes in SQLite: when `after` sorts before the prefix, the prefix is the bound.
      const after = options.after;
      const rows = after === undefined || Buffer.compare(Buffer.from(after), Buffer.from(prefix)) < 0
        ? this.stmt.listFrom.iterate(prefix)
        : this.stmt.listAfter.iterate(after);
      for (const row of rows) {
        // Keys are in byte order, so the first key without the prefix ends the range.
        if (!row.key.startsWith(prefix)) break;
        if (row.expires_at !== null && row.expires_at <= now) continue;
        if (entries.length === limit) {
          more = true;
          break;
        }
        entries.push(this.toRecord<T>(row, now) as Entry<T>);
      }
    });
    return more ? { entries, cursor: entries[entries.length - 1]?.key as string } : { entries };
  }

  /** Revisions are drawn inside the write transaction: the newest one visible has committed. */
  async headRevision(): Promise<number> {
    this.assertOpen();
    return this.read(() => this.stmt.lastRevision.get()?.value ?? 0);
  }

  async history<T = unknown>(key: string, options: HistoryOptions = {}): Promise<StoredRecord<T>[]> {
    this.assertOpen();
    assertKey(key);
    const limit = assertLimit(options.limit, 10_000) ?? 100;
    return this.read(() => this.stmt.history.all(key, limit)).map((row) => this.toRecord<T>(row, Number.NEGATIVE_INFINITY));
  }

  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    this.assertOpen();
    const matches = keyFilter(options);
    const queue = new AsyncQueue<WatchEvent<T>>(options.signal);
    let position = options.fromRevision ?? this.read(() => this.stmt.lastRevision.get()?.value ?? 0);
    let wake: (() => void) | undefined;
    // A change signalled while reading must not wait for the next safety poll.
    let dirty = false;
    const onWrite = () => {
      dirty = true;
      wake?.();
    };
    this.localWrites.on('write', onWrite);
    this.watchFiles();
    queue.onClose(() => {
      this.localWrites.off('write', onWrite);
      if (this.localWrites.listenerCount('write') === 0) this.unwatchFiles();
      wake?.();
    });
    // The position is (revision, key): an atomic commit's rows share one revision and may
    // straddle a page boundary, so paging by revision alone would skip the rest of it.
    // positionKey null: every change up to `position` has been read (between commits).
    let positionKey: string | null = null;
    // The events of the newest revision of a full page wait for the rest of their commit: a commit's
    // writes are pushed together, and none of them if its rest was pruned before it was read.
    let held: WatchEvent<T>[] = [];
    let heldRevision = -1;
    const release = () => {
      for (const event of held) queue.push(event);
      held = [];
    };
    const poll = async () => {
      while (!queue.closed && !this.isClosed) {
        dirty = false;
        // One snapshot for both reads, so a prune by another process cannot fall between them.
        const { prunedBelow, rows } = this.read(() => this.inTransaction.deferred(() => ({
          prunedBelow: this.stmt.prunedBelow.get()?.value ?? 0,
          rows: positionKey === null ? this.stmt.changesAfter.all(position, PAGE) : this.stmt.changesAfterKey.all(position, positionKey, PAGE),
        })) as { prunedBelow: number; rows: Row[] });
        // Pruning drops whole revisions (every row at or below prunedBelow). Between commits (positionKey null) the
        // watch needs the revisions after `position`; inside one (a page ended in the middle of an atomic commit)
        // it needs the rest of `position` itself: gone if that revision was pruned, never delivered in part.
        const needed = positionKey === null ? position + 1 : position;
        if (prunedBelow >= needed) throw new HistoryGoneError(needed - 1, prunedBelow + 1);
        for (const row of rows) {
          if (row.revision !== heldRevision) {
            release();
            heldRevision = row.revision;
          }
          position = row.revision;
          positionKey = row.key;
          if (matches(row.key)) held.push(this.toEvent<T>(row));
        }
        if (rows.length === PAGE) continue;
        // A short page read every change of the snapshot, and commits are whole: the last one is complete.
        release();
        positionKey = null;
        if (dirty) continue;
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

  /**
   * Another process's commit appends to the WAL (a checkpoint writes the
   * main file): a directory watch sees both, even when the WAL is recreated.
   */
  private watchFiles(): void {
    if (this.fileWatcher || this.path === ':memory:') return;
    const names = new Set([basename(this.path), `${basename(this.path)}-wal`]);
    try {
      this.fileWatcher = watchFiles(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file === null || names.has(String(file))) this.localWrites.emit('write');
      });
      this.fileWatcher.on('error', () => this.fileWatchFailed());
    } catch {
      this.fileWatchFailed();
    }
  }

  private fileWatchFailed(): void {
    this.unwatchFiles();
    this.pollIntervalMs = this.pollOption ?? 20;
  }

  private unwatchFiles(): void {
    this.fileWatcher?.close();
    this.fileWatcher = undefined;
  }

  protected async doClose(): Promise<void> {
    this.group.flushBeforeClose(new ClosedError(this.backend));
    clearInterval(this.sweeper);
    this.unwatchFiles();
    this.localWrites.emit('write');
    this.db.close();
  }

  /** Turns expired keys into tombstones with a new revision, so watchers see a delete. */
  async sweepExpired(): Promise<number> {
    if (this.isClosed) return 0;
    // Most sweeps find nothing: no write transaction, and no wake-up for every watcher.
    if (this.read(() => this.stmt.expired.all(Date.now())).length === 0) return 0;
    return this.write(() => {
      const now = Date.now();
      const rows = this.stmt.expired.all(now);
      for (const row of rows) this.remove(row.key, this.nextRevision(), undefined);
      return rows.length;
    }, (n) => n > 0);
  }

  private assertCondition(key: string, cond: Condition): StoredRecord | null {
    const current = this.current(key, cond.ifValue !== undefined);
    const failure = conditionFailure(key, current, cond);
    if (failure) throw new ConflictError([failure]);
    return current;
  }

  private current(key: string, decode = false): StoredRecord | null {
    const row = this.stmt.get.get(key);
    if (row === undefined) return null;
    if (row.deleted) return { key, revision: row.revision, deleted: true };
    const entry: Entry = { key, value: decode ? this.decode(row) : undefined, revision: row.revision, createdRevision: row.created_revision ?? row.revision, updatedAt: row.updated_at };
    if (row.expires_at !== null) entry.expiresAt = row.expires_at;
    return entry;
  }

  /**
   * The answer of an atomic commit that writes nothing (checks only, deletes
   * of absent keys), inside its write transaction: no revision is drawn — one
   * drawn and left without a row would be drawn again by the next write. It is
   * the highest revision its keys were found at, already committed, or, when
   * none of them was ever written, the head (the newest revision drawn in this
   * transaction, which commits with it, or the newest committed one; 0 on an
   * empty store).
   */
  private nothingWritten(found: Map<string, StoredRecord | null>): number {
    let seen = 0;
    for (const record of found.values()) seen = Math.max(seen, record?.revision ?? 0);
    return seen > 0 ? seen : this.txHead ?? (this.stmt.lastRevision.get()?.value ?? 0);
  }

  /**
   * Only inside a write transaction: BEGIN IMMEDIATE makes read-max-then-insert
   * one step. The newest revision is read once per transaction; the writes of a
   * group draw from it in turn.
   */
  private nextRevision(): number {
    this.txHead ??= (this.stmt.lastRevision.get() as { value: number }).value;
    this.lastRevision = ++this.txHead;
    return this.lastRevision;
  }

  private apply(key: string, previous: StoredRecord | null, bytes: Buffer, revision: number, ttlMs: number | undefined, writer: string | undefined): Entry<unknown> {
    const now = Date.now();
    const live = previous !== null && !isDeadRecord(previous, now);
    const createdRevision = live ? (previous as Entry).createdRevision : revision;
    const expiresAt = ttlMs === undefined ? null : now + ttlMs;
    this.record(key, bytes, revision, createdRevision, now, expiresAt, 0, writer ?? null);
    const entry: Entry<unknown> = { key, value: undefined, revision, createdRevision, updatedAt: now };
    if (expiresAt !== null) entry.expiresAt = expiresAt;
    if (writer !== undefined) entry.writer = writer;
    return entry;
  }

  private remove(key: string, revision: number, writer: string | undefined): void {
    this.record(key, null, revision, null, Date.now(), null, 1, writer ?? null);
  }

  /** The key's current row and its entry in the change log (positional binding: no object per write). */
  private record(...row: RowValues): void {
    this.stmt.upsert.run(...row);
    this.stmt.logChange.run(...row);
  }

  /**
   * Runs `fn` inside BEGIN IMMEDIATE, together with the other writes of this
   * turn (group commit, ./group-commit.ts). Waiting for another process's
   * lock happens there, in async sleeps between short busy slices.
   * `fn` checks first and writes after: once it has written a row it throws
   * nothing but SQLite's own errors (group commit relies on that to skip a
   * savepoint per write).
   */
  private write<R>(fn: () => R, changed: (result: R) => boolean = always): Promise<R> {
    this.assertOpen();
    return this.group.write(fn, changed);
  }

  private read<R>(fn: () => R): R {
    this.assertOpen();
    // WAL readers are blocked only briefly (recovery, checkpoint restart): retry a few slices.
    for (let attempt = 1; ; attempt++) {
      try {
        return fn();
      } catch (err) {
        if (!isBusy(err) || attempt >= 20) throw this.translate(err);
      }
    }
  }

  private afterCommit(writes: number): void {
    this.localWrites.emit('write');
    this.commitsSincePrune += writes;
    if (this.commitsSincePrune < 1000 || this.lastRevision <= this.retention) return;
    this.commitsSincePrune = 0;
    const below = this.lastRevision - this.retention;
    try {
      this.db.transaction(() => {
        this.stmt.setPruned.run(below);
        this.stmt.prune.run(below);
      }).immediate();
    } catch {
      // Pruning is housekeeping: a busy lock now means another process or a later commit does it.
    }
  }

  private translate(err: unknown): unknown {
    if (isSqliteError(err)) {
      return new BackendError(`SQLite: ${err.message}`, { transient: isBusy(err), cause: err });
    }
    return err;
  }

  private encode(value: unknown): Buffer {
    const bytes = this.codec.encode(value);
    assertValueSize(bytes, this.maxValueBytes);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private toRecord<T>(row: Row, now: number): StoredRecord<T> {
    const writer = row.writer === null ? {} : { writer: row.writer };
    if (row.deleted) return { key: row.key, revision: row.revision, deleted: true, ...writer, updatedAt: row.updated_at };
    if (row.expires_at !== null && row.expires_at <= now) return { key: row.key, revision: row.revision, deleted: true, ...writer };
    const entry: Entry<T> = {
      key: row.key,
      value: this.decode(row) as T,
      revision: row.revision,
      createdRevision: row.created_revision ?? row.revision,
      updatedAt: row.updated_at,
      ...writer,
    };
    if (row.expires_at !== null) entry.expiresAt = row.expires_at;
    return entry;
  }

  /** A value this codec cannot read (another codec wrote it, or the bytes are damaged) is a typed error. */
  private decode(row: Row): unknown {
    try {
      return this.codec.decode(row.value as Buffer);
    } catch (cause) {
      throw new BackendError(`the value of ${JSON.stringify(row.key)} at revision ${row.revision} cannot be decoded with the ${this.codec.name} codec`, { transient: false, cause });
    }
  }

  private toEvent<T>(row: Row): WatchEvent<T> {
    if (row.deleted) return { type: 'delete', key: row.key, revision: row.revision };
    return { type: 'put', key: row.key, revision: row.revision, entry: this.toRecord<T>(row, Number.NEGATIVE_INFINITY) as Entry<T> };
  }
}

function prepareStatements(db: Database.Database) {
  return {
    get: db.prepare<[string], Row>('SELECT * FROM kv WHERE key = ?'),
    upsert: db.prepare<RowValues>(
      `INSERT INTO kv (key, value, revision, created_revision, updated_at, expires_at, deleted, writer)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision,
         created_revision = excluded.created_revision, updated_at = excluded.updated_at,
         expires_at = excluded.expires_at, deleted = excluded.deleted, writer = excluded.writer`,
    ),
    logChange: db.prepare<RowValues>(
      `INSERT INTO changes (key, value, revision, created_revision, updated_at, expires_at, deleted, writer)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    // The last revision drawn is the newest one in the change log (pruning drops only old ones);
    // reading it costs no page write, unlike bumping a counter row. `pruned_below` is the floor
    // should pruning ever empty the log, `revision` the floor left by databases that kept a counter.
    lastRevision: db.prepare<[], { value: number }>(
      "SELECT max(coalesce((SELECT max(revision) FROM changes), 0), (SELECT max(value) FROM meta WHERE name IN ('revision', 'pruned_below'))) AS value",
    ),
    prunedBelow: db.prepare<[], { value: number }>("SELECT value FROM meta WHERE name = 'pruned_below'"),
    prune: db.prepare('DELETE FROM changes WHERE revision <= ?'),
    setPruned: db.prepare("UPDATE meta SET value = max(value, ?) WHERE name = 'pruned_below'"),
    changesAfter: db.prepare<[number, number], Row>('SELECT * FROM changes WHERE revision > ? ORDER BY revision, key LIMIT ?'),
    changesAfterKey: db.prepare<[number, string, number], Row>('SELECT * FROM changes WHERE (revision, key) > (?, ?) ORDER BY revision, key LIMIT ?'),
    history: db.prepare<[string, number], Row>('SELECT * FROM changes WHERE key = ? ORDER BY revision DESC LIMIT ?'),
    listFrom: db.prepare<[string], Row>('SELECT * FROM kv WHERE key >= ? AND deleted = 0 ORDER BY key'),
    listAfter: db.prepare<[string], Row>('SELECT * FROM kv WHERE key > ? AND deleted = 0 ORDER BY key'),
    expired: db.prepare<[number], Row>('SELECT * FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ? AND deleted = 0 LIMIT 500'),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

const always = () => true;

function isLive(record: StoredRecord | null, now: number): boolean {
  return record !== null && !isDeadRecord(record, now);
}

function isDeadRecord(record: StoredRecord, now = Date.now()): boolean {
  return 'deleted' in record || (record.expiresAt !== undefined && record.expiresAt <= now);
}

function isSqliteError(err: unknown): err is Error & { code: string } {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('SQLITE_');
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_LOCKED';
}

export function sqliteStore(path: string, options?: SqliteStoreOptions): SqliteStore {
  return new SqliteStore(path, options);
}

/** Not there at all (ENOENT); a path that cannot be a folder (ENOTDIR, EACCES) is left to the open, as a BackendError. */
function missing(folder: string): boolean {
  try {
    statSync(folder);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}
