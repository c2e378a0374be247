/**
 * Every error revkit throws is a RevkitError with a stable string `code`.
 * `is()` checks the code, not the prototype chain, so it keeps working when
 * two copies of revkit end up in one bundle.
 */
export type RevkitErrorCode =
  | 'ERR_CONFLICT'
  | 'ERR_VALIDATION'
  | 'ERR_RETRY_EXHAUSTED'
  | 'ERR_UNSUPPORTED'
  | 'ERR_TOO_LARGE'
  | 'ERR_INVALID_KEY'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_BACKEND'
  | 'ERR_HISTORY_GONE'
  | 'ERR_FENCED'
  | 'ERR_OUT_OF_ORDER'
  | 'ERR_SEQUENCE_REUSED'
  | 'ERR_ABORTED'
  | 'ERR_CLOSED'
  | 'ERR_OUTCOME_UNKNOWN'
  | 'ERR_UNAUTHORIZED'
  | 'ERR_FORBIDDEN'
  | 'ERR_LOCK_LOST'
  | 'ERR_LOCK_TIMEOUT'
  | 'ERR_DATA_LOST';

export class RevkitError extends Error {
  static readonly code: RevkitErrorCode | undefined = undefined;
  readonly code: RevkitErrorCode;

  constructor(code: RevkitErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  /** True when `err` is a revkit error of this class's code (any code for RevkitError itself). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  static is<R extends RevkitError>(this: (abstract new (...args: any[]) => R) & { readonly code: RevkitErrorCode | undefined }, err: unknown): err is R {
    if (typeof err !== 'object' || err === null) return false;
    const code = (err as { code?: unknown }).code;
    if (this.code === undefined) return typeof code === 'string' && Object.hasOwn(httpStatusByCode, code);
    return code === this.code;
  }
}

export interface FailedCheck {
  key: string;
  expected: number | null | 'absent' | 'value';
  /** Current revision of the key, live or tombstone; null when never written. */
  actual: number | null;
}

export class ConflictError extends RevkitError {
  static override readonly code = 'ERR_CONFLICT' as const;
  readonly key: string;
  readonly expected: FailedCheck['expected'];
  readonly actual: number | null;
  /** Every failed check of an atomic commit; one record for a single-key write. */
  readonly checks: FailedCheck[];
  readonly current?: unknown;
  /**
   * A multi-key atomic commit failed (HTTP 409, as `POST /v1/txn` answers),
   * rather than a single-key precondition (HTTP 412). Set by whoever runs the
   * commit, since the checks alone cannot tell the two apart.
   */
  readonly atomic: boolean;

  constructor(checks: FailedCheck[], current?: unknown, options?: { atomic?: boolean }) {
    const first = checks[0] ?? { key: '', expected: null, actual: null };
    const what =
      checks.length === 1
        ? `conflict on ${JSON.stringify(first.key)}: expected ${describeExpected(first.expected)}, found ${first.actual === null ? 'nothing' : `revision ${first.actual}`}`
        : `conflict on ${checks.length} keys: ${checks.slice(0, NAMED_KEYS).map((c) => JSON.stringify(c.key)).join(', ')}${checks.length > NAMED_KEYS ? `, and ${checks.length - NAMED_KEYS} more (err.checks)` : ''}`;
    super('ERR_CONFLICT', what);
    this.key = first.key;
    this.expected = first.expected;
    this.actual = first.actual;
    this.checks = checks;
    this.atomic = options?.atomic === true;
    if (current !== undefined) this.current = current;
  }

