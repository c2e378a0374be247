/**
 * What a PostgreSQL store can be told: its options, the URL that carries them, and their defaults.
 *
 * URL form (what `open()` accepts):
 *
 *   postgres://user:pass@host:5432/db?prefix=revkit_&schema=public
 *   postgres://user:pass@h1:5432,h2:5433/db   several hosts, as libpq takes them: revkit
 *       connects to the one that accepts writes (target_session_attrs=read-write,
 *       the only behaviour; the option may say read-write or primary) and moves to
 *       a promoted standby after a failover (hosts.ts, lineage.ts)
 *
 * revkit-specific query parameters (removed before the URL reaches pg):
 *   prefix              table name prefix, default `revkit_` ([a-z_][a-z0-9_]*, ≤ 40 chars)
 *   schema              schema to hold the tables, default `public` (created if missing)
 *   historyDepth        past revisions kept per key for history(), default 64
 *   changeRetentionMs   changes beyond historyDepth are still kept this long for watch(), default 60000
 *   tombstoneRetentionMs  tombstones are purged after this long, default 86400000 (1 day)
 *   sweepIntervalMs     background TTL removal / pruning period, default 1000
 *   watchPollMs         watch() fallback poll period, default 500 (NOTIFY wakes it earlier)
 *   poolSize            size of the pg.Pool the store creates, default 5 (DEFAULT_POOL_SIZE)
 *   notify              `false` to not send NOTIFY wake-ups after writes
 *   groupCommit         `false` to send every write in its own statement (see batch.ts)
 *   batchesInFlight     group commit: batches out at once, default 2
 *   closeTimeoutMs      close(): how long calls in flight may still finish, default 1000
 * The connection options pg itself reads from a URL go to pg as usual
 * (PG_URL_OPTIONS: sslmode, application_name, options, statement_timeout, …);
 * connect_timeout (seconds, libpq's) bounds one connection attempt, default 10.
 * Any other option is refused (InvalidArgumentError), never silently ignored.
 *
 * Or reuse an application's pool: `await postgresStore(pool, { prefix: 'orders_' })`.
 * Such a pool stays the application's: close() does not end it, and the
 * application must handle the pool's 'error' event (idle connections die
 * when the server restarts; an unhandled 'error' event kills the process).
 */
import { InvalidArgumentError, type StoreOptions } from '../core/index.js';
import { assertKnownUrlOptions, redactUrl, withoutUrlInput } from '../core/redact.js';
import { splitHosts, type Member } from './hosts.js';

