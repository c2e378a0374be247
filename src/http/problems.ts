import {
  BackendError, ConflictError, DataLostError, ForbiddenError, HistoryGoneError, InvalidArgumentError, InvalidKeyError, MAX_KEY_BYTES, OutcomeUnknownError,
  RetryExhaustedError, RevkitError, TooLargeError, UnauthorizedError, UnsupportedError, ValidationError, type FailedCheck,
} from '../core/index.js';

/** A problem document of the server (status aside): its `code` names the revkit error. */
export interface ProblemBody {
  code?: string;
  detail?: string;
  [k: string]: unknown;
}

/** What the request that was answered with a problem was, for the error's message and fields. */
export interface ProblemRequest {
  write?: boolean;
  server?: string;
  bodyBytes?: number | undefined;
  bodyLimit?: number | undefined;
}

/** A body's JSON, or undefined when it is not JSON (a proxy's page). */
export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The revkit error a problem body stands for. */
export function errorFromProblem(status: number, body: ProblemBody | undefined, key?: string, request: ProblemRequest = {}): RevkitError {
  // A server's words are bounded here, as its dataLost is: an error's message is no place for megabytes.
  const detail = typeof body?.detail === 'string' ? body.detail.slice(0, MAX_DETAIL) : `HTTP ${status}`;
  const at = request.server ? ` (${request.server})` : '';
  const num = (v: unknown, d = 0) => (typeof v === 'number' ? v : d);
  switch (body?.code) {
    case 'ERR_CONFLICT': {
      const checks = Array.isArray(body.checks)
        ? (body.checks as FailedCheck[]).map((c) => ({ key: c.key, expected: c.expected, actual: c.actual }))
        : [{ key: typeof body.key === 'string' ? body.key : (key ?? ''), expected: (body.expected ?? null) as FailedCheck['expected'], actual: (body.actual ?? null) as number | null }];
      // 409 is the answer of a failed atomic commit (POST /v1/txn), 412 of a single-key precondition.
      return new ConflictError(checks, undefined, { atomic: status === 409 });
    }
    case 'ERR_VALIDATION':
      return new ValidationError(Array.isArray(body.issues) ? (body.issues as ValidationError['issues']) : [{ message: detail }], typeof body.key === 'string' ? body.key : key);
    case 'ERR_TOO_LARGE':
      return new TooLargeError('the encoded value', num(body.size), num(body.limit));
    case 'ERR_PAYLOAD_TOO_LARGE':
      return new TooLargeError('the request body', num(body.size, request.bodyBytes ?? 0), num(body.limit, request.bodyLimit ?? 0));
    case 'ERR_INVALID_KEY':
      return new InvalidKeyError(detail, num(body.limit, MAX_KEY_BYTES));
    case 'ERR_INVALID_ARGUMENT':
    case 'ERR_BAD_REQUEST':
      return new InvalidArgumentError(detail);
    case 'ERR_PRECONDITION_REQUIRED':
      return new InvalidArgumentError(`the server requires a condition on every write: ${detail}`);
    case 'ERR_UNSUPPORTED':
      return new UnsupportedError(String(body.operation ?? 'operation'), String(body.backend ?? 'remote'));
    case 'ERR_HISTORY_GONE':
      return new HistoryGoneError(num(body.fromRevision), num(body.oldestRevision));
    case 'ERR_OUTCOME_UNKNOWN': {
      // The server's store reported a loss to this call, whose write may have landed: the loss is its cause.
      // A malformed one still says a loss was reported: better told with default details than not told.
      const loss = body.dataLost !== undefined && body.dataLost !== null && body.dataLost !== false
        ? dataLostFrom(isObject(body.dataLost) ? body.dataLost : {}, request) : undefined;
      return new OutcomeUnknownError(typeof body.key === 'string' ? body.key : (key ?? ''), detail, loss ? { cause: loss } : undefined);
    }
    case 'ERR_DATA_LOST':
      return dataLostFrom(body, request);
    case 'ERR_RETRY_EXHAUSTED':
      return new RetryExhaustedError(String(body.key ?? key ?? ''), num(body.attempts), new RevkitError('ERR_CONFLICT', detail), (body.reason as 'attempts') ?? 'attempts');
    default: {
      // Whatever the body's code, 401 and 403 are the server's refusal, not a store failure.
      if (status === 401) return new UnauthorizedError(`not authenticated by the revkit server${at}: ${detail}`);
      // A 413 without a revkit problem (a proxy in front refused the body).
      if (status === 413 && body?.code === undefined) return new TooLargeError('the request body', request.bodyBytes ?? 0, request.bodyLimit ?? 0);
      if (status === 403) {
        const scope = typeof body?.scope === 'string' ? body.scope : typeof body?.access === 'string' ? body.access : undefined;
        return new ForbiddenError(`forbidden by the revkit server${at}: ${detail}`, scope);
      }
      const transient = typeof body?.transient === 'boolean' ? body.transient
        : status === 503 || status === 502 || status === 504 || status === 408 || status === 429;
      const ambiguous = typeof body?.ambiguous === 'boolean' ? body.ambiguous : request.write === true && isUnconfirmedWrite(status, body);
      const err = new BackendError(`revkit server: ${status} ${body?.code ?? ''} ${detail}`.replace(/\s+/g, ' ').trim(), { transient, ambiguous });
      Object.assign(err, { status, problem: body });
      return err;
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const MAX_DETAIL = 2_000;
const MAX_LOSS_RANGES = 1_000;
const revisionIn = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** A DataLostError from a problem's `detail` and `details` (its own, or those of its `dataLost`); a server's body is bounded here. */
function dataLostFrom(source: Record<string, unknown>, request: ProblemRequest): DataLostError {
  const at = request.server ? ` (${request.server})` : '';
  const detail = typeof source.detail === 'string' ? source.detail.slice(0, MAX_DETAIL) : 'the store lost acknowledged writes';
  const details = isObject(source.details) ? source.details : {};
  const ranges = Array.isArray(details.ranges)
    ? (details.ranges as unknown[]).slice(0, MAX_LOSS_RANGES).filter((r): r is { after: number; upTo: number } => isObject(r) && revisionIn(r.after) && revisionIn(r.upTo) && r.after < r.upTo).map((r) => ({ after: r.after, upTo: r.upTo }))
    : undefined;
  return new DataLostError(`revkit server${at}: ${detail}`, {
    store: typeof details.store === 'string' ? details.store.slice(0, 200) : (request.server ?? 'revkit server'),
    ...(revisionIn(details.after) ? { after: details.after } : {}),
    ...(revisionIn(details.upTo) ? { upTo: details.upTo } : {}),
    ...(typeof details.detectedAt === 'string' ? { detectedAt: details.detectedAt.slice(0, 64) } : {}),
    ...(ranges ? { ranges } : {}),
  });
}

/**
 * A write answered by a gateway error or an internal error may have reached
 * the store: unless the server says otherwise, treat it as unconfirmed.
 * ERR_UNAVAILABLE is the server refusing before doing anything (shutdown).
 */
function isUnconfirmedWrite(status: number, body: ProblemBody | undefined): boolean {
  return status >= 500 && body?.code !== 'ERR_UNAVAILABLE' && body?.code !== 'ERR_UNSUPPORTED';
}