  /** The same conflict, marked as the failure of an atomic commit. */
  static ofAtomicCommit(err: ConflictError): ConflictError {
    if (err.atomic) return err;
    const marked = new ConflictError(err.checks, err.current, { atomic: true });
    marked.stack = err.stack;
    return marked;
  }
}

/** A conflict's message names this many keys at most; `checks` has them all. */
const NAMED_KEYS = 10;

/**
 * `text` cut to at most `max` UTF-16 code units, never between the two halves
 * of a surrogate pair, with `…` when cut: for messages built from what
 * another party sent (a server's problem, a store's words).
 */
export function clipText(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = Math.max(0, max - 1);
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}

function describeExpected(expected: FailedCheck['expected']): string {
  if (expected === null || expected === 'absent') return 'no live value';
  if (expected === 'value') return 'the given value';
  return `revision ${expected}`;
}

export interface ValidationIssue {
  message: string;
  path?: ReadonlyArray<PropertyKey | { key: PropertyKey }>;
}

export class ValidationError extends RevkitError {
  static override readonly code = 'ERR_VALIDATION' as const;
  readonly issues: ValidationIssue[];
  readonly key?: string;
  constructor(issues: ValidationIssue[], key?: string) {
    super('ERR_VALIDATION', `invalid value${key === undefined ? '' : ` for ${JSON.stringify(key)}`}: ${issues.map((i) => i.message).join('; ')}`);
    this.issues = issues;
    if (key !== undefined) this.key = key;
  }
}

export class RetryExhaustedError extends RevkitError {
  static override readonly code = 'ERR_RETRY_EXHAUSTED' as const;
  readonly key: string;
  readonly attempts: number;
  readonly lastError: unknown;
  /** Why the loop stopped: attempts used up, deadline passed, or signal aborted. */
  readonly reason: 'attempts' | 'deadline' | 'aborted';
  constructor(key: string, attempts: number, lastError: unknown, reason: 'attempts' | 'deadline' | 'aborted') {
    super('ERR_RETRY_EXHAUSTED', `update of ${JSON.stringify(key)} gave up after ${attempts} attempt(s) (${reason})`, { cause: lastError });
    this.key = key;
    this.attempts = attempts;
    this.lastError = lastError;
    this.reason = reason;
  }
}

export class UnsupportedError extends RevkitError {
  static override readonly code = 'ERR_UNSUPPORTED' as const;
  readonly operation: string;
  readonly backend: string;
  constructor(operation: string, backend: string, why?: string) {
    super('ERR_UNSUPPORTED', `${operation} is not supported by the ${backend} backend${why ? `: ${why}` : ''}`);
    this.operation = operation;
    this.backend = backend;
  }
}

export class TooLargeError extends RevkitError {
  static override readonly code = 'ERR_TOO_LARGE' as const;
  readonly limit: number;
  readonly size: number;
  constructor(what: string, size: number, limit: number) {
    super('ERR_TOO_LARGE', `${what} is ${size} bytes, over the limit of ${limit}`);
    this.limit = limit;
    this.size = size;
  }
}

export class InvalidKeyError extends RevkitError {
  static override readonly code = 'ERR_INVALID_KEY' as const;
  readonly limit: number;
  constructor(message: string, limit: number) {
    super('ERR_INVALID_KEY', message);
    this.limit = limit;
  }
}

/** A call's arguments are wrong (two conditions at once, a bad option, an unknown URL scheme). */
export class InvalidArgumentError extends RevkitError {
  static override readonly code = 'ERR_INVALID_ARGUMENT' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_INVALID_ARGUMENT', message, options);
  }
}

export class BackendError extends RevkitError {
  static override readonly code = 'ERR_BACKEND' as const;
  /** Worth retrying: the store was unreachable or busy, not wrong. */
  readonly transient: boolean;
  /** The write may or may not have committed (its acknowledgement was lost). */
  readonly ambiguous: boolean;
  constructor(message: string, options: { transient: boolean; ambiguous?: boolean; cause?: unknown }) {
    super('ERR_BACKEND', message, { cause: options.cause });
    this.transient = options.transient;
    this.ambiguous = options.ambiguous ?? false;
  }
}

/**
 * A write whose acknowledgement was lost, and whose commit can no longer be
 * confirmed or ruled out (history does not reach back to it). Never retried:
 * applying the mutation again could apply it twice.
 */
export class OutcomeUnknownError extends RevkitError {
  static override readonly code = 'ERR_OUTCOME_UNKNOWN' as const;
  readonly key: string;
  constructor(key: string, message?: string, options?: { cause?: unknown }) {
    super('ERR_OUTCOME_UNKNOWN', message ?? `the write to ${JSON.stringify(key)} may or may not have committed; its outcome cannot be established`, options);
    this.key = key;
  }
}

/** No credentials, or credentials the server does not know. */
export class UnauthorizedError extends RevkitError {
  static override readonly code = 'ERR_UNAUTHORIZED' as const;
  constructor(message = 'not authenticated: give a valid bearer token', options?: { cause?: unknown }) {
    super('ERR_UNAUTHORIZED', message, options);
  }
}

/** Known credentials without the scope the operation needs. */
export class ForbiddenError extends RevkitError {
  static override readonly code = 'ERR_FORBIDDEN' as const;
  /** The scope needed, e.g. `write` on `cfg/`. */
  readonly scope?: string;
  constructor(message = 'forbidden: the token lacks the scope this operation needs', scope?: string, options?: { cause?: unknown }) {
    super('ERR_FORBIDDEN', message, options);
    if (scope !== undefined) this.scope = scope;
  }
}

export class HistoryGoneError extends RevkitError {
  static override readonly code = 'ERR_HISTORY_GONE' as const;
  readonly oldestRevision: number;
  readonly fromRevision: number;
  constructor(fromRevision: number, oldestRevision: number) {
    super('ERR_HISTORY_GONE', `changes after revision ${fromRevision} are no longer kept; the oldest kept revision is ${oldestRevision}`);
    this.fromRevision = fromRevision;
    this.oldestRevision = oldestRevision;
  }
}

export class AbortedError extends RevkitError {
  static override readonly code = 'ERR_ABORTED' as const;
  constructor(reason?: unknown) {
    super('ERR_ABORTED', 'the operation was aborted', { cause: reason });
  }
}