export interface PostgresStoreOptions extends StoreOptions {
  /** Schema holding the tables; default `public`. */
  schema?: string;
  /** Prefix of every table name, so several stores share a database; default `revkit_`. */
  prefix?: string;
  /** Past revisions per key kept for history(); default 64. */
  historyDepth?: number;
  /**
   * Changes beyond historyDepth are still kept this long for watch({ fromRevision }); default 60 s. A watch
   * "from now" whose start waits longer than this to settle (a revision held open elsewhere) fails with
   * HistoryGoneError if the sweep pruned a change it owes meanwhile.
   */
  changeRetentionMs?: number;
  /** Tombstones are purged after this long; default one day. Revisions are never reused either way. */
  tombstoneRetentionMs?: number;
  /** Period of the background TTL removal and pruning; default 1000 ms. 0 disables the sweeper. */
  sweepIntervalMs?: number;
  /** watch() polls at least this often (NOTIFY wakes it earlier); default 500 ms. */
  watchPollMs?: number;
  /** Send a (coalesced) NOTIFY after writes so watchers in other processes wake at once; default true. */
  notify?: boolean;
  /**
   * Most connections of the pool the store creates (fromUrl); default 5
   * (DEFAULT_POOL_SIZE). Enough for what one store does at once — group
   * commit keeps at most `batchesInFlight` (2) write and 2 read statements
   * out, and a watching store holds one more connection for LISTEN — while
   * a small server (PostgreSQL's default max_connections is 100, 3 of them
   * reserved for superusers) serves 19 such processes instead of 9 with
   * pg's default of 10. Calls beyond it wait for a connection (up to
   * connect_timeout); raise it for many concurrent atomic() commits, lists
   * or history reads.
   */
  poolSize?: number;
  /**
   * While the server is unreachable (restart, failover), wait up to this long
   * for a connection before failing an operation with a transient
   * BackendError; default 2000 ms. Keeps update() from burning its attempts
   * in a tight loop during an outage.
   */
  connectWaitMs?: number;
  /**
   * Group commit: conditional puts and deletes that arrive while earlier
   * writes are in flight go out together in one statement and one
   * transaction, each with its own condition and outcome (reads likewise,
   * in one statement); default true.
   */
  groupCommit?: boolean;
  /** Group commit: how many batches may be in flight at once; default 2. */
  batchesInFlight?: number;
  /** Run migrations on open; default true. */
  migrate?: boolean;
  /**
   * close(): how long calls already in flight may still finish (default
   * 1000 ms); then each is answered with ClosedError — `ambiguous: true`
   * where a write had been sent, as it may still commit — and its statement
   * is cancelled on the server (best effort) and its connection discarded.
   */
  closeTimeoutMs?: number;
  /**
   * @internal Test-only canary: `false` turns off loss detection after a
   * failover (no timeline check, no sequence gap, no DataLostError), so a
   * test can show its verdict catches what then goes wrong. Also
   * REVKIT_TEST_PG_NO_LOSS_DETECTION=1 in the environment (for worker
   * processes that open the store by URL). Never for production.
   */
  lossDetection?: boolean;
}

const URL_OPTIONS = [
  'prefix', 'schema', 'historyDepth', 'changeRetentionMs', 'tombstoneRetentionMs', 'sweepIntervalMs', 'watchPollMs', 'poolSize', 'notify', 'connectWaitMs',
  'groupCommit', 'batchesInFlight', 'closeTimeoutMs',
] as const;
/**
 * The query options pg (8.x, through pg-connection-string) reads from a
 * connection string, passed on to it as they are; revkit reads
 * connect_timeout itself (pg takes a pool option instead). Options pg
 * ignores (keepalives, target_session_attrs, …) or that would break the
 * store's statements (binary, replication) are refused like typos.
 */
const PG_URL_OPTIONS = [
  'host', 'port', 'user', 'password', 'options', 'application_name', 'fallback_application_name', 'client_encoding',
  'ssl', 'sslmode', 'sslcert', 'sslkey', 'sslrootcert', 'sslnegotiation', 'uselibpqcompat',
  'statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'query_timeout', 'connect_timeout',
  'target_session_attrs',
] as const;
/** What revkit does with several hosts (writes go to the primary): libpq's names for it. Other values are refused. */
const TARGET_SESSION_ATTRS = ['read-write', 'primary'];

/** The pool size fromUrl uses unless told otherwise (see PostgresStoreOptions.poolSize for why 5). */
export const DEFAULT_POOL_SIZE = 5;

/** The options a store runs with, checked, defaults filled in. */
export interface Settings {
  historyDepth: number;
  changeRetentionMs: number;
  tombstoneRetentionMs: number;
  watchPollMs: number;
  sweepIntervalMs: number;
  connectWaitMs: number;
  closeTimeoutMs: number;
  notify: boolean;
  /** Group commit: batches out at once; 0 sends every write in its own statement. */
  batchesInFlight: number;
}

export function settingsOf(options: PostgresStoreOptions): Settings {
  return {
    historyDepth: positive(options.historyDepth, 64, 'historyDepth'),
    changeRetentionMs: nonNegative(options.changeRetentionMs, 60_000, 'changeRetentionMs'),
    tombstoneRetentionMs: nonNegative(options.tombstoneRetentionMs, 86_400_000, 'tombstoneRetentionMs'),
    watchPollMs: positive(options.watchPollMs, 500, 'watchPollMs'),
    sweepIntervalMs: nonNegative(options.sweepIntervalMs, 1000, 'sweepIntervalMs'),
    connectWaitMs: nonNegative(options.connectWaitMs, 2000, 'connectWaitMs'),
    closeTimeoutMs: nonNegative(options.closeTimeoutMs, 1000, 'closeTimeoutMs'),
    notify: options.notify ?? true,
    batchesInFlight: options.groupCommit === false ? 0 : positive(options.batchesInFlight, 2, 'batchesInFlight'),
  };
}

