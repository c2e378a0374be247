/**
 * SQLite backend (better-sqlite3), the embedded default.
 *
 * URL: `sqlite:./path.db`, `sqlite:/abs/path.db`, options as a query string:
 * `?synchronous=normal` (default full), `?historyRetention=100000`,
 * `?groupCommit=false` (one transaction per write; for comparisons).
 *
 * Every write runs in BEGIN IMMEDIATE, so the condition check and the write
 * are one step across every process that opens the file. Revisions are drawn
 * inside that transaction from the newest one in the change log: store-wide,
 * strictly increasing, committed in revision order — which makes the `changes` table
 * a gap-free log for watch() even across processes.
 *
 * Writes from one process that arrive together share one transaction and one
 * fsync (group commit, ./group-commit.ts), each with its own condition check
 * and its own outcome.
 *
 * The parts are listed in ./README.md ("Where the code is").
 */
import { resolve } from 'node:path';
import type Database from 'better-sqlite3';
import {
  BaseStore, ClosedError, ConflictError, DEFAULT_MAX_VALUE_BYTES,
  assertKey, assertLimit, assertAfter, assertOptions, assertPrefix, conditionFailure, jsonCodec,
  type AtomicOp, type Capabilities, type Codec, type DeleteOptions, type Entry, type FailedCheck,
  type HistoryOptions, type InWriteDecision, type ListOptions, type ListPage, type PutOptions, type StoredRecord,
  type WatchEvent, type WatchOptions,
} from '../core/index.js';
import { GroupCommit } from './group-commit.js';
import { isBusy, isSqliteError, openDatabase, translateError } from './connection.js';
import { parseSqliteUrl, type SqliteStoreOptions } from './options.js';
import { encodeRow, isDeadRecord, isLive, toEvent, toRecord, type EncodedRow } from './records.js';
import { prepareStatements, type Row, type Statements } from './statements.js';
import { ChangeHub, WriteSignal, type ChangeLog } from './watch.js';
import { TransactionWrites } from './writes.js';

export type { SqliteStoreOptions } from './options.js';

export class SqliteStore extends BaseStore {
  readonly backend = 'sqlite';
  readonly capabilities: Capabilities;
  readonly path: string;
  private readonly db: Database.Database;
  private readonly codec: Codec;
  private readonly maxValueBytes: number;
  private readonly retention: number;
  private readonly lockTimeoutMs: number;
  private readonly writeSignal: WriteSignal;
  /** Every watch() of this store, read by one reader (watch.ts). */
  private readonly changeHub: ChangeHub;
  private readonly sweeper: NodeJS.Timeout;
  private readonly stmt: Statements;
  private readonly writes: TransactionWrites;
  /** better-sqlite3 builds a transaction wrapper per call to transaction(): build one, pass the work in. */
  private readonly inTransaction: Database.Transaction<(fn: () => unknown) => unknown>;
  private commitsSincePrune = 0;
  private readonly group: GroupCommit;

  /** `sqlite:./path.db?synchronous=normal&historyRetention=100000&groupCommit=false`; any other option is refused. */
  static async fromUrl(url: string, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
    const parsed = parseSqliteUrl(url, options);
    return new SqliteStore(parsed.path, parsed.options);
  }

