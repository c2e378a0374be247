import { BackendError } from '../core/index.js';

/**
 * A transport failure as a transient BackendError naming the server (`server`:
 * its URL, secrets redacted) with the driver's error as `cause`. `status` is
 * that of a response whose body was cut (undefined: no response arrived).
 * Ambiguous for a write that may have reached the server: one whose connection
 * failed once sent, or whose response was cut — unless the status line
 * already said the server refused it (4xx).
 */
export function transportError(server: string, err: unknown, method: string, write: boolean, status: number | undefined): BackendError {
  const what = describeTransportError(err);
  let failure: BackendError;
  if (status === undefined) {
    const code = causeCode(err);
    const refused = code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
    failure = new BackendError(`cannot reach the revkit server at ${server} (${method}): ${what}`, { transient: true, ambiguous: write && !refused, cause: err });
  } else {
    const refusedByServer = status >= 400 && status < 500;
    failure = new BackendError(`the response of the revkit server at ${server} to ${method} (${status}) was cut: ${what}`, {
      transient: true, ambiguous: write && !refusedByServer, cause: err,
    });
  }
  withoutAnswer.add(failure);
  return failure;
}

/** The errors transportError() made: the server gave no (whole) HTTP answer. */
const withoutAnswer = new WeakSet<object>();

/**
 * The replica cannot serve: a client of several servers leaves it (and probes
 * its /readyz before using it again). That is so when it gave no whole HTTP
 * answer (refused, reset, timed out, cut), or when its answer says the server
 * itself is unable, not the store:
 * - 503 ERR_UNAVAILABLE or ERR_CLOSED: it is shutting down;
 * - 503 ERR_BACKEND, transient: the store is unreachable *from this server*
 *   (the other replicas have connections of their own; if the store is down
 *   for all, each says so once and the call fails with this error);
 * - 502, 503 or 504 without a revkit problem body: a gateway in front of it
 *   could not reach it, or gave up waiting.
 * Every other answer comes from a working server over the shared store, and
 * the next one would say the same: 4xx (412, 409 conflicts included),
 * ERR_DATA_LOST (the store's state), ERR_OUTCOME_UNKNOWN, a non-transient
 * ERR_BACKEND. Whether the call may run again on the next server is another
 * question (ReplicaPool.run): not for a write that may have committed.
 */
export function replicaUnusable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  if (withoutAnswer.has(err)) return true;
  const { status, problem } = err as { status?: unknown; problem?: { code?: unknown; transient?: unknown } | null };
  if (status !== 502 && status !== 503 && status !== 504) return false;
  const code = typeof problem === 'object' && problem !== null ? problem.code : undefined;
  if (typeof code !== 'string' || !code.startsWith('ERR_')) return true; // not a revkit server's answer: its gateway's
  if (status !== 503) return false;
  return code === 'ERR_UNAVAILABLE' || code === 'ERR_CLOSED' || (code === 'ERR_BACKEND' && problem?.transient === true);
}

/** The connection failed under a request (reset, broken pipe, closed by the other side), rather than a timeout or a refusal. */
export function isConnectionLoss(err: unknown): boolean {
  const code = causeCode(err);
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET' || code === 'ECONNABORTED';
}

/** The code of the socket error under fetch's TypeError (ECONNRESET, EPIPE, UND_ERR_SOCKET…). */
function causeCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}

/** One line: fetch's message and those of its causes, with their codes. */
function describeTransportError(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { code?: unknown; cause?: unknown; message?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    const message = typeof e.message === 'string' ? e.message : String(e);
    parts.push(typeof e.code === 'string' && !message.includes(e.code) ? `${message} (${e.code})` : message);
    if (typeof e !== 'object') break;
  }
  return parts.filter((p, i) => p && parts.indexOf(p) === i).join(': ').replace(/\s+/g, ' ');
}
