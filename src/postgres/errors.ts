import { BackendError, RevkitError } from '../core/index.js';

/**
 * Maps whatever node-postgres throws to a revkit error; a raw pg error never
 * leaves this backend (it is kept as `cause`).
 *
 * - The server answered with an SQLSTATE:
 *   - 40001 serialization failure, 40P01 deadlock, 55P03 lock not available,
 *     57014 query canceled (statement_timeout): the statement failed and
 *     rolled back → transient, not ambiguous.
 *   - class 08 (connection exception), 57P01/57P02/57P03 (admin / crash
 *     shutdown, cannot connect now), class 53 (insufficient resources, e.g.
 *     too many connections), 58xxx (system error): the connection is gone or
 *     the server is going away → transient; ambiguous when a write was sent,
 *     because a FATAL can arrive after the commit record was flushed (the
 *     extended protocol commits at Sync, after CommandComplete was queued).
 *   - anything else (42xxx undefined table, 22xxx data exception, …) is a
 *     permanent BackendError: retrying will not help.
 * - No SQLSTATE: socket-level failures (ECONNREFUSED, ECONNRESET, EPIPE,
 *   ETIMEDOUT, "Connection terminated unexpectedly", pool connect timeout,
 *   "Client has encountered a connection error and is not queryable") are
 *   transient; ambiguous when a write was sent.
 */
export function mapPgError(err: unknown, ctx: { writeSent: boolean; what: string }): RevkitError {
  if (RevkitError.is(err)) return err;
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (code !== undefined && /^[0-9A-Z]{5}$/.test(code)) {
    if (code === '40001' || code === '40P01' || code === '55P03' || code === '57014') {
      return new BackendError(`postgres ${ctx.what} failed (${code}: ${message}); nothing was written`, { transient: true, ambiguous: false, cause: err });
    }
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '57P05' || code.startsWith('53') || code.startsWith('58')) {
      return new BackendError(`postgres connection lost during ${ctx.what} (${code}: ${message})`, { transient: true, ambiguous: ctx.writeSent, cause: err });
    }
    return new BackendError(`postgres ${ctx.what} failed (${code}: ${message})`, { transient: false, cause: err });
  }
  if (isConnectionFailure(code, message)) {
    return new BackendError(`postgres connection failure during ${ctx.what}: ${message}`, { transient: true, ambiguous: ctx.writeSent, cause: err });
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
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (code === '57P03' || code === '57P01' || code === '57P02' || code?.startsWith('08')) return true;
  return isConnectionFailure(code, message);
}
