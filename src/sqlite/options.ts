import { InvalidArgumentError, type StoreOptions } from '../core/index.js';
import { assertKnownUrlOptions } from '../core/redact.js';

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

/** Options a sqlite: URL may carry. */
const URL_OPTIONS = ['synchronous', 'historyRetention', 'groupCommit'] as const;

/** `sqlite:./path.db?synchronous=normal&historyRetention=100000&groupCommit=false`; any other option is refused. */
export function parseSqliteUrl(url: string, options: SqliteStoreOptions): { path: string; options: SqliteStoreOptions } {
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
  return { path, options: merged };
}
