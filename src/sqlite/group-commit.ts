import { setImmediate as onNextTurn } from 'node:timers';
import { BackendError, ClosedError, IN_WRITE_DECLINED, sleep } from '../core/index.js';

/** One write waiting for the next commit. */
interface Pending {
  run: () => unknown;
  changed: (result: unknown) => boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  deadline: number;
  /** An update() attempt that reads and composes outside rather than wait for another process's lock. */
  declinable: boolean;
  /** Its `run` has been called (in a transaction that then rolled back): it is not declined any more. */
  started?: boolean;
}

export interface CommitHooks {
  /** Runs `body` in BEGIN IMMEDIATE … COMMIT; throws what SQLite threw (the transaction is rolled back). */
  transaction(body: () => void): void;
  /** Runs one write inside the open transaction; `guarded`: in a savepoint, so that its failure undoes only its own rows. */
  runWrite(run: () => unknown, guarded: boolean): unknown;
  /** An error raised by SQLite itself, which may come after some of a write's rows. */
  isStoreError(err: unknown): boolean;
  /** False once SQLite has rolled the whole transaction back by itself (I/O error, disk full): the batch fails. */
  inTransaction(): boolean;
  isBusy(err: unknown): boolean;
  translate(err: unknown): unknown;
  /** Called once per committed batch that changed something, with the number of writes in it. */
  committed(writes: number): void;
  isOpen(): boolean;
  /** Text for the error of a write whose lock wait ran out. */
  lockTimeout(): string;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Thrown through better-sqlite3's transaction wrapper to roll the batch back. */
const WROTE_THEN_FAILED = Symbol('a write failed after writing rows');

/**
 * Group commit: writes that arrive in one turn of the event loop, or while
 * this process waits for another process's write lock, are committed
 * together in the next BEGIN IMMEDIATE … COMMIT — one fsync for all of them.
 * Each runs its own condition check against the state inside that
 * transaction, in arrival order, and gets its own result or error; a write
 * that fails leaves nothing behind and fails alone (see runBatch).
 *
 * Why the flush runs on setImmediate (measured: bench/sqlite-group-figures.mjs,
 * see bench/lib/decisions.md): better-sqlite3 is synchronous, so nothing
 * arrives *during* an fsync in this thread. Writes accumulate in two places:
 * the microtask continuations of callers answered by the previous commit (all
 * run before the check phase) and the sockets the server reads in one poll
 * phase — their requests sat in kernel buffers during the fsync. setImmediate
 * runs after both; a microtask flush would commit each HTTP request alone.
 * A worker thread would let JS run during the fsync, but every write would
 * pay two thread hops, which costs a single writer more than it saves.
 */
export class GroupCommit {
  private readonly queue: Pending[] = [];
  private scheduled: ReturnType<typeof onNextTurn> | undefined;
  /** True while the batch waits (async) for another process's write lock. */
  private waiting = false;
  private busyWaitMs = 1;
  /** SQLite's SQLITE_BUSY of the last try, the cause of a lock-timeout error. */
  private lastBusy: unknown;
  /** Write transactions committed so far, each carrying a whole batch. */
  commits = 0;

  /** `grouped: false` commits one write per transaction (for comparisons), in the same turn. */
  constructor(private readonly hooks: CommitHooks, private readonly lockTimeoutMs: number, private readonly grouped = true) {}

