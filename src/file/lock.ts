/**
 * The cross-process write lock: `BEGIN IMMEDIATE` on a sidecar SQLite
 * database. SQLite takes it with an fcntl() lock, which the kernel drops
 * when the holder dies — and only then: a holder that is stopped or slow
 * keeps it, so there is no stale-lock timeout that could let a second writer
 * in (see README.md for the alternatives and why this one).
 */
import Database from 'better-sqlite3';
import { BackendError, sleep } from '../core/index.js';

// A short busy wait inside SQLite, then an async sleep: a waiting writer
// never freezes its event loop for longer than this.
const BUSY_SLICE_MS = 5;
// Waiters try again at least this often, so a holder's pause between two commits is a real opening.
const MAX_SLEEP_MS = 5;

export class ProcessLock {
  private readonly db: Database.Database;
  private held = false;

  constructor(readonly path: string) {
    try {
      this.db = new Database(path, { timeout: 10_000 });
      // The lock database stores nothing worth an fsync.
      this.db.pragma('synchronous = OFF');
      // Give the database its header and a table now, once (waiting up to the open timeout): a
      // lock transaction on an empty file would write them at COMMIT, which needs every other
      // process's probe out of the way and can fail busy.
      this.db.exec('CREATE TABLE IF NOT EXISTS revkit_lock (id INTEGER PRIMARY KEY)');
      this.db.pragma(`busy_timeout = ${BUSY_SLICE_MS}`);
    } catch (cause) {
      throw new BackendError(`cannot open the lock file ${path}: ${(cause as Error).message}`, { transient: false, cause });
    }
  }

  /** Whether the latest acquire() had to wait for another holder. */
  contended = false;

  /**
   * Waits for the lock. `giveUp()` is asked after every failed try; when it
   * returns true the wait ends and acquire() resolves false.
   */
  async acquire(giveUp: () => boolean): Promise<boolean> {
    this.contended = false;
    for (let wait = 1; ; wait = Math.min(wait * 2, MAX_SLEEP_MS)) {
      if (this.tryAcquire()) return true;
      this.contended = true;
      if (giveUp()) return false;
      await sleep(Math.random() * wait);
    }
  }

  /** The transaction changed nothing: ROLLBACK ends it without asking for any further lock. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    try {
      this.db.exec('ROLLBACK');
    } catch (cause) {
      throw new BackendError(`cannot release the lock ${this.path}: ${(cause as Error).message}`, { transient: false, cause });
    }
  }

  close(): void {
    this.release();
    this.db.close();
  }

  private tryAcquire(): boolean {
    try {
      this.db.exec('BEGIN IMMEDIATE');
      this.held = true;
      return true;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return false;
      throw new BackendError(`cannot take the lock ${this.path}: ${(err as Error).message}`, { transient: false, cause: err });
    }
  }
}