  constructor(path: string, options: SqliteStoreOptions = {}) {
    super();
    this.path = path === ':memory:' ? path : resolve(path);
    const synchronous = options.synchronous ?? 'full';
    this.db = openDatabase(this.path, synchronous);
    this.capabilities = {
      atomic: true, ttl: true, history: true, watch: true, crossProcess: this.path !== ':memory:',
      durability: synchronous === 'full' ? 'fsync' : 'os-buffered',
    };
    this.codec = options.codec ?? jsonCodec;
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.valueFormat = { codec: this.codec, maxValueBytes: this.maxValueBytes };
    this.retention = options.historyRetention ?? 100_000;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
    this.writeSignal = new WriteSignal(this.path, options.pollIntervalMs);
    this.stmt = prepareStatements(this.db);
    this.writes = new TransactionWrites(this.stmt, this.codec);
    this.inTransaction = this.db.transaction((fn: () => unknown) => fn());
    this.changeHub = new ChangeHub({
      head: () => this.read(() => this.stmt.lastRevision.get()?.value ?? 0),
      readPage: (position, positionKey, limit) => this.read(() => this.inTransaction.deferred(() => ({
        prunedBelow: this.stmt.prunedBelow.get()?.value ?? 0,
        rows: positionKey === null ? this.stmt.changesAfter.all(position, limit) : this.stmt.changesAfterKey.all(position, positionKey, limit),
      })) as { prunedBelow: number; rows: Row[] }),
      keyChangesAfter: (key, after, max) => this.read(() => this.inTransaction.deferred(() => this.keyChangesAfter(key, after, max))) as ReturnType<ChangeLog['keyChangesAfter']>,
      toEvent: <E>(row: Row) => toEvent<E>(this.codec, row),
      isClosed: () => this.isClosed,
    }, this.writeSignal);
    this.group = new GroupCommit({
      transaction: (body) => {
        this.inTransaction.immediate(() => {
          this.writes.begin();
          body();
        });
        this.writes.committed();
      },
      // Called inside the open transaction, better-sqlite3's wrapper runs `run` in a SAVEPOINT.
      runWrite: (run, guarded) => this.writes.undoable(() => guarded ? this.inTransaction(run) : run()),
      isStoreError: (err) => isSqliteError(err),
      inTransaction: () => this.db.inTransaction,
      isBusy,
      translate: translateError,
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
    await this.outsideWrite();
    const row = this.read(() => this.stmt.get.get(key));
    return row === undefined ? null : toRecord<T>(this.codec, row, Date.now());
  }

  protected async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    const encoded = encodeRow(this.codec, value, this.maxValueBytes);
    const entry = await this.write(() => {
      const previous = this.writes.assertCondition(key, options);
      return this.writes.apply(key, previous, encoded.bytes, this.writes.nextRevision(), options.ttlMs, options.writer);
    });
    entry.value = encoded.value; // the caller's own copy; `entry` is fresh from apply()
    return entry as Entry<T>;
  }

  /**
   * update()'s attempt in one write transaction (core/update.ts attemptInWrite): read, compose, write.
   * Group commit runs a batch again (each write in a savepoint) after a write failed inside SQLite:
   * `decide` is not called again — its decision is written again if the key reads the same, and
   * the write fails with a conflict if not (another process may have committed in between).
   */
  async updateInWrite(key: string, decide: (read: StoredRecord | null) => InWriteDecision | undefined, ttlMs: number | undefined): Promise<Entry | null> {
    let first: { row: Row | undefined; decision: InWriteDecision | undefined } | undefined;
    let encoded: EncodedRow | undefined;
    const entry = await this.write(() => {
      encoded = undefined;
      const row = this.stmt.get.get(key);
      const read = row === undefined ? null : toRecord(this.codec, row, Date.now());
      if (first !== undefined && !sameRow(first.row, row)) throw new ConflictError([{ key, expected: first.row?.revision ?? 0, actual: row?.revision ?? null }]);
      first ??= { row, decision: decide(read) };
      if (first.decision === undefined) return null;
      encoded = encodeRow(this.codec, first.decision.value, this.maxValueBytes);
      return this.writes.apply(key, read, encoded.bytes, this.writes.nextRevision(), ttlMs, first.decision.writer);
    }, (written) => written !== null, true);
    if (entry !== null) entry.value = (encoded as EncodedRow).value; // the caller's own copy
    return entry;
  }

  protected async doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    return this.write(() => {
      const current = this.writes.assertCondition(key, options);
      if (current === null || isDeadRecord(current)) return null; // nothing deleted: no revision drawn
      const revision = this.writes.nextRevision();
      this.writes.remove(key, current.revision, revision, options.writer);
      return revision;
    }, (revision) => revision !== null);
  }

