import { BackendError, RevkitError } from '../core/index.js';

/**
 * Where a store's connections go, for error messages: every connection
 * error names the backend, the address (never a password) and the cause.
 */
export interface PgWhere {
  /** `postgres://user@host:port/db`, without password or options. */
  address: string;
  /** The most connections the store's pool opens (undefined: an application's pool of unknown size). */
  poolSize?: number;
  /** How long a call waits for a pooled connection or a new one, in ms. */
  connectTimeoutMs?: number;
  /** The server's max_connections and superuser_reserved_connections, as last seen on a connection of this store. */
  maxConnections?: number;
  reservedConnections?: number;
}

export interface PgErrorContext {
  writeSent: boolean;
  what: string;
  /** The failure came while getting a connection (nothing was sent on it). */
  connecting?: boolean;
  where?: PgWhere;
}

/** pg-pool's error when no pooled connection came free within connectionTimeoutMillis (a new one would exceed the pool's max). */
const POOL_WAIT_TIMEOUT = /^timeout exceeded when trying to connect$/;

/**
 * True for the server's refusal of a new connection because its slots are
 * taken: SQLSTATE 53300 (too_many_connections: "sorry, too many clients
 * already", "remaining connection slots are reserved for …", "too many
 * connections for role/database"), or 53400 about connections, or those
 * messages without a code.
 */
export function isTooManyClients(code: string | undefined, message: string): boolean {
  if (code === '53300') return true;
  if (code === '53400' && /connection/i.test(message)) return true;
  return /too many clients already|remaining connection slots are reserved|too many connections for/i.test(message);
}

/** The text of an error for a message: its message, else its code (Node's AggregateError of a refused dual-stack connect has none). */
export function causeText(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown; errors?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (message !== '') return message;
  if (Array.isArray(e?.errors)) {
    const inner = e.errors.map((x) => causeText(x)).filter((t) => t !== '');
    if (inner.length > 0) return [...new Set(inner)].join('; ');
  }
  return typeof e?.code === 'string' ? e.code : 'unknown error';
}

function at(where: PgWhere | undefined): string {
  return where === undefined ? 'postgres' : `postgres at ${where.address}`;
}

function tooManyClients(err: unknown, code: string | undefined, message: string, ctx: PgErrorContext): BackendError {
  const w = ctx.where;
  const limit = w?.maxConnections === undefined
    ? "the server's max_connections"
    : `the server's max_connections (${w.maxConnections} when this store last looked${w.reservedConnections ? `, ${w.reservedConnections} of them reserved for superusers` : ''})`;
  const pool = w?.poolSize === undefined ? '' : `; this store's pool opens up to ${w.poolSize} connection${w.poolSize === 1 ? '' : 's'}`;
  return new BackendError(
    `${at(w)} refused a connection for ${ctx.what}: too many clients — every connection ${limit} allows is in use${pool} (${code ?? 'no SQLSTATE'}: ${message}). ` +
      'Close idle clients, lower poolSize, or raise max_connections',
    { transient: true, ambiguous: false, cause: err },
  );
}

/**
 * Maps whatever node-postgres throws to a revkit error; a raw pg error never
 * leaves this backend (it is kept as `cause`).
 *
 * - The server answered with an SQLSTATE:
 *   - 40001 serialization failure, 40P01 deadlock, 55P03 lock not available,
 *     57014 query canceled (statement_timeout): the statement failed and
 *     rolled back → transient, not ambiguous.
 *   - 25006 read_only_sql_transaction (a standby, or a demoted primary back
 *     as one): refused, nothing written → transient, not ambiguous; the
 *     connection is discarded and the next one tries the other hosts.
 *   - 53300 too many connections (and its messages without a code): the
 *     server refused a new connection because max_connections are taken →
 *     transient, never ambiguous (nothing is sent before a connection is
 *     accepted); the message says so, with the address, the server's
 *     max_connections when known, and the store's pool size.
 *   - class 08 (connection exception), 57P01/57P02/57P03 (admin / crash
 *     shutdown, cannot connect now), the rest of class 53 (insufficient
 *     resources), 58xxx (system error): the connection is gone or the server
 *     is going away → transient; ambiguous when a write was sent, because a
 *     FATAL can arrive after the commit record was flushed (the extended
 *     protocol commits at Sync, after CommandComplete was queued).
 *   - anything else (42xxx undefined table, 22xxx data exception, …) is a
 *     permanent BackendError: retrying will not help.
 * - No SQLSTATE: socket-level failures (ECONNREFUSED, ECONNRESET, EPIPE,
 *   ETIMEDOUT, "Connection terminated unexpectedly", connect timeout,
 *   "Client has encountered a connection error and is not queryable") are
 *   transient; ambiguous when a write was sent. pg-pool's "timeout exceeded
 *   when trying to connect" is the pool's own exhaustion (every connection
 *   it may open stayed checked out): transient, not ambiguous, and said so —
 *   not reported as a lost connection.
 *
 * Connection errors name the address (`ctx.where`, no password) and the cause.
 */
