/**
 * revkit/postgres — the multi-machine backend.
 *
 * URL form (what `open()` accepts):
 *
 *   postgres://user:pass@host:5432/db?prefix=revkit_&schema=public
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
 *
 * How it works (details next to each statement in sql.ts):
 * - Every conditional put/delete is ONE statement: lock the key's row, check
 *   the condition on the locked (latest committed) version, write, append the
 *   change, and report the current revision on conflict — all inside one
 *   INSERT/UPDATE … RETURNING with CTEs (an ifRevision put: a plain UPDATE …
 *   WHERE revision = $n, see putRevisionSql).
 * - Group commit (batch.ts): puts and deletes that arrive while earlier ones
 *   are in flight share one statement over arrays and one transaction, each
 *   row with its own condition and outcome; reads likewise share a SELECT.
 * - Revisions come from one sequence, drawn after the row lock is granted:
 *   per key strictly increasing, never reused (not after delete, not after
 *   purge); store-wide they are unique but commit order may differ from
 *   revision order under concurrency — watch() handles that (see watch.ts).
 * - Watch reads the change-log table (the truth) up to a revision below
 *   which no transaction can still commit: every transaction that drew a
 *   revision holds a lock on the store's revision sequence until it ends,
 *   so the watch waits for those transactions only (watch.ts, sql.ts
 *   holdersOf) — an idle transaction elsewhere on the cluster does not hold
 *   it back. One that drew a revision of this store and stays open does (it
 *   may still commit a lower revision than one already committed): revkit's
 *   own transactions that span round trips (atomic()) are ended by the
 *   server after ATOMIC_IDLE_TIMEOUT_MS idle; another application's
 *   transaction that writes this store's tables is bounded by nothing revkit
 *   sets. LISTEN/NOTIFY is only a wake-up.
 * - close() lets calls in flight finish for closeTimeoutMs, then answers the
 *   rest with ClosedError (`ambiguous: true` where a write was sent: it may
 *   still commit), asks the server to cancel their statements and discards
 *   their connections: every call settles.
 */
import pg from 'pg';
import type { Pool, PoolClient, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import {
  AsyncQueue, BackendError, BaseStore, ClosedError, ConflictError, DEFAULT_MAX_VALUE_BYTES, InvalidArgumentError, sleep,
  deepEqual, isTombstone, assertKey, assertLimit, assertPrefix, assertRevision, assertValueSize, conditionFailure, jsonCodec, keyFilter,
  type AtomicOp, type Capabilities, type Codec, type DeleteOptions, type Durability, type Entry, type FailedCheck,
  type HistoryOptions, type ListOptions, type ListPage, type PutOptions, type StoreOptions, type StoredRecord,
  type Tombstone, type WatchEvent, type WatchOptions,
} from '../core/index.js';
import { assertKnownUrlOptions, redactUrl, withoutUrlInput } from '../core/redact.js';
import { isServerUnavailable, mapPgError, type PgWhere } from './errors.js';
import { WatchHub, type Mark, type StartMark, type WatchQueryParams, type WatchSource, type WatchStart } from './watch.js';
import { dropStore, migrate, names, type Names } from './schema.js';
import { GroupSender, type Write, type WriteRow } from './batch.js';
import {
  atomicLockSql, atomicPlaceholderSql, atomicWriteSql, batchWriteSql, deleteSql, expireSql, getManySql, getSql, historySql, holdersSql, likePrefix, listSql,
  putRevisionSql, markSql, purgeSql, pruneSql, putSql, startRowsSql, startSql, watchSql, type CondKind,
} from './sql.js';

export { mapPgError, type PgWhere } from './errors.js';
export { MIGRATIONS, LATEST_VERSION } from './schema.js';

export interface PostgresStoreOptions extends StoreOptions {
  /** Schema holding the tables; default `public`. */
  schema?: string;
  /** Prefix of every table name, so several stores share a database; default `revkit_`. */
  prefix?: string;
  /** Past revisions per key kept for history(); default 64. */
  historyDepth?: number;
  /** Changes beyond historyDepth are still kept this long for watch({ fromRevision }); default 60 s. */
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
}

interface Row extends QueryResultRow {
  [column: string]: unknown;
}

/** A call using a connection: close() answers it with ClosedError if it does not finish in time. */
interface Call {
  what: string;
  client: PoolClient | undefined;
  /** Its outcome may be a commit: a write statement (or an atomic COMMIT) was sent. */
  mayCommit: boolean;
  /** close() gave up on it: its caller has its answer, its connection is discarded. */
  abandoned: boolean;
  abandon: (err: unknown) => void;
}


/** Cross-process watch wake-ups are batched into windows of this length. */
const NOTIFY_WINDOW_MS = 10;
/**
 * A NOTIFY gives its transaction an xid, so its commit would wait for a WAL
 * flush — an fsync per wake-up, competing with the writes it announces. It
 * is only a hint (watchers read the change log), so it commits without one.
 */
const NOTIFY_SQL = `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)`;
/** How long headRevision() waits for transactions that drew a revision to end before calling it an outage. */
const HEAD_SETTLE_MS = 5_000;
/**
 * atomic() spans round trips while it holds a revision: a client that stops
 * in between (paused, partitioned, killed without its socket closing) would
 * hold every watch of the store back. The server ends such a transaction
 * after this long idle (idle_in_transaction_session_timeout, set for the
 * transaction only); its caller then gets a transient, ambiguous BackendError.
 */
const ATOMIC_IDLE_TIMEOUT_MS = 10_000;
/** ifValue compared in process is guarded by the live revision; a concurrent write of an equal value sends it round again, this often at most. */
const IF_VALUE_ROUNDS = 64;
/** close(): the most it waits for background work, a cancel request and the pool's end after answering every call. */
const CLOSE_CLEANUP_MS = 5_000;

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
] as const;
/** Group commit: most writes in one batch statement. */
const MAX_BATCH = 256;
/** The pool size fromUrl uses unless told otherwise (see PostgresStoreOptions.poolSize for why 5). */
export const DEFAULT_POOL_SIZE = 5;

