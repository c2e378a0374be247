import {
  BackendError, ConflictError, DataLostError, ForbiddenError, HistoryGoneError, InvalidArgumentError, InvalidKeyError, MAX_KEY_BYTES, OutcomeUnknownError,
  RetryExhaustedError, RevkitError, TooLargeError, UnauthorizedError, UnsupportedError, ValidationError, clipText, type FailedCheck, type ValidationIssue,
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

/**
 * The revkit error a problem body stands for. A server's words are bounded
 * here, whatever field they come in, and a field of the wrong shape is left
 * out rather than trusted: a malformed or hostile body still makes a typed
 * error of a readable size.
 */
export function errorFromProblem(status: number, body: ProblemBody | undefined, key?: string, request: ProblemRequest = {}): RevkitError {
  const err = fromProblem(status, body, key, request);
  if (err.message.length > MAX_MESSAGE) err.message = clipText(err.message, MAX_MESSAGE);
  return err;
}

function fromProblem(status: number, body: ProblemBody | undefined, key: string | undefined, request: ProblemRequest): RevkitError {
  const detail = typeof body?.detail === 'string' ? clipText(body.detail, MAX_DETAIL) : `HTTP ${status}`;
  const at = request.server ? ` (${request.server})` : '';
  // Sizes, limits, revisions and counts: non-negative integers, or the default.
  const num = (v: unknown, d = 0) => (revisionIn(v) ? v : d);
  const bodyKey = typeof body?.key === 'string' ? clipText(body.key, MAX_KEY_BYTES) : undefined;
  switch (body?.code) {
    case 'ERR_CONFLICT': {
      const given = Array.isArray(body.checks) ? (body.checks as unknown[]).slice(0, MAX_LIST).flatMap(checkIn) : [];
      const checks = given.length > 0 ? given : [{ key: bodyKey ?? key ?? '', expected: expectedIn(body.expected), actual: revisionIn(body.actual) ? body.actual : null }];
      // 409 is the answer of a failed atomic commit (POST /v1/txn), 412 of a single-key precondition.
      return new ConflictError(checks, undefined, { atomic: status === 409 });
    }
    case 'ERR_VALIDATION': {
      const issues = Array.isArray(body.issues) ? (body.issues as unknown[]).slice(0, MAX_ISSUES).flatMap(issueIn) : [];
      return new ValidationError(issues.length > 0 ? issues : [{ message: detail }], bodyKey ?? key);
    }
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
      return new UnsupportedError(typeof body.operation === 'string' ? clipText(body.operation, 200) : 'operation', typeof body.backend === 'string' ? clipText(body.backend, 200) : 'remote');
    case 'ERR_HISTORY_GONE':
      return new HistoryGoneError(num(body.fromRevision), num(body.oldestRevision));
    case 'ERR_OUTCOME_UNKNOWN': {
      // The server's store reported a loss to this call, whose write may have landed: the loss is its cause.
      // A malformed one still says a loss was reported: better told with default details than not told.
      const loss = body.dataLost !== undefined && body.dataLost !== null && body.dataLost !== false
        ? dataLostFrom(isObject(body.dataLost) ? body.dataLost : {}, request) : undefined;
      return new OutcomeUnknownError(bodyKey ?? key ?? '', detail, loss ? { cause: loss } : undefined);
    }
    case 'ERR_DATA_LOST':
      return dataLostFrom(body, request);
    case 'ERR_RETRY_EXHAUSTED':
      return new RetryExhaustedError(bodyKey ?? key ?? '', num(body.attempts), new RevkitError('ERR_CONFLICT', detail), body.reason === 'deadline' || body.reason === 'aborted' ? body.reason : 'attempts');
    default: {
      // Whatever the body's code, 401 and 403 are the server's refusal, not a store failure.
      if (status === 401) return new UnauthorizedError(`not authenticated by the revkit server${at}: ${detail}`);
      // A 413 without a revkit problem (a proxy in front refused the body).
      if (status === 413 && body?.code === undefined) return new TooLargeError('the request body', request.bodyBytes ?? 0, request.bodyLimit ?? 0);
      if (status === 403) {
        const given = typeof body?.scope === 'string' ? body.scope : typeof body?.access === 'string' ? body.access : undefined;
        const scope = given === undefined ? undefined : clipText(given, 200);
        return new ForbiddenError(`forbidden by the revkit server${at}: ${detail}`, scope);
      }
      const transient = typeof body?.transient === 'boolean' ? body.transient
        : status === 503 || status === 502 || status === 504 || status === 408 || status === 429;
      const ambiguous = typeof body?.ambiguous === 'boolean' ? body.ambiguous : request.write === true && isUnconfirmedWrite(status, body);
      const code = typeof body?.code === 'string' ? clipText(body.code, 64) : undefined;
      const err = new BackendError(`revkit server: ${status} ${code ?? ''} ${detail}`.replace(/\s+/g, ' ').trim(), { transient, ambiguous });
      // What the server said, bounded: its code and detail, and how it judged the failure.
      Object.assign(err, { status, problem: { ...(code !== undefined ? { code } : {}), detail, transient, ambiguous } });
      return err;
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export const MAX_DETAIL = 2_000;
/** An error's whole message: a detail and what the client adds around it. */
const MAX_MESSAGE = 2_500;
/** Checks and loss ranges read from one body (a check's key is up to MAX_KEY_BYTES). */
const MAX_LIST = 1_000;
/** Validation issues read from one body: a value's issues, not a list of data. */
const MAX_ISSUES = 100;
const revisionIn = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** A server's `after` / `upTo` of a loss: each a revision, or left out; an empty or inverted span is none. */
export function lossSpan(given: Record<string, unknown>): { after?: number; upTo?: number } {
  const after = revisionIn(given.after) ? given.after : undefined;
  const upTo = revisionIn(given.upTo) ? given.upTo : undefined;
  if (after !== undefined && upTo !== undefined && after >= upTo) return {};
  return { ...(after !== undefined ? { after } : {}), ...(upTo !== undefined ? { upTo } : {}) };
}

function expectedIn(v: unknown): FailedCheck['expected'] {
  return v === 'absent' || v === 'value' || revisionIn(v) ? v : null;
}

function checkIn(c: unknown): FailedCheck[] {
  if (!isObject(c) || typeof c.key !== 'string') return [];
  return [{ key: clipText(c.key, MAX_KEY_BYTES), expected: expectedIn(c.expected), actual: revisionIn(c.actual) ? c.actual : null }];
}

function issueIn(i: unknown): ValidationIssue[] {
  if (!isObject(i) || typeof i.message !== 'string') return [];
  const path = Array.isArray(i.path) ? (i.path as unknown[]).slice(0, 32).filter((p): p is string | number => typeof p === 'string' || typeof p === 'number').map((p) => (typeof p === 'string' ? clipText(p, 100) : p)) : undefined;
  return [{ message: clipText(i.message, 500), ...(path ? { path } : {}) }];
}

/** A DataLostError from a problem's `detail` and `details` (its own, or those of its `dataLost`); a server's body is bounded here. */
function dataLostFrom(source: Record<string, unknown>, request: ProblemRequest): DataLostError {
  const at = request.server ? ` (${request.server})` : '';
  const detail = typeof source.detail === 'string' ? clipText(source.detail, MAX_DETAIL) : 'the store lost acknowledged writes';
  const details = isObject(source.details) ? source.details : {};
  // An empty or inverted range names no revision: left out (not a hull, not one of the ranges), never the ranges cut short by it.
  const given = Array.isArray(details.ranges)
    ? (details.ranges as unknown[]).filter((r): r is { after: number; upTo: number } => isObject(r) && revisionIn(r.after) && revisionIn(r.upTo) && r.after < r.upTo)
    : [];
  const ranges = given.slice(0, MAX_LIST).map((r) => ({ after: r.after, upTo: r.upTo }));
  const span = lossSpan(details);
  // The ranges' hull when the one given is not one (DataLossDetails: after/upTo are their hull) — only from every
  // range: the hull of the first MAX_LIST would understate a loss reaching further.
  const complete = given.length === ranges.length && ranges.length > 0;
  const hull = ranges.length > 0 && (span.after === undefined || span.upTo === undefined)
    ? (complete ? { after: Math.min(...ranges.map((r) => r.after)), upTo: Math.max(...ranges.map((r) => r.upTo)) } : {})
    : span;
  return new DataLostError(`revkit server${at}: ${detail}`, {
    store: typeof details.store === 'string' ? clipText(details.store, 200) : (request.server ?? 'revkit server'),
    ...hull,
    ...(typeof details.detectedAt === 'string' ? { detectedAt: clipText(details.detectedAt, 64) } : {}),
    ...(ranges.length > 0 ? { ranges } : {}),
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