export class ClosedError extends RevkitError {
  static override readonly code = 'ERR_CLOSED' as const;
  /** A write that close() cut while it was on its way: it may have committed. */
  readonly ambiguous: boolean;
  constructor(backend: string, options: { ambiguous?: boolean; cause?: unknown } = {}) {
    super('ERR_CLOSED', options.ambiguous === true ? `the ${backend} store was closed while a write was on its way; it may have committed` : `the ${backend} store is closed`, options.cause === undefined ? undefined : { cause: options.cause });
    this.ambiguous = options.ambiguous === true;
  }
}

/** May the failed write have committed? (A lost acknowledgement, or a write cut by close().) */
export function isAmbiguous(err: unknown): boolean {
  return (BackendError.is(err) || ClosedError.is(err)) && (err as { ambiguous: boolean }).ambiguous === true;
}

const httpStatusByCode: Record<RevkitErrorCode, number> = {
  ERR_CONFLICT: 412,
  ERR_VALIDATION: 422,
  ERR_RETRY_EXHAUSTED: 409,
  ERR_UNSUPPORTED: 501,
  ERR_TOO_LARGE: 413,
  ERR_INVALID_KEY: 400,
  ERR_INVALID_ARGUMENT: 400,
  ERR_BACKEND: 503,
  ERR_HISTORY_GONE: 410,
  ERR_FENCED: 409,
  ERR_OUT_OF_ORDER: 409,
  ERR_SEQUENCE_REUSED: 409,
  ERR_ABORTED: 499,
  ERR_CLOSED: 503,
  ERR_OUTCOME_UNKNOWN: 503,
  ERR_UNAUTHORIZED: 401,
  ERR_FORBIDDEN: 403,
  ERR_LOCK_LOST: 409,
  ERR_LOCK_TIMEOUT: 409,
  ERR_DATA_LOST: 503,
};

export type GrpcStatus =
  | 'OK' | 'CANCELLED' | 'UNKNOWN' | 'INVALID_ARGUMENT' | 'DEADLINE_EXCEEDED' | 'NOT_FOUND'
  | 'ALREADY_EXISTS' | 'PERMISSION_DENIED' | 'RESOURCE_EXHAUSTED' | 'FAILED_PRECONDITION'
  | 'ABORTED' | 'OUT_OF_RANGE' | 'UNIMPLEMENTED' | 'INTERNAL' | 'UNAVAILABLE' | 'DATA_LOSS' | 'UNAUTHENTICATED';

const grpcStatusByCode: Record<RevkitErrorCode, GrpcStatus> = {
  ERR_CONFLICT: 'ABORTED',
  ERR_VALIDATION: 'INVALID_ARGUMENT',
  ERR_RETRY_EXHAUSTED: 'ABORTED',
  ERR_UNSUPPORTED: 'UNIMPLEMENTED',
  ERR_TOO_LARGE: 'INVALID_ARGUMENT',
  ERR_INVALID_KEY: 'INVALID_ARGUMENT',
  ERR_INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  ERR_BACKEND: 'UNAVAILABLE',
  ERR_HISTORY_GONE: 'OUT_OF_RANGE',
  ERR_FENCED: 'FAILED_PRECONDITION',
  ERR_OUT_OF_ORDER: 'FAILED_PRECONDITION',
  ERR_SEQUENCE_REUSED: 'FAILED_PRECONDITION',
  ERR_ABORTED: 'CANCELLED',
  ERR_CLOSED: 'UNAVAILABLE',
  ERR_OUTCOME_UNKNOWN: 'UNKNOWN',
  ERR_UNAUTHORIZED: 'UNAUTHENTICATED',
  ERR_FORBIDDEN: 'PERMISSION_DENIED',
  ERR_LOCK_LOST: 'FAILED_PRECONDITION',
  ERR_LOCK_TIMEOUT: 'DEADLINE_EXCEEDED',
  ERR_DATA_LOST: 'DATA_LOSS',
};

/**
 * HTTP status for an error. A failed single-key precondition is a 412, a
 * failed atomic commit (`atomic: true`) a 409. A retry loop that ran out
 * because the store was unavailable is a 503; one that ran out on conflicts
 * is a 409.
 */
export function toHttpStatus(err: unknown): number {
  if (!RevkitError.is(err)) return 500;
  if (ConflictError.is(err) && (err as { atomic?: unknown }).atomic === true) return 409;
  if (RetryExhaustedError.is(err) && BackendError.is(err.lastError)) return 503;
  return httpStatusByCode[err.code] ?? 500;
}

export function toGrpcStatus(err: unknown): GrpcStatus {
  if (!RevkitError.is(err)) return 'UNKNOWN';
  if (RetryExhaustedError.is(err) && err.reason === 'deadline') return 'DEADLINE_EXCEEDED';
  return grpcStatusByCode[err.code] ?? 'UNKNOWN';
}