export function mapPgError(err: unknown, ctx: PgErrorContext): RevkitError {
  if (RevkitError.is(err)) return err;
  const e = err as { code?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const message = causeText(err);
  // The server refuses a new connection only at its start: nothing was sent on it.
  if (isTooManyClients(code, message)) return tooManyClients(err, code, message, ctx);
  const where = at(ctx.where);
  if (code !== undefined && /^[0-9A-Z]{5}$/.test(code)) {
    if (code === '40001' || code === '40P01' || code === '55P03' || code === '57014') {
      return new BackendError(`postgres ${ctx.what} failed (${code}: ${message}); nothing was written`, { transient: true, ambiguous: false, cause: err });
    }
    if (code === '25006') {
      // read_only_sql_transaction: the member is (or became) a standby, e.g. a demoted primary back as one.
      // The statement was refused, so nothing was written; a connection elsewhere may take it.
      return new BackendError(`${where} is read-only (a standby?) and refused ${ctx.what} (${code}: ${message}); nothing was written, the next connection tries the other hosts`, { transient: true, ambiguous: false, cause: err });
    }
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '57P05' || code.startsWith('53') || code.startsWith('58')) {
      const what = ctx.connecting ? `${where} refused a connection for ${ctx.what}` : `the connection to ${where} was lost during ${ctx.what}`;
      return new BackendError(`${what} (${code}: ${message})`, { transient: true, ambiguous: ctx.writeSent && !ctx.connecting, cause: err });
    }
    return new BackendError(`postgres ${ctx.what} failed (${code}: ${message})`, { transient: false, cause: err });
  }
  if (POOL_WAIT_TIMEOUT.test(message)) {
    // pg-pool's queue: every connection the pool may open is checked out (or still being opened).
    const w = ctx.where;
    const size = w?.poolSize === undefined ? 'every connection of the pool' : `all ${w.poolSize} connection${w.poolSize === 1 ? '' : 's'} of this store's pool`;
    const waited = w?.connectTimeoutMs === undefined ? '' : ` within ${w.connectTimeoutMs} ms`;
    return new BackendError(
      `${where}: no pooled connection came free for ${ctx.what}${waited} — ${size} stayed in use (raise poolSize or connect_timeout, or make fewer calls at once); cause: ${message}`,
      { transient: true, ambiguous: false, cause: err },
    );
  }
  if (isConnectionFailure(code, message)) {
    const what = ctx.connecting ? `cannot connect to ${where} for ${ctx.what}` : `the connection to ${where} was lost during ${ctx.what}`;
    const limit = /connection timeout/i.test(message) && ctx.where?.connectTimeoutMs ? ` (no answer within ${ctx.where.connectTimeoutMs} ms, connect_timeout)` : '';
    return new BackendError(`${what}: ${message}${limit}`, { transient: true, ambiguous: ctx.writeSent && !ctx.connecting, cause: err });
  }
  return new BackendError(`postgres ${ctx.what} failed: ${message}`, { transient: false, cause: err });
}

const NODE_CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'ENETDOWN',
]);

export function isConnectionFailure(code: string | undefined, message: string): boolean {
  if (code !== undefined && NODE_CONNECTION_CODES.has(code)) return true;
  return /Connection terminated|connection error and is not queryable|timeout exceeded when trying to connect|Client was closed|not queryable|socket (?:has been ended|is closed|hang up)|read ECONNRESET|Connection ended|ECONNREFUSED/i.test(message);
}

/** True when connecting failed in a way that a short wait may cure (server restarting or down). */
export function isServerUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const message = causeText(err);
  if (code === '57P03' || code === '57P01' || code === '57P02' || code === '25006' || code?.startsWith('08')) return true;
  return isConnectionFailure(code, message);
}

/** A pooled connection whose member served an older timeline than one this process has met: discarded, and another one made (never told to a caller). */
export class StaleConnectionError extends Error {}