function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(v as string);
}

function optNum(v: unknown): number | undefined {
  return v === null || v === undefined ? undefined : num(v);
}

/** Error classes of pg that leave the connection usable (the statement just failed). */
function connectionStillGood(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return false;
  return !(code.startsWith('08') || code.startsWith('57P') || code.startsWith('53') || code.startsWith('58'));
}

export class PostgresStore extends BaseStore implements WatchSource {
  readonly backend = 'postgres';
  capabilities: Capabilities = { atomic: true, ttl: true, history: true, watch: true, crossProcess: true, durability: 'server-default' };
  readonly names: Names;
  private readonly codec: Codec;
  private readonly json: boolean;
  private readonly maxValueBytes: number;
  readonly historyDepth: number;
  private readonly changeRetentionMs: number;
  private readonly tombstoneRetentionMs: number;
  private readonly watchPollMs: number;
  private readonly notify: boolean;
  private readonly connectWaitMs: number;
  private readonly sweepIntervalMs: number;
  private sweeper: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private sweeps = 0;
  private pruneMark = 0;
  private readonly hub = new WatchHub(this, () => this.stopListener());
  /** Tells this store's own NOTIFYs from other processes' (its listener hears both). */
  private readonly instanceTag = Math.random().toString(36).slice(2);
  private listener: { stop: () => void; done: Promise<void> } | undefined;
  private notifyState: 'idle' | 'busy' | 'again' = 'idle';
  private notifying: Promise<void> | undefined;
  private readonly sql: Record<string, string> = {};
  private readonly writes: GroupSender<Write, WriteRow>;
  private readonly reads: GroupSender<string, Row | undefined>;
  private readonly closeTimeoutMs: number;
  /** Calls holding (or waiting for) a connection; close() settles them. */
  private readonly calls = new Set<Call>();
  private onDrained: (() => void) | undefined;
  /**
   * @internal The highest revision this store has seen handed out (its
   * writes, reads, marks, watch events): a lower bound of the sequence, known
   * without a round trip — where a watch "from now" reaches back to.
   */
  knownRevision = 0;
  /** What connection errors name: the address (no password), the pool's size, the server's max_connections once seen. */
  private readonly where: PgWhere;

  private constructor(readonly pool: Pool, private readonly ownsPool: boolean, private readonly options: PostgresStoreOptions) {
    super();
    this.where = whereOf(pool);
    this.names = names(options.schema ?? 'public', options.prefix ?? 'revkit_');
    this.codec = options.codec ?? jsonCodec;
    this.json = this.codec === jsonCodec || this.codec.name === 'json';
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.historyDepth = positive(options.historyDepth, 64, 'historyDepth');
    this.changeRetentionMs = nonNegative(options.changeRetentionMs, 60_000, 'changeRetentionMs');
    this.tombstoneRetentionMs = nonNegative(options.tombstoneRetentionMs, 86_400_000, 'tombstoneRetentionMs');
    this.watchPollMs = positive(options.watchPollMs, 500, 'watchPollMs');
    this.sweepIntervalMs = nonNegative(options.sweepIntervalMs, 1000, 'sweepIntervalMs');
    this.connectWaitMs = nonNegative(options.connectWaitMs, 2000, 'connectWaitMs');
    this.closeTimeoutMs = nonNegative(options.closeTimeoutMs, 1000, 'closeTimeoutMs');
    this.notify = options.notify ?? true;
    const inFlight = options.groupCommit === false ? 0 : positive(options.batchesInFlight, 2, 'batchesInFlight');
    this.writes = new GroupSender({ one: (w) => this.writeOne(w), many: (ws) => this.writeMany(ws) }, inFlight, MAX_BATCH, (w) => w.key);
    this.reads = new GroupSender({ one: (k) => this.readOne(k), many: (ks) => this.readMany(ks) }, inFlight, MAX_BATCH);
  }