  /**
   * Queues `run` for the next commit; it is called inside that transaction.
   * `declinable`: while another process holds the write lock, rejected with
   * IN_WRITE_DECLINED instead of waiting (core/update.ts).
   */
  write<R>(run: () => R, changed: (result: R) => boolean, declinable = false): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (declinable && this.waiting) {
        reject(IN_WRITE_DECLINED);
        return;
      }
      this.queue.push({
        run, changed: changed as (result: unknown) => boolean, resolve: resolve as (value: unknown) => void, reject,
        deadline: Date.now() + this.lockTimeoutMs, declinable,
      });
      if (this.scheduled === undefined && !this.waiting) this.scheduled = onNextTurn(this.flush);
    });
  }

  /** Before close: commits what is queued now, once; what cannot be committed gets ClosedError. */
  flushBeforeClose(closed: ClosedError): void {
    if (this.scheduled !== undefined) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    while (!this.waiting && this.queue.length > 0) this.commit(this.grouped ? this.queue.splice(0) : this.queue.splice(0, 1), true);
    for (const op of this.queue.splice(0)) op.reject(closed);
  }

  private readonly flush = (): void => {
    this.scheduled = undefined;
    if (this.queue.length === 0) return;
    if (!this.hooks.isOpen()) {
      for (const op of this.queue.splice(0)) op.reject(new ClosedError('sqlite'));
      return;
    }
    for (;;) {
      if (this.queue.length === 0) return;
      if (!this.commit(this.grouped ? this.queue.splice(0) : this.queue.splice(0, 1), false)) break;
    }
    // Another process holds the write lock: wait without blocking the loop; writes arriving meanwhile join in.
    this.waiting = true;
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const op = this.queue[i] as Pending;
      if (!op.declinable || op.started) continue;
      this.queue.splice(i, 1);
      op.reject(IN_WRITE_DECLINED);
    }
    const delay = Math.random() * this.busyWaitMs;
    this.busyWaitMs = Math.min(this.busyWaitMs * 2, 25);
    void sleep(delay).then(() => {
      this.waiting = false;
      this.dropTimedOut();
      this.flush();
    });
  };

  /** False when the lock was busy: the batch is back at the head of the queue. */
  private commit(batch: Pending[], final: boolean): boolean {
    let outcomes: Outcome[] = [];
    try {
      try {
        outcomes = this.runBatch(batch, false);
      } catch (err) {
        if (err !== WROTE_THEN_FAILED) throw err;
        // A write failed inside SQLite after some of its rows: everything was rolled back; again, each write in a savepoint.
        outcomes = this.runBatch(batch, true);
      }
    } catch (err) {
      if (this.hooks.isBusy(err) && !final) {
        this.lastBusy = err;
        this.queue.unshift(...batch);
        return false;
      }
      const error = this.hooks.isBusy(err) ? new ClosedError('sqlite') : this.hooks.translate(err);
      for (const op of batch) op.reject(error);
      return true;
    }
    let writes = 0;
    this.busyWaitMs = 1;
    this.commits++;
    batch.forEach((op, i) => {
      const outcome = outcomes[i] as Outcome;
      if (outcome.ok && op.changed(outcome.value)) writes++;
    });
    if (writes > 0) this.hooks.committed(writes);
    batch.forEach((op, i) => {
      const outcome = outcomes[i] as Outcome;
      if (outcome.ok) op.resolve(outcome.value);
      else op.reject(this.hooks.translate(outcome.error));
    });
    return true;
  }

  /**
   * One transaction for the batch. A write that fails with anything but a
   * SQLite error has failed its checks before writing a row (the contract of
   * the store's write functions), so it needs no savepoint; one failing inside
   * SQLite may have written some rows: unless each write runs in a savepoint
   * (`guarded`), the whole transaction is rolled back and the caller retries guarded.
   * A savepoint costs two statements per write (≈ 10 % of a batched put).
   */
  private runBatch(batch: Pending[], guarded: boolean): Outcome[] {
    const outcomes: Outcome[] = [];
    this.hooks.transaction(() => {
      // One write alone: if it throws, the whole transaction is its own.
      if (batch.length === 1) {
        (batch[0] as Pending).started = true;
        outcomes.push({ ok: true, value: this.hooks.runWrite((batch[0] as Pending).run, false) });
        return;
      }
      for (const op of batch) {
        op.started = true;
        try {
          outcomes.push({ ok: true, value: this.hooks.runWrite(op.run, guarded) });
        } catch (error) {
          if (this.hooks.isBusy(error) || !this.hooks.inTransaction()) throw error;
          if (!guarded && this.hooks.isStoreError(error)) throw WROTE_THEN_FAILED;
          outcomes.push({ ok: false, error });
        }
      }
    });
    return outcomes;
  }

  private dropTimedOut(): void {
    const now = Date.now();
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const op = this.queue[i] as Pending;
      if (op.deadline > now) continue;
      op.reject(new BackendError(this.hooks.lockTimeout(), { transient: true, cause: this.lastBusy }));
      this.queue.splice(i, 1);
    }
  }
}