  protected override async commitAtomic(ops: AtomicOp[]): Promise<{ revision: number }> {
    const encoded = new Map<string, Buffer>();
    for (const op of ops) if (op.type === 'set') encoded.set(op.key, encodeRow(this.codec, op.value, this.maxValueBytes).bytes);
    let wrote = false;
    return this.write(() => {
      wrote = false;
      const failed: FailedCheck[] = [];
      const found = new Map<string, StoredRecord | null>();
      for (const op of ops) if (!found.has(op.key)) found.set(op.key, this.writes.current(op.key));
      for (const op of ops) {
        if (op.type !== 'check') continue;
        const failure = conditionFailure(op.key, found.get(op.key) ?? null, op.revision === null ? { ifAbsent: true } : { ifRevision: op.revision });
        if (failure) failed.push(failure);
      }
      if (failed.length > 0) throw new ConflictError(failed);
      // Each key is written at most once, so what is found before the writes is what each write replaces.
      const now = Date.now();
      const writes = ops.filter((op) => op.type === 'set' || (op.type === 'delete' && isLive(found.get(op.key) ?? null, now)));
      if (writes.length === 0) return { revision: this.writes.nothingWritten(found) };
      const revision = this.writes.nextRevision();
      for (const op of writes) {
        if (op.type === 'set') this.writes.apply(op.key, found.get(op.key) ?? null, encoded.get(op.key) as Buffer, revision, op.ttlMs, undefined);
        else this.writes.remove(op.key, (found.get(op.key) as StoredRecord).revision, revision, undefined);
      }
      wrote = true;
      return { revision };
    }, () => wrote);
  }

