import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { BackendError, InvalidArgumentError } from '../core/index.js';
import { assertKnownSchema, migrate } from './schema.js';

// A short busy wait inside SQLite, then async waits in JS: a writer blocked
// by another process never freezes the event loop for more than this.
const BUSY_SLICE_MS = 5;
const OPEN_TIMEOUT_MS = 10_000;

/** Opens (and migrates) the database at an absolute path or `:memory:`. */
export function openDatabase(path: string, synchronous: 'full' | 'normal'): Database.Database {
  // A misspelled path must not quietly become a new, empty store: the folder must exist (the file may be new).
  if (path !== ':memory:' && missing(dirname(path))) {
    throw new InvalidArgumentError(`sqlite: the folder ${dirname(path)} does not exist — check the path for a typo, or create the folder first`);
  }
  try {
    // Opening may wait for another process's migration: a blocking wait is fine once, at start.
    const db = new Database(path, { timeout: OPEN_TIMEOUT_MS });
    try {
      // A file of a newer revkit is refused before anything of it changes (even its journal mode).
      assertKnownSchema(db);
    } catch (err) {
      db.close();
      throw err;
    }
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    try {
      migrate(db);
    } catch (err) {
      db.close();
      throw err;
    }
    db.pragma(`busy_timeout = ${BUSY_SLICE_MS}`);
    return db;
  } catch (cause) {
    if (InvalidArgumentError.is(cause)) throw cause; // a file revkit must not touch (a newer schema)
    throw new BackendError(`cannot open SQLite database ${path}: ${(cause as Error).message}`, { transient: isBusy(cause), cause });
  }
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

export function isSqliteError(err: unknown): err is Error & { code: string } {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('SQLITE_');
}

export function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_LOCKED';
}

/** SQLite's own errors become BackendErrors (transient when busy); any other error passes unchanged. */
export function translateError(err: unknown): unknown {
  if (isSqliteError(err)) {
    return new BackendError(`SQLite: ${err.message}`, { transient: isBusy(err), cause: err });
  }
  return err;
}