  /** Opens a store on its own pool; `close()` ends that pool. See the top of this file for the URL form. */
  static async fromUrl(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const { connectionString, fromUrl, connectTimeoutMs } = parseUrl(url);
    const merged: PostgresStoreOptions = { ...fromUrl, ...stripUndefined(options) };
    const pool = new pg.Pool({
      connectionString,
      max: positive(merged.poolSize, DEFAULT_POOL_SIZE, 'poolSize'),
      connectionTimeoutMillis: connectTimeoutMs ?? 10_000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
    });
    // Idle connections die when the server restarts; without a listener the
    // pool's 'error' event would crash the process. The pool drops them.
    pool.on('error', () => undefined);
    const store = new PostgresStore(pool, true, merged);
    try {
      await store.init();
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    return store;
  }

  /** A store on an application's existing pool (which it does not end on close). */
  static async fromPool(pool: Pool, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const store = new PostgresStore(pool, false, options);
    await store.init();
    return store;
  }

  private async init(): Promise<void> {
    await this.withClient('open', false, async (client) => {
      if (this.options.migrate !== false) await migrate(client, this.names);
      const r = await client.query<Row>(`SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc, current_setting('synchronous_standby_names') AS standbys,
        current_setting('max_connections') AS maxconn, current_setting('superuser_reserved_connections') AS reserved, current_setting('reserved_connections', true) AS reserved16`);
      const row = r.rows[0] ?? {};
      // For the message of a "too many clients" refusal, when no connection can be had to ask.
      this.where.maxConnections = num(row.maxconn);
      this.where.reservedConnections = num(row.reserved) + (optNum(row.reserved16) ?? 0);
      this.capabilities = { ...this.capabilities, durability: durabilityOf(String(row.fsync), String(row.sc), String(row.standbys)) };
      // Where watches start from: the revision handed out so far and, when nobody holds one, settled.
      const m = (await this.q(client, 'wmark', () => markSql(this.names), [-1])).rows[0] as Row;
      this.seen(num(m.s));
      if (Array.isArray(m.holders) && m.holders.length === 0) this.settledHorizon = Math.max(this.settledHorizon, num(m.s));
    });
    if (this.sweepIntervalMs > 0) {
      this.sweeper = setInterval(() => void this.sweep(), this.sweepIntervalMs);
      this.sweeper.unref();
    }
  }

  // ------------------------------------------------------------------ plumbing

  /**
   * Checks a client out of the pool. While the server is unreachable
   * (refused, restarting: 57P03) it keeps trying for `connectWaitMs`; nothing
   * was sent yet, so the failure is transient and never ambiguous.
   */
  private async acquire(what: string): Promise<PoolClient> {
    const deadline = Date.now() + this.connectWaitMs;
    let delay = 50;
    for (;;) {
      this.assertOpen();
      try {
        return await this.pool.connect();
      } catch (err) {
        if (!isServerUnavailable(err) || Date.now() + delay > deadline || this.isClosed) throw mapPgError(err, { writeSent: false, what, connecting: true, where: this.where });
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 500);
      }
    }
  }

  /**
   * Runs `fn` on a pooled connection. `write`: true — a write statement is
   * sent as soon as `fn` runs; 'commit' — `fn` marks the moment it sends its
   * COMMIT (call.mayCommit); false — a read. Every call is tracked until it
   * settles, so close() can answer it (see settleCalls).
   */
  private withClient<R>(what: string, write: boolean | 'commit', fn: (client: PoolClient, call: Call) => Promise<R>): Promise<R> {
    const call: Call = { what, client: undefined, mayCommit: false, abandoned: false, abandon: () => undefined };
    return new Promise<R>((resolve, reject) => {
      call.abandon = (err) => {
        call.abandoned = true;
        reject(err);
      };
      this.calls.add(call);
      this.runCall(call, write, fn).then(resolve, reject).finally(() => {
        this.calls.delete(call);
        if (this.calls.size === 0) this.onDrained?.();
      });
    });
  }

  private async runCall<R>(call: Call, write: boolean | 'commit', fn: (client: PoolClient, call: Call) => Promise<R>): Promise<R> {
    const client = await this.acquire(call.what);
    if (call.abandoned) {
      client.release();
      throw new ClosedError(this.backend);
    }
    call.client = client;
    const onError = () => undefined; // a checked-out client may emit 'error' when its connection dies
    client.on('error', onError);
    try {
      if (write === true) call.mayCommit = true;
      const result = await fn(client, call);
      client.off('error', onError);
      // Returned once: close() releases only a client still set here.
      call.client = undefined;
      if (!call.abandoned) client.release();
      return result;
    } catch (err) {
      client.off('error', onError);
      call.client = undefined;
      if (!call.abandoned) client.release(RevkitErrorLike(err) || connectionStillGood(err) ? undefined : (err as Error) ?? true);
      throw mapPgError(err, { writeSent: write !== false, what: call.what, where: this.where });
    }
  }

