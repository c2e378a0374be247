/**
 * How driver errors become revkit errors.
 *
 * Timeouts and connection trouble are transient (and ambiguous for a
 * publish, whose message may have been stored); an answer of the server
 * (a JetStream API error) is a refusal, transient only when it says 503.
 */
import { BackendError, RevkitError } from '../core/index.js';

/** JetStream API error codes revkit acts on. */
export const WRONG_LAST_SEQUENCE = 10071;
export const WRONG_LAST_SEQUENCE_CONSTANT = 10164;
export const STREAM_NOT_FOUND = 10059;
export const NO_MESSAGE_FOUND = 10037;
/** "JetStream system temporarily unavailable": the meta group or the stream has no leader yet (after a pause, a restart). */
export const CLUSTER_NOT_AVAILABLE = 10008;
const TRANSIENT_CODES = new Set([CLUSTER_NOT_AVAILABLE]);

/** The JetStream API error code of a server's answer; undefined for any other error. */
export function jsCode(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { name?: string; code?: unknown; apiError?: unknown };
  if (typeof e.apiError === 'function' && typeof e.code === 'number') return e.code;
  return undefined;
}

function jsStatus(err: unknown): number | undefined {
  const s = (err as { status?: unknown } | null)?.status;
  return typeof s === 'number' ? s : undefined;
}

/** Nobody took the request (JetStream not running yet, e.g. after a restart): nothing was stored. */
export function isNoResponders(err: unknown): boolean {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const x = e as { name?: string; isNoResponders?: () => boolean; cause?: unknown };
    if (x.name === 'NoRespondersError' || x.name === 'JetStreamNotEnabled') return true;
    if (typeof x.isNoResponders === 'function' && x.isNoResponders()) return true;
    e = x.cause;
  }
  return false;
}

export function toBackendError(err: unknown, write: boolean, context?: string): RevkitError {
  if (RevkitError.is(err)) return err;
  const e = err as { name?: string; message?: string } | null;
  const name = e?.name ?? 'Error';
  const message = `${context ? `${context}: ` : ''}NATS ${name}: ${e?.message ?? String(err)}`;
  if (jsCode(err) !== undefined) {
    // The server answered: the request was refused, not lost.
    return new BackendError(message, { transient: jsStatus(err) === 503 || TRANSIENT_CODES.has(jsCode(err) as number), ambiguous: false, cause: err });
  }
  if (isNoResponders(err)) return new BackendError(message, { transient: true, ambiguous: false, cause: err });
  if (name === 'ClosedConnectionError' || name === 'AuthorizationError' || name === 'PermissionViolationError' || name === 'UserAuthenticationExpiredError' || name === 'InvalidArgumentError' || name === 'InvalidSubjectError') {
    return new BackendError(message, { transient: false, ambiguous: false, cause: err });
  }
  // Timeouts, disconnects, a reader that lost its consumer: worth retrying; a publish may have landed.
  return new BackendError(message, { transient: true, ambiguous: write, cause: err });
}