  async list<T = unknown>(options: ListOptions = {}): Promise<ListPage<T>> {
    assertOptions(options, 'list()');
    this.assertOpen();
    const prefix = options.prefix ?? '';
    assertPrefix(prefix);
    assertAfter(options.after);
    const limit = assertLimit(options.limit, 10_000) ?? 1000;
    await this.outsideWrite();
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
        entries.push(toRecord<T>(this.codec, row, now) as Entry<T>);
      }
    });
    return more ? { entries, cursor: entries[entries.length - 1]?.key as string } : { entries };
  }

  /** Revisions are drawn inside the write transaction: the newest one visible has committed. */
  async headRevision(): Promise<number> {
    this.assertOpen();
    await this.outsideWrite();
    return this.read(() => this.stmt.lastRevision.get()?.value ?? 0);
  }

  async history<T = unknown>(key: string, options: HistoryOptions = {}): Promise<StoredRecord<T>[]> {
    assertOptions(options, 'history()');
    this.assertOpen();
    assertKey(key);
    const limit = assertLimit(options.limit, 10_000) ?? 100;
    await this.outsideWrite();
    return this.read(() => this.inTransaction.deferred(() => this.changesOf(key, limit)) as Row[]).map((row) => toRecord<T>(this.codec, row, Number.NEGATIVE_INFINITY));
  }

  /**
   * In one snapshot: the changes of `key` after revision `after`, oldest first, and the head they reach to —
   * by the key's chain, not the whole log after `after`; undefined when the log was pruned past `after`
   * or the key has more than `max` changes since (the watch then reads the log).
   */
  private keyChangesAfter(key: string, after: number, max: number): { head: number; rows: Row[] } | undefined {
    if ((this.stmt.prunedBelow.get()?.value ?? 0) > after) return undefined;
    const rows: Row[] = [];
    let revision = this.stmt.get.get(key)?.revision ?? 0;
    while (revision > after) {
      const row = this.stmt.change.get(revision, key);
      // Not pruned (checked above) yet missing, or unlinked: the chain cannot answer; the log can.
      if (row === undefined || row.previous_revision === null || rows.length === max) return undefined;
      rows.push(row);
      revision = row.previous_revision;
    }
    return { head: this.stmt.lastRevision.get()?.value ?? 0, rows: rows.reverse() };
  }

  /**
   * The key's newest changes, newest first: its row names the last one, each
   * change the one before (0: none; by primary key, no by-key index). Pruning
   * removes the oldest revisions, so the chain ends where history does.
   */
  private changesOf(key: string, limit: number): Row[] {
    const rows: Row[] = [];
    let revision = this.stmt.get.get(key)?.revision ?? 0;
    while (revision > 0 && rows.length < limit) {
      const row = this.stmt.change.get(revision, key);
      if (row === undefined) break;
      rows.push(row);
      // Unlinked (the schema-2 trigger links every row, so only if it was dropped): scan for the rest.
      if (row.previous_revision === null) return [...rows, ...this.stmt.changesBefore.all(key, row.revision, limit - rows.length)];
      revision = row.previous_revision;
    }
    return rows;
  }

  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    this.assertOpen();
    // Called from code inside a write transaction (a mutation): "now" is the head committed before it.
    return this.changeHub.follow<T>(options, this.db.inTransaction ? this.writes.committedHead() : undefined);
  }

  /**
   * User code can run inside a write transaction (update()'s mutations, validators, defaults, a codec):
   * a read it starts there waits for the transaction to end, so it never sees what may roll back,
   * and a close() it calls does not close the connection under the transaction.
   */
  private async outsideWrite(): Promise<void> {
    if (this.db.open && this.db.inTransaction) await new Promise((resolve) => setImmediate(resolve));
  }

  protected async doClose(): Promise<void> {
    await this.outsideWrite();
    this.group.flushBeforeClose(new ClosedError(this.backend));
    clearInterval(this.sweeper);
    this.writeSignal.close();
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
      for (const row of rows) this.writes.remove(row.key, row.revision, this.writes.nextRevision(), undefined);
      return rows.length;
    }, (n) => n > 0);
  }

  /**
   * Runs `fn` inside BEGIN IMMEDIATE, together with the other writes of this
   * turn (group commit, ./group-commit.ts). Waiting for another process's
   * lock happens there, in async sleeps between short busy slices.
   * `fn` checks first and writes after: once it has written a row it throws
   * nothing but SQLite's own errors (group commit relies on that to skip a
   * savepoint per write).
   */
  private write<R>(fn: () => R, changed: (result: R) => boolean = always, declinable = false): Promise<R> {
    this.assertOpen();
    return this.group.write(fn, changed, declinable);
  }

  private read<R>(fn: () => R): R {
    this.assertOpen();
    // WAL readers are blocked only briefly (recovery, checkpoint restart): retry a few slices.
    for (let attempt = 1; ; attempt++) {
      try {
        return fn();
      } catch (err) {
        if (!isBusy(err) || attempt >= 20) throw translateError(err);
      }
    }
  }

  private afterCommit(writes: number): void {
    this.writeSignal.emit();
    this.commitsSincePrune += writes;
    const lastRevision = this.writes.lastRevision;
    if (this.commitsSincePrune < 1000 || lastRevision <= this.retention) return;
    this.commitsSincePrune = 0;
    this.prune(lastRevision - this.retention);
  }

  /**
   * Drops the changes at or below `through`, PRUNE_SPAN revisions per
   * transaction, yielding the event loop between them: a store opened with a
   * shorter retention than its log once held the loop for the whole delete
   * (16.5 s for 9M rows, bench/growth-history.mjs).
   */
  private prune(through: number): void {
    if (this.isClosed) return;
    let more = false;
    try {
      this.db.transaction(() => {
        const oldest = this.stmt.oldestChange.get();
        if (oldest == null || oldest > through) return;
        const upTo = Math.min(through, oldest + PRUNE_SPAN - 1);
        this.stmt.setPruned.run(upTo);
        this.stmt.prune.run(upTo);
        more = upTo < through;
      }).immediate();
    } catch {
      // Pruning is housekeeping: a busy lock now means another process or a later commit does it.
      return;
    }
    if (more) setImmediate(() => this.prune(through));
  }

}

const always = () => true;

/** The same state of a key (group commit's second run of a batch against its first). */
function sameRow(a: Row | undefined, b: Row | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.revision === b.revision && a.deleted === b.deleted && a.expires_at === b.expires_at && a.writer === b.writer
    && (a.value === null ? b.value === null : b.value !== null && Buffer.compare(a.value as Buffer, b.value as Buffer) === 0);
}

/** Revisions of the change log one pruning transaction deletes (≈ 2 µs a row). */
const PRUNE_SPAN = 10_000;

export function sqliteStore(path: string, options?: SqliteStoreOptions): SqliteStore {
  return new SqliteStore(path, options);
}