  /**
   * close(): calls in flight may finish for closeTimeoutMs; each one left is
   * then answered with ClosedError — ambiguous where a write was sent (a
   * statement the server is still running may commit) —, its statement is
   * cancelled on the server (best effort: it may have committed already) and
   * its connection is discarded, so the pool can end.
   */
  private async settleCalls(): Promise<void> {
    if (this.calls.size > 0 && this.closeTimeoutMs > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.closeTimeoutMs);
        this.onDrained = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.onDrained = undefined;
    }
    const left = [...this.calls];
    this.calls.clear();
    const pids: number[] = [];
    for (const call of left) {
      call.abandon(closedInFlight(this.backend, call));
      const client = call.client;
      if (!client) continue;
      const pid = (client as { processID?: unknown }).processID;
      if (typeof pid === 'number') pids.push(pid);
      // Discarded, not returned: the pool ends it (its socket is closed even mid-statement).
      client.release(new Error('revkit: the store was closed while this connection was in use'));
    }
    if (pids.length > 0) await cancelBackends(this.pool, pids);
  }

  private statement(name: string, build: () => string): string {
    return (this.sql[name] ??= build());
  }

  private q<R extends QueryResultRow = Row>(client: PoolClient, name: string, build: () => string, values: unknown[]): Promise<QueryResult<R>> {
    const config: QueryConfig = { name: `revkit_${this.names.tag}_${name}`, text: this.statement(name, build), values };
    return client.query<R>(config);
  }

  private encode(value: unknown): Buffer {
    const bytes = this.codec.encode(value);
    assertValueSize(bytes, this.maxValueBytes);
    return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private decodeValue(bytes: unknown): unknown {
    try {
      return this.codec.decode(bytes as Buffer);
    } catch (cause) {
      throw new BackendError(`a stored value could not be decoded with the ${this.codec.name} codec`, { transient: false, cause });
    }
  }

  private toRecord<T>(key: string, r: Row, now: number, withoutValue = false): StoredRecord<T> {
    const revision = num(r.revision);
    if (r.deleted) {
      const t: Tombstone = { key, revision, deleted: true };
      if (r.writer !== null && r.writer !== undefined) t.writer = r.writer as string;
      const at = optNum(r.updated_at);
      if (at !== undefined) t.updatedAt = at;
      return t;
    }
    const expiresAt = optNum(r.expires_at);
    if (expiresAt !== undefined && expiresAt <= now) return { key, revision, deleted: true };
    return this.toEntry<T>(key, r, withoutValue ? null : undefined);
  }

  private toEntry<T>(key: string, r: Row, value?: unknown): Entry<T> {
    const entry: Entry<T> = {
      key,
      value: (value !== undefined ? value : this.decodeValue(r.value)) as T,
      revision: num(r.revision),
      createdRevision: num(r.created_revision),
      updatedAt: num(r.updated_at),
    };
    const expiresAt = optNum(r.expires_at);
    if (expiresAt !== undefined) entry.expiresAt = expiresAt;
    if (r.writer !== null && r.writer !== undefined) entry.writer = r.writer as string;
    return entry;
  }

  // ------------------------------------------------------------------ reads

  async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.assertOpen();
    assertKey(key);
    const row = await this.reads.submit(key);
    if (!row) return null;
    this.seen(num(row.revision));
    return this.toRecord<T>(key, row, num(row.now));
  }

  private async readOne(key: string): Promise<Row | undefined> {
    return (await this.withClient('get', false, (c) => this.q(c, 'get', () => getSql(this.names), [key]))).rows[0];
  }

  /** Reads that arrived while others were out, in one statement (see batch.ts). */
  private async readMany(keys: string[]): Promise<(Row | undefined)[]> {
    const r = await this.withClient('get', false, (c) => this.q(c, 'getmany', () => getManySql(this.names), [[...new Set(keys)]]));
    const byKey = new Map(r.rows.map((row) => [row.key as string, row]));
    return keys.map((k) => byKey.get(k));
  }

  async list<T = unknown>(options: ListOptions = {}): Promise<ListPage<T>> {
    this.assertOpen();
    const prefix = options.prefix ?? '';
    assertPrefix(prefix);
    if (options.after !== undefined && typeof options.after !== 'string') throw new InvalidArgumentError('after must be a key string');
    const limit = assertLimit(options.limit, 10_000) ?? 1000;
    const r = await this.withClient('list', false, (c) => this.q(c, 'list', () => listSql(this.names), [likePrefix(prefix), options.after ?? null, limit + 1]));
    const rows = r.rows.slice(0, limit);
    const entries = rows.map((row) => this.toEntry<T>(row.key as string, row));
    return r.rows.length > limit ? { entries, cursor: rows[rows.length - 1]?.key as string } : { entries };
  }

  /**
   * Revisions are drawn before commit, so the last one handed out may belong
   * to a transaction still open: take a mark, then wait until every
   * transaction that held a revision then has ended (the watch's own
   * settling rule: only transactions that drew a revision of this store
   * count, see holdersOf in sql.ts). Such a transaction open for longer than
   * HEAD_SETTLE_MS is reported as a transient BackendError.
   */
  async headRevision(): Promise<number> {
    this.assertOpen();
    const deadline = Date.now() + HEAD_SETTLE_MS;
    return this.withClient('head', false, async (c) => {
      const m = (await this.q(c, 'wmark', () => markSql(this.names), [this.settledHorizon])).rows[0] as Row;
      const s = num(m.s);
      this.seen(s);
      let holders = Array.isArray(m.holders) ? (m.holders as string[]) : [];
      for (let delay = 5; holders.length > 0; delay = Math.min(delay * 2, 100)) {
        if (Date.now() >= deadline) {
          throw new BackendError(`revisions up to ${s} did not settle within ${HEAD_SETTLE_MS} ms: ${holders.length} transaction(s) that drew a revision of this store are still open`, { transient: true });
        }
        await sleep(delay);
        const now = new Set((await this.q(c, 'holders', () => holdersSql(this.names), [])).rows[0]?.holders as string[]);
        holders = holders.filter((h) => now.has(h));
      }
      this.settledHorizon = Math.max(this.settledHorizon, s);
      return s;
    });
  }

  async history<T = unknown>(key: string, options: HistoryOptions = {}): Promise<StoredRecord<T>[]> {
    this.assertOpen();
    assertKey(key);
    const limit = assertLimit(options.limit, this.historyDepth) ?? this.historyDepth;
    const r = await this.withClient('history', false, (c) => this.q(c, 'history', () => historySql(this.names), [key, limit]));
    return r.rows.map((row) => (row.deleted ? this.toRecord<T>(key, row, 0) : this.toEntry<T>(key, row)));
  }

  // ------------------------------------------------------------------ writes

  protected async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    const bytes = this.encode(value);
    const [kind, arg, expected] = this.condition(options);
    const write: Write = { key, del: false, value: bytes, ttlMs: options.ttlMs ?? null, writer: options.writer ?? null, kind, arg };
    const row = kind === 'value' ? await this.byValue(write, options.ifValue) : await this.putRow(write, expected);
    this.signalChange([key]);
    this.seen(num(row.revision));
    return this.toEntry<T>(key, { ...row, writer: options.writer ?? null }, this.codec.decode(new Uint8Array(bytes)));
  }

  /** A put until it is written or fails. */
  private async putRow(write: Write, expected: FailedCheck['expected']): Promise<WriteRow> {
    for (let round = 1; ; round++) {
      // 'never' has no place in the batch statement's conditions: it goes alone.
      const row = write.kind === 'never' ? await this.writeOne(write) : await this.writes.submit(write);
      if (row.revision !== null && row.revision !== undefined) return row;
      if (row.found || (write.kind !== 'none' && write.kind !== 'absent' && write.kind !== 'never')) {
        throw new ConflictError([{ key: write.key, expected, actual: row.found ? num(row.actual) : null }]);
      }
      // The key was created after this statement's snapshot and the
      // condition failed on it: run again so the new snapshot classifies it.
      if (round >= 5) throw new BackendError(`put of ${JSON.stringify(write.key)} kept racing concurrent creators; nothing was written`, { transient: true, ambiguous: false });
    }
  }

  protected async doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    const [kind, arg, expected] = this.condition(options);
    const write: Write = { key, del: true, value: null, ttlMs: null, writer: options.writer ?? null, kind, arg };
    const row = kind === 'value' ? await this.byValue(write, options.ifValue) : kind === 'never' ? await this.writeOne(write) : await this.writes.submit(write);
    if (row.revision !== null && row.revision !== undefined) {
      this.signalChange([key]);
      this.seen(num(row.revision));
      return num(row.revision);
    }
    if (row.found ? row.ok !== true : kind === 'rev') {
      throw new ConflictError([{ key, expected, actual: row.found ? num(row.actual) : null }]);
    }
    return null;
  }

  /**
   * A put or delete under ifValue. The statement compares the values as
   * jsonb where it can (one round trip, group commit as usual). Where it
   * cannot — a `\u` escape on either side: jsonb refuses `\u0000` and lone
   * surrogates, which JSON.stringify writes —, or with the escape in the
   * condition already, the decoded values are compared here with deepEqual,
   * as the memory store does, and the write is guarded by the live revision
   * that was read; a conflict there means the key moved: compare again.
   * Answers the written row, or throws ConflictError.
   */
  private async byValue(write: Write, ifValue: unknown): Promise<WriteRow> {
    const conflict = (actual: number | null) => new ConflictError([{ key: write.key, expected: 'value', actual }]);
    if (!(this.json && hasUnicodeEscape(write.arg))) {
      const row = await this.writes.submit(write);
      if (row.revision !== null && row.revision !== undefined) return row;
      if (!row.found) throw conflict(null);
      if (row.ok !== null && row.ok !== undefined) throw conflict(num(row.actual));
      // NULL: undecided by the statement (nothing was written); compare here.
    }
    for (let round = 1; ; round++) {
      const current = await this.getRecord(write.key);
      if (current === null || isTombstone(current) || !deepEqual(current.value, ifValue)) throw conflict(current?.revision ?? null);
      const row = await this.writes.submit({ ...write, kind: 'liverev', arg: current.revision });
      if (row.revision !== null && row.revision !== undefined) return row;
      if (round >= IF_VALUE_ROUNDS) throw conflict(row.found ? num(row.actual) : null);
    }
  }

  /** A write in its own statement: what a lone writer sends. */
  private async writeOne(w: Write): Promise<WriteRow> {
    const tail = w.kind === 'none' || w.kind === 'absent' || w.kind === 'never' ? [] : [w.arg];
    const what = w.del ? 'delete' : 'put';
    const name = `${w.del ? 'del' : 'put'}_${w.kind}${this.json ? 'j' : 'b'}`;
    if (w.del) {
      return (await this.withClient(what, true, (c) => this.q(c, name, () => deleteSql(this.names, w.kind, this.json), [w.key, w.writer, ...tail]))).rows[0] as WriteRow;
    }
    const params = [w.key, w.value, w.ttlMs, w.writer, ...tail];
    if (w.kind === 'rev') {
      const lean = (await this.withClient(what, true, (c) => this.q(c, 'put_lean', () => putRevisionSql(this.names), params))).rows[0] as WriteRow;
      // Not written although the snapshot held the expected revision: a concurrent writer came first; see putRevisionSql.
      if (lean.revision !== null || !lean.found || num(lean.actual) !== w.arg) return lean;
    }
    return (await this.withClient(what, true, (c) => this.q(c, name, () => putSql(this.names, w.kind, this.json), params))).rows[0] as WriteRow;
  }

  /** Writes of distinct keys in one statement (group commit); a row per write. */
  private async writeMany(ws: Write[]): Promise<WriteRow[]> {
    const col = <V>(f: (w: Write) => V): V[] => ws.map(f);
    const r = await this.withClient('batched write', true, (c) => this.q(c, `batch${this.json ? 'j' : 'b'}`, () => batchWriteSql(this.names, this.json), [
      col((w) => w.key), col((w) => w.value), col((w) => w.ttlMs), col((w) => w.writer), col((w) => w.kind),
      col((w) => (w.kind === 'rev' || w.kind === 'liverev' ? w.arg : null)), col((w) => (w.kind === 'value' ? w.arg : null)), col((w) => w.del),
    ]));
    const byKey = new Map(r.rows.map((row) => [row.key as string, row]));
    return ws.map((w) => {
      const row = byKey.get(w.key);
      if (!row) throw new BackendError(`postgres batched write returned no row for ${JSON.stringify(w.key)}`, { transient: false });
      return row;
    });
  }

  private condition(options: PutOptions): [CondKind, unknown, FailedCheck['expected']] {
    if (options.ifAbsent) return ['absent', null, 'absent'];
    if (options.ifRevision === 0) return ['never', null, 0];
    if (options.ifRevision !== undefined) return ['rev', options.ifRevision, options.ifRevision];
    if (options.ifValue !== undefined) return ['value', this.codec.encode(options.ifValue), 'value'];
    return ['none', null, null];
  }

  /**
   * One transaction: lock every row the batch touches (existing rows in key
   * order, placeholders for missing keys), evaluate every check on the locked
   * rows with conditionFailure() (so the ConflictError lists every failed
   * check), then write everything with one revision drawn after all locks.
   * A placeholder that cannot be inserted (the key was created after our
   * snapshot) or a deadlock restarts the transaction; nothing was written.
   */
  protected override async commitAtomic(ops: AtomicOp[]): Promise<{ revision: number }> {
    const values = new Map<string, Buffer>();
    for (const op of ops) if (op.type === 'set') values.set(op.key, this.encode(op.value));
    const keys = [...new Set(ops.map((op) => op.key))].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (let attempt = 1; ; attempt++) {
      let committing = false;
      let retry = false;
      try {
        const result = await this.withClient('atomic', 'commit', async (client, call) => {
          // One round trip; the timeout bounds how long a stalled client can hold a revision (ATOMIC_IDLE_TIMEOUT_MS).
          await client.query(`BEGIN; SET LOCAL idle_in_transaction_session_timeout = ${ATOMIC_IDLE_TIMEOUT_MS}`);
          let open = true;
          const rollback = async () => {
            open = false;
            await client.query('ROLLBACK');
          };
          try {
            const locked = new Map<string, Row>();
            let now = Date.now();
            for (const row of (await this.q(client, 'alock', () => atomicLockSql(this.names), [keys])).rows) {
              locked.set(row.key as string, row);
              now = num(row.now);
            }
            const missing = keys.filter((k) => !locked.has(k));
            if (missing.length > 0) {
              const placed = await this.q(client, 'aplace', () => atomicPlaceholderSql(this.names), [missing]);
              if (placed.rows.length < missing.length) {
                retry = true;
                await rollback();
                return undefined;
              }
            }
            const record = (key: string): StoredRecord | null => {
              const row = locked.get(key);
              if (!row) return null;
              // Checks need only the revision and liveness, not the value.
              return this.toRecord(key, row, now, true);
            };
            const isLive = (key: string) => {
              const rec = record(key);
              return rec !== null && !('deleted' in rec);
            };
            const failures: FailedCheck[] = [];
            for (const op of ops) {
              if (op.type !== 'check') continue;
              const failure = conditionFailure(op.key, record(op.key), op.revision === null ? { ifAbsent: true } : { ifRevision: op.revision }, now);
              if (failure) failures.push(failure);
            }
            if (failures.length > 0) {
              await rollback();
              throw new ConflictError(failures);
            }
            const wk: string[] = [], wv: (Buffer | null)[] = [], wd: boolean[] = [], wt: (number | null)[] = [], wc: boolean[] = [];
            const written = new Set<string>();
            for (const op of ops) {
              if (op.type === 'set') {
                wk.push(op.key); wv.push(values.get(op.key) as Buffer); wd.push(false); wt.push(op.ttlMs ?? null); wc.push(isLive(op.key));
                written.add(op.key);
              } else if (op.type === 'delete' && isLive(op.key)) {
                wk.push(op.key); wv.push(null); wd.push(true); wt.push(null); wc.push(true);
                written.add(op.key);
              }
            }
            const unused = missing.filter((k) => !written.has(k));
            if (wk.length === 0) {
              // Writes nothing: draw no revision (the next write would get one above it, unseen by a watch from
              // what we answer); answer the highest committed revision the commit saw (DESIGN §3).
              if (unused.length > 0) await this.q(client, 'aunplace', () => `DELETE FROM ${this.names.kv} WHERE key = ANY($1::text[]) AND revision = 0`, [unused]);
              committing = true;
              await client.query('COMMIT');
              return { revision: Math.max(0, ...[...locked.values()].map((row) => num(row.revision))), written: 0 };
            }
            const w = await this.q(client, 'awrite', () => atomicWriteSql(this.names), [wk, wv, wd, wt, wc, unused]);
            committing = true;
            call.mayCommit = true;
            await client.query('COMMIT');
            return { revision: num(w.rows[0]?.revision), written: wk.length };
          } catch (err) {
            if (open && !committing) await client.query('ROLLBACK').catch(() => undefined);
            throw err;
          }
        });
        if (retry || result === undefined) {
          if (attempt >= 8) throw new BackendError('atomic commit kept racing concurrent creators; nothing was written', { transient: true, ambiguous: false });
          continue;
        }
        if (result.written > 0) this.signalChange(keys);
        // Wrote nothing and saw no written key: the head, a revision already committed (0 would replay everything before it).
        if (result.written === 0 && result.revision === 0) return { revision: await this.headRevision() };
        this.seen(result.revision);
        return { revision: result.revision };
      } catch (err) {
        // A deadlock or serialization failure before COMMIT rolled everything back: try again.
        if (BackendError.is(err) && err.transient && !err.ambiguous && !committing && attempt < 8 && /40001|40P01/.test(err.message)) continue;
        throw err;
      }
    }
  }

  // ------------------------------------------------------------------ watch

  /**
   * A watch "from now" is fixed when watch() is called, without a round
   * trip: it delivers every change with a revision above the highest one
   * this store had seen (knownRevision) that was written by a statement the
   * server began at or after that moment (by the server's clock, measured
   * against this process's monotonic clock over the start statement's round
   * trip, START_CLOCK_MARGIN_MS earlier), plus everything committed after its
   * start statement — whichever process wrote it. Its first next() resolves
   * with a change, so never before the start is fixed.
   */
  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    const startedAt = performance.now();
    const known = this.knownRevision;
    this.assertOpen();
    keyFilter(options); // validates key / prefix
    if (options.fromRevision !== undefined) assertRevision(options.fromRevision, 'fromRevision');
    const queue = new AsyncQueue<WatchEvent>(options.signal);
    if (queue.closed) return queue as AsyncIterable<WatchEvent<T>>;
    this.ensureListener();
    this.hub.add(options, queue, startedAt, known);
    return queue as AsyncIterable<WatchEvent<T>>;
  }

  /** @internal used by WatchHub: a mark (see markSql); holders null when `settled` covers it. */
  async watchMark(settled: number): Promise<Mark> {
    const r = await this.withClient('watch', false, (c) => this.q(c, 'wmark', () => markSql(this.names), [settled]));
    const row = r.rows[0] as Row;
    const s = num(row.s);
    this.seen(s);
    return { s, holders: Array.isArray(row.holders) ? (row.holders as string[]) : null };
  }

  /** @internal used by WatchHub: changes up to the settled revision (after the mark that settled it). */
  async watchQuery(p: WatchQueryParams): Promise<Row[]> {
    const r = await this.withClient('watch', false, (c) => this.q(c, 'wquery', () => watchSql(this.names), [
      p.settled, p.from.rev, p.from.key, p.patterns, p.limit,
    ]));
    return r.rows;
  }

  /**
   * @internal A revision up to which every transaction that drew one has
   * ended (observed by watchers and headRevision; only grows). 0 until one
   * was observed.
   */
  settledHorizon = 0;

  /** @internal The start of watches "from now": snapshot S0, a mark after it, the server clock, a horizon settled before S0. */
  async watchStart(): Promise<StartMark> {
    const low = this.settledHorizon;
    const r = await this.withClient('watch', false, (c) => this.q(c, 'wstart', () => startSql(this.names), []));
    const receivedAt = performance.now();
    const row = r.rows[0] as Row;
    const s = num(row.s);
    this.seen(s);
    return { snap: String(row.snap), s, holders: (row.holders as string[] | null) ?? [], serverMs: num(row.ms), receivedAt, low };
  }

  /** @internal What a start owes at or below its mark (call once the mark is settled; see startRowsSql). */
  async watchStartRows(start: WatchStart, patterns: string[]): Promise<Row[]> {
    const r = await this.withClient('watch', false, (c) =>
      this.q(c, 'wstartrows', () => startRowsSql(this.names), [start.low, start.s, patterns, start.snap, start.known, start.since]));
    return r.rows;
  }

  /** Remembers a revision seen handed out (see knownRevision). */
  private seen(revision: number): void {
    if (revision > this.knownRevision) this.knownRevision = revision;
  }

  /** @internal */
  decodeChange(row: Row): WatchEvent {
    const key = row.key as string;
    const revision = num(row.revision);
    this.seen(revision);
    if (row.deleted) return { type: 'delete', key, revision };
    return { type: 'put', key, revision, entry: this.toEntry(key, row) };
  }

  /** @internal */
  get pollMs(): number {
    return this.watchPollMs;
  }

  private wakeAll(): void {
    this.hub.wake();
  }

  /**
   * After a committed write: wake local watchers, and NOTIFY other processes —
   * at most once per NOTIFY_WINDOW_MS (trailing). A NOTIFY per write is an
   * extra round trip per write; measured on one writer it cost a third of the
   * throughput. Watchers elsewhere wake at most a window later. Local
   * watchers wake only for the keys they watch (`keys` undefined: any).
   */
  private signalChange(keys?: readonly string[]): void {
    if (this.hub.wants(keys)) this.wakeAll();
    if (!this.notify || this.isClosed) return;
    if (this.notifyState !== 'idle') {
      this.notifyState = 'again';
      return;
    }
    this.notifyState = 'busy';
    const send = (): Promise<void> =>
      this.pool.query(NOTIFY_SQL, [this.names.channel, this.instanceTag]).then(() => undefined, () => undefined)
        .then(() => new Promise<void>((resolve) => setTimeout(resolve, NOTIFY_WINDOW_MS).unref()))
        .then(() => {
          if (this.notifyState === 'again' && !this.isClosed) {
            this.notifyState = 'busy';
            return send();
          }
          this.notifyState = 'idle';
          return undefined;
        });
    this.notifying = send();
  }

  private ensureListener(): void {
    if (this.listener || this.isClosed) return;
    let stopped = false;
    let wakeStop: () => void = () => undefined;
    const loop = async () => {
      while (!stopped && !this.isClosed) {
        let client: PoolClient | undefined;
        let broken: unknown;
        try {
          client = await this.pool.connect();
          const c = client;
          await new Promise<void>((resolve) => {
            wakeStop = resolve;
            // stop() may have run while connect() was waiting: its wake-up went to the old no-op.
            if (stopped || this.isClosed) return resolve();
            c.on('error', (err) => {
              broken = err;
              resolve();
            });
            c.on('end', () => resolve());
            c.on('notification', (n) => {
              if (n.payload !== this.instanceTag) this.wakeAll();
            });
            c.query(`LISTEN "${this.names.channel}"`).then(() => this.wakeAll(), (err) => {
              broken = err;
              resolve();
            });
          });
        } catch (err) {
          broken = err;
        } finally {
          // A LISTENing connection never goes back to the pool.
          client?.release(true);
        }
        if (!stopped) await new Promise<void>((r) => {
          const t = setTimeout(r, broken ? 500 : 50);
          wakeStop = () => { clearTimeout(t); r(); };
        });
      }
    };
    const done = loop();
    this.listener = { stop: () => { stopped = true; wakeStop(); }, done };
  }

  private stopListener(): void {
    const l = this.listener;
    this.listener = undefined;
    l?.stop();
  }

  // ------------------------------------------------------------------ background

  /** TTL removal, change-log pruning and tombstone purge; safe to run in many processes at once. */
  async sweep(): Promise<void> {
    if (this.sweeping || this.isClosed) return this.sweeping;
    this.sweeping = (async () => {
      try {
        await this.withClient('sweep', true, async (c) => {
          let expired = 0;
          for (let i = 0; i < 10; i++) {
            const r = await this.q(c, 'expire', () => expireSql(this.names), [500]);
            const n = num(r.rows[0]?.expired ?? 0);
            expired += n;
            if (n < 500) break;
          }
          if (expired > 0) this.signalChange();
          const p = await this.q(c, 'prune', () => pruneSql(this.names), [this.pruneMark, this.historyDepth, this.changeRetentionMs]);
          const mark = optNum(p.rows[0]?.mark);
          if (mark !== undefined) this.pruneMark = Math.max(0, mark);
          if (this.sweeps++ % 10 === 0) await this.q(c, 'purge', () => purgeSql(this.names), [this.tombstoneRetentionMs]);
        });
      } catch {
        // Background work: a failure (outage, lock) is retried next period.
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  /** Ends every watch, settles every call in flight (settleCalls), then ends the pool if it is the store's. */
  protected async doClose(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.hub.endAll();
    const l = this.listener;
    this.stopListener();
    await this.settleCalls();
    await bounded(Promise.allSettled([this.sweeping, this.notifying, l?.done]), CLOSE_CLEANUP_MS);
    if (this.ownsPool) await bounded(this.pool.end(), CLOSE_CLEANUP_MS);
  }

  /** Drops this store's tables, sequence and function (tests, benchmarks). The store must not be used afterwards. */
  async drop(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await dropStore(client, this.names);
    } finally {
      client.release();
    }
  }
}

/** ClosedError for a call close() gave up on: ambiguous when a write was sent (it may still commit). */
function closedInFlight(backend: string, call: Call): ClosedError {
  const err = new ClosedError(backend);
  if (call.mayCommit) err.message = `the ${backend} store was closed while its ${call.what} was in flight: the write may still commit`;
  return Object.assign(err, { ambiguous: call.mayCommit });
}

/**
 * Asks the server to cancel what these backends are running, on a
 * connection of its own (the pool's may all be in use); best effort and
 * bounded: a failure leaves the statements to finish (or be cut when they
 * next talk to their closed socket).
 */
async function cancelBackends(pool: Pool, pids: number[]): Promise<void> {
  const client = new pg.Client({ ...(pool.options as pg.ClientConfig), connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  const cancel = (async () => {
    try {
      await client.connect();
      await client.query('SELECT pg_cancel_backend(p) FROM unnest($1::int[]) AS p', [pids]);
    } catch {
      // best effort
    } finally {
      await client.end().catch(() => undefined);
    }
  })();
  await bounded(cancel, CLOSE_CLEANUP_MS);
}

/** Waits for `p`, at most `ms`. */
async function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([p.then(() => undefined, () => undefined), new Promise<void>((r) => (t = setTimeout(r, ms)))]);
  clearTimeout(t);
}

/** Whether encoded JSON holds the bytes `\u` (a unicode escape, or a backslash before a u). */
function hasUnicodeEscape(bytes: unknown): boolean {
  const b = bytes as Uint8Array;
  for (let i = 0; i + 1 < b.byteLength; i++) if (b[i] === 0x5c && b[i + 1] === 0x75) return true;
  return false;
}

function RevkitErrorLike(err: unknown): boolean {
  return ConflictError.is(err) || InvalidArgumentError.is(err) || BackendError.is(err);
}

/** A store on an existing `pg.Pool` (schema migrated on open). */
export function postgresStore(pool: Pool, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  return PostgresStore.fromPool(pool, options);
}

/** Drops the tables of a store given by schema/prefix, using any pg client or pool. */
export async function dropPostgresStore(client: Pick<Pool, 'query'>, options: { schema?: string; prefix?: string } = {}): Promise<void> {
  await dropStore(client as unknown as PoolClient, names(options.schema ?? 'public', options.prefix ?? 'revkit_'));
}

// ---------------------------------------------------------------------- helpers

/**
 * Where a pool connects, as errors name it: `postgres://user@host:port/db`
 * with pg's own defaults (PGHOST, PGUSER, …) filled in, never a password or
 * an option; and the pool's size and connect timeout.
 */
function whereOf(pool: Pool): PgWhere {
  const o = pool.options as pg.PoolConfig;
  let address: string;
  try {
    // pg's own reading of the options (connection string, PG* variables, defaults); connects nothing.
    const c = new pg.Client(o as pg.ClientConfig) as unknown as { host?: unknown; port?: unknown; database?: unknown; user?: unknown };
    const host = String(c.host ?? 'localhost');
    const user = typeof c.user === 'string' && c.user !== '' ? `${encodeURIComponent(c.user)}@` : '';
    const db = typeof c.database === 'string' ? encodeURIComponent(c.database) : '';
    address = host.startsWith('/')
      ? `postgres://${user}/${db} (socket ${host}, port ${String(c.port)})`
      : `postgres://${user}${host.includes(':') ? `[${host}]` : host}:${String(c.port)}/${db}`;
  } catch {
    address = 'postgres (address unknown)';
  }
  const where: PgWhere = { address };
  if (typeof o.max === 'number') where.poolSize = o.max;
  else where.poolSize = 10; // pg-pool's default
  if (typeof o.connectionTimeoutMillis === 'number' && o.connectionTimeoutMillis > 0) where.connectTimeoutMs = o.connectionTimeoutMillis;
  return where;
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

function durabilityOf(fsync: string, syncCommit: string, standbys: string): Durability {
  if (fsync !== 'on' || syncCommit === 'off') return 'os-buffered';
  if (standbys.trim() !== '' && (syncCommit === 'on' || syncCommit === 'remote_apply' || syncCommit === 'remote_write')) return 'replicated';
  return 'fsync';
}
