/**
 * How a store gets and gives back its connections: the pool fromUrl makes,
 * what connection errors name (the address), a call's connection (waiting
 * out a server restart, mapping errors with mapPgError in errors.ts), its
 * prepared statements, and what close() does to calls still in flight.
 */
import pg from 'pg';
import type { Pool, PoolClient, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { BackendError, ClosedError, ConflictError, InvalidArgumentError, type Durability } from '../core/index.js';
import { StaleConnectionError, isServerUnavailable, mapPgError, type PgWhere } from './errors.js';
import { durabilityOf } from './replication.js';
import { num, optNum, type Row } from './rows.js';

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

/** What the connections need of their store: whether it is closed, and its name for ClosedError. */
export interface Lifecycle {
  readonly isClosed: boolean;
  readonly backend: string;
}

/** close(): the most it waits for background work, a cancel request and the pool's end after answering every call. */
export const CLOSE_CLEANUP_MS = 5_000;

/** The pool fromUrl makes (and close() ends). */
export function createPool(connectionString: string, poolSize: number, connectTimeoutMs: number, Client?: typeof pg.Client): Pool {
  const pool = new pg.Pool({
    connectionString,
    ...(Client ? { Client } : {}),
    max: poolSize,
    connectionTimeoutMillis: connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
  });
  // Idle connections die when the server restarts; without a listener the
  // pool's 'error' event would crash the process. The pool drops them.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Where a pool connects, as errors name it: `postgres://user@host:port/db`
 * with pg's own defaults (PGHOST, PGUSER, …) filled in, never a password or
 * an option; and the pool's size and connect timeout.
 */
export function whereOf(pool: Pool): PgWhere {
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

/** What the server promises (its durability), read at open; its connection limits go into `where`, for the message of a "too many clients" refusal. */
export async function readServerSettings(client: PoolClient, where: PgWhere): Promise<Durability> {
  const r = await client.query<Row>(`SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc, current_setting('synchronous_standby_names') AS standbys,
    current_setting('max_connections') AS maxconn, current_setting('superuser_reserved_connections') AS reserved, current_setting('reserved_connections', true) AS reserved16`);
  const row = r.rows[0] ?? {};
  // For the message of a "too many clients" refusal, when no connection can be had to ask.
  where.maxConnections = num(row.maxconn);
  where.reservedConnections = num(row.reserved) + (optNum(row.reserved16) ?? 0);
  return durabilityOf(String(row.fsync), String(row.sc), String(row.standbys));
}


/** What Connections asks of loss detection (Lineage). */
export interface ConnectionGuard {
  check(client: PoolClient): Promise<void>;
  assertNotLost(): void;
  /** A statement that ended on the client may not be acknowledged: its member was superseded, or is being now. */
  endedSuperseded(client: PoolClient): boolean;
}

/** Calls that still run while a loss is latched: opening the store, reading its replication state, accepting the loss, polling for it. */
export const LOSS_EXEMPT = new Set(['open', 'replication', 'accept loss', 'loss check']);

/** A store's connections: every call on one is tracked until it settles, so close() can answer it. */
export class Connections {
  /** Calls holding (or waiting for) a connection; close() settles them. */
  private readonly calls = new Set<Call>();
  private onDrained: (() => void) | undefined;
  private readonly sql: Record<string, string> = {};
  /** What connection errors name: the address (no password), the pool's size, the server's max_connections once seen. */
  readonly where: PgWhere;
  /** Checks each new connection before its first use (loss detection, lineage.ts); none for a store without it. */
  guard: ConnectionGuard | undefined;

  constructor(
    readonly pool: Pool,
    /** Names this store's prepared statements apart from other stores' (Names.tag). */
    private readonly tag: string,
    private readonly store: Lifecycle,
    private readonly connectWaitMs: number,
    private readonly closeTimeoutMs: number,
  ) {
    this.where = whereOf(pool);
  }

  private assertOpen(): void {
    if (this.store.isClosed) throw new ClosedError(this.store.backend);
  }

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
        const client = await this.pool.connect();
        if (this.guard) await this.guarded(client, what);
        return client;
      } catch (err) {
        if (err instanceof StaleConnectionError) continue; // discarded by guarded(): the pool makes a new one
        if (!isServerUnavailable(err) || Date.now() + delay > deadline || this.store.isClosed) throw mapPgError(err, { writeSent: false, what, connecting: true, where: this.where });
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 500);
      }
    }
  }

  /**
   * A new connection's member is checked (Lineage.check: writable, its
   * timeline met and checked for lost writes) before first use; then a
   * latched loss fails every call but those that deal with it.
   */
  private async guarded(client: PoolClient, what: string): Promise<void> {
    const guard = this.guard as ConnectionGuard;
    // The member may die during the check: its 'error' event must not go unheard (the query fails with it too).
    const onError = () => undefined;
    client.on('error', onError);
    try {
      await guard.check(client);
    } catch (err) {
      client.release(err instanceof Error ? err : true);
      throw err;
    } finally {
      client.off('error', onError);
    }
    if (!LOSS_EXEMPT.has(what)) {
      try {
        guard.assertNotLost();
      } catch (err) {
        client.release();
        throw err;
      }
    }
  }

  /**
   * Runs `fn` on a pooled connection. `write`: true — a write statement is
   * sent as soon as `fn` runs; 'commit' — `fn` marks the moment it sends its
   * COMMIT (call.mayCommit); false — a read. Every call is tracked until it
   * settles, so close() can answer it (see settleCalls).
   */
  withClient<R>(what: string, write: boolean | 'commit', fn: (client: PoolClient, call: Call) => Promise<R>): Promise<R> {
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
      throw new ClosedError(this.store.backend);
    }
    call.client = client;
    const onError = () => undefined; // a checked-out client may emit 'error' when its connection dies
    client.on('error', onError);
    let result: R;
    try {
      if (write === true) call.mayCommit = true;
      result = await fn(client, call);
    } catch (err) {
      client.off('error', onError);
      call.client = undefined;
      if (!call.abandoned) client.release(RevkitErrorLike(err) || connectionStillGood(err) ? undefined : (err as Error) ?? true);
      throw mapPgError(err, { writeSent: write !== false, what: call.what, where: this.where });
    }
    client.off('error', onError);
    // Returned once: close() releases only a client still set here.
    call.client = undefined;
    if (this.guard?.endedSuperseded(client)) {
      // It ran on a member superseded while it ran (an old primary's session outliving a promotion): what it
      // wrote may exist there only, what it read may be the past. Not acknowledged; the connection is dropped.
      if (!call.abandoned) client.release(new StaleConnectionError('its member was superseded while it was in use'));
      throw new BackendError(`postgres: the ${call.what} ran on a member superseded by a failover while it ran${write !== false ? '; the write may exist only there (outcome unknown)' : ''}`, { transient: true, ambiguous: write !== false });
    }
    if (!call.abandoned) client.release();
    return result;
  }

  /**
   * close(): calls in flight may finish for closeTimeoutMs; each one left is
   * then answered with ClosedError — ambiguous where a write was sent (a
   * statement the server is still running may commit) —, its statement is
   * cancelled on the server (best effort: it may have committed already) and
   * its connection is discarded, so the pool can end.
   */
  async settleCalls(): Promise<void> {
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
      call.abandon(closedInFlight(this.store.backend, call));
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

  q<R extends QueryResultRow = Row>(client: PoolClient, name: string, build: () => string, values: unknown[]): Promise<QueryResult<R>> {
    const config: QueryConfig = { name: `revkit_${this.tag}_${name}`, text: this.statement(name, build), values };
    return client.query<R>(config);
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
export async function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([p.then(() => undefined, () => undefined), new Promise<void>((r) => (t = setTimeout(r, ms)))]);
  clearTimeout(t);
}

/** Error classes of pg that leave the connection usable (the statement just failed). */
function connectionStillGood(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return false;
  // 25006: the member is read-only now; a new connection may find the primary.
  return !(code.startsWith('08') || code.startsWith('57P') || code.startsWith('53') || code.startsWith('58') || code === '25006');
}

function RevkitErrorLike(err: unknown): boolean {
  return ConflictError.is(err) || InvalidArgumentError.is(err) || BackendError.is(err);
}