/** What fromUrl opens: pg's connection string (revkit's options taken out), the URL's options under the given ones, the pool's size and connect timeout. */
export function urlSettings(url: string, options: PostgresStoreOptions): { connectionString: string; merged: PostgresStoreOptions; poolSize: number; connectTimeoutMs: number; members: Member[] } {
  // Several hosts (h1:5432,h2:5433): split off here, the rest is read as a one-host URL.
  const split = splitHosts(url);
  const { connectionString, fromUrl, connectTimeoutMs } = parseUrl(split.url);
  const merged: PostgresStoreOptions = { ...fromUrl, ...stripUndefined(options) };
  return { connectionString, merged, poolSize: positive(merged.poolSize, DEFAULT_POOL_SIZE, 'poolSize'), connectTimeoutMs: connectTimeoutMs ?? 10_000, members: split.members };
}

function parseUrl(url: string): { connectionString: string; fromUrl: PostgresStoreOptions; connectTimeoutMs?: number } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new InvalidArgumentError(`malformed postgres URL ${JSON.stringify(redactUrl(url))}`, { cause: withoutUrlInput(cause) });
  }
  assertKnownUrlOptions(url, 'postgres', parsed.searchParams.keys(), [...URL_OPTIONS, ...PG_URL_OPTIONS], `revkit's ${URL_OPTIONS.join(', ')}; pg's ${PG_URL_OPTIONS.join(', ')}`);
  let connectTimeoutMs: number | undefined;
  const connectTimeout = parsed.searchParams.get('connect_timeout');
  if (connectTimeout !== null) {
    // libpq's: whole seconds, 0 (or none) waits indefinitely.
    const seconds = Number(connectTimeout);
    if (!/^\d+$/.test(connectTimeout) || !Number.isSafeInteger(seconds)) throw new InvalidArgumentError(`postgres URL option connect_timeout must be a non-negative integer (seconds), got ${JSON.stringify(connectTimeout)}`);
    connectTimeoutMs = seconds * 1000;
    parsed.searchParams.delete('connect_timeout');
  }
  const attrs = parsed.searchParams.get('target_session_attrs');
  if (attrs !== null) {
    if (!TARGET_SESSION_ATTRS.includes(attrs)) {
      throw new InvalidArgumentError(`postgres URL option target_session_attrs must be ${TARGET_SESSION_ATTRS.join(' or ')} (revkit writes, so it always connects to the member that accepts writes), got ${JSON.stringify(attrs)}`);
    }
    parsed.searchParams.delete('target_session_attrs');
  }
  const fromUrl: PostgresStoreOptions = {};
  for (const name of URL_OPTIONS) {
    const v = parsed.searchParams.get(name);
    if (v === null) continue;
    parsed.searchParams.delete(name);
    if (name === 'prefix' || name === 'schema') fromUrl[name] = v;
    else if (name === 'notify' || name === 'groupCommit') {
      if (!/^(true|false|1|0|on|off)$/.test(v)) throw new InvalidArgumentError(`postgres URL option ${name} must be true or false (1/0, on/off), got ${JSON.stringify(v)}`);
      fromUrl[name] = !(v === 'false' || v === '0' || v === 'off');
    }
    else {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`postgres URL option ${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
      fromUrl[name] = n;
    }
  }
  return { connectionString: parsed.toString(), fromUrl, ...(connectTimeoutMs !== undefined ? { connectTimeoutMs } : {}) };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function positive(v: unknown, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}

function nonNegative(v: unknown, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer, got ${String(v)}`);
  return v;
}
