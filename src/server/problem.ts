import {
  BackendError, ConflictError, DataLostError, HistoryGoneError, InvalidKeyError, OutcomeUnknownError, RetryExhaustedError, RevkitError, TooLargeError,
  UnsupportedError, ValidationError, clipText, lossIn, toHttpStatus,
} from '../core/index.js';
import { etagOf } from './etag.js';

/**
 * RFC 9457 problem details. Every error response of the server is one of
 * these, with `code` from docs/semantics.md, "Errors", for revkit errors and one of the codes
 * below for errors of the HTTP layer.
 */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  [extension: string]: unknown;
}

/** Codes of errors that belong to HTTP rather than to the store. */
export const HTTP_ERROR_CODES = {
  400: 'ERR_BAD_REQUEST',
  401: 'ERR_UNAUTHORIZED',
  403: 'ERR_FORBIDDEN',
  404: 'ERR_NOT_FOUND',
  405: 'ERR_METHOD_NOT_ALLOWED',
  408: 'ERR_REQUEST_TIMEOUT',
  413: 'ERR_PAYLOAD_TOO_LARGE',
  414: 'ERR_URI_TOO_LONG',
  415: 'ERR_UNSUPPORTED_MEDIA_TYPE',
  421: 'ERR_MISDIRECTED_REQUEST',
  428: 'ERR_PRECONDITION_REQUIRED',
  431: 'ERR_HEADERS_TOO_LARGE',
  500: 'ERR_INTERNAL',
  503: 'ERR_UNAVAILABLE',
} as const satisfies Record<number, string>;

export type HttpErrorCode = (typeof HTTP_ERROR_CODES)[keyof typeof HTTP_ERROR_CODES];

const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  406: 'Not Acceptable', 408: 'Request Timeout', 409: 'Conflict', 410: 'Gone', 411: 'Length Required',
  412: 'Precondition Failed', 413: 'Content Too Large', 414: 'URI Too Long', 415: 'Unsupported Media Type',
  421: 'Misdirected Request',  422: 'Unprocessable Content', 428: 'Precondition Required', 431: 'Request Header Fields Too Large',
  499: 'Client Closed Request', 500: 'Internal Server Error', 501: 'Not Implemented', 503: 'Service Unavailable',
};

export const PROBLEM_TYPE_BASE = 'urn:revkit:problem:';

/** An error raised by the HTTP layer itself; becomes a problem body as it is. */
export class HttpProblem extends Error {
  readonly status: number;
  readonly code: string;
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(status: keyof typeof HTTP_ERROR_CODES, detail: string, extensions: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
    super(detail);
    this.status = status;
    this.code = HTTP_ERROR_CODES[status];
    this.extensions = extensions;
    this.headers = headers;
  }
}

export function problem(status: number, code: string, detail: string, extensions: Record<string, unknown> = {}): Problem {
  return { ...extensions, type: PROBLEM_TYPE_BASE + code, title: TITLES[status] ?? 'Error', status, detail, code };
}

export interface ProblemContext {
  /** POST /v1/txn reports conflicts as 409: its checks are in the body, not in HTTP preconditions. */
  conflictStatus?: 409 | 412;
}

/** Turns anything thrown while serving a request into a problem and response headers. */
export function toProblem(err: unknown, ctx: ProblemContext = {}): { problem: Problem; headers: Record<string, string>; internal: boolean } {
  if (err instanceof HttpProblem) {
    return { problem: problem(err.status, err.code, err.message, err.extensions), headers: err.headers, internal: false };
  }
  if (RevkitError.is(err)) return { ...fromRevkitError(err, ctx), internal: false };
  // Errors of fastify and its content-type parsers carry a 4xx statusCode.
  const statusCode = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    const status = statusCode in HTTP_ERROR_CODES ? statusCode : 400;
    const code = HTTP_ERROR_CODES[status as keyof typeof HTTP_ERROR_CODES];
    return { problem: problem(status, code, frameworkDetail(err as Error, status)), headers: {}, internal: false };
  }
  return { problem: problem(500, 'ERR_INTERNAL', 'the server failed to handle this request; it has been logged'), headers: {}, internal: true };
}

function frameworkDetail(err: Error, status: number): string {
  const fcode = (err as { code?: unknown }).code;
  if (status === 413) return 'the request body is larger than the server accepts';
  if (status === 415) return 'unsupported Content-Type: send application/json (application/merge-patch+json for PATCH)';
  if (fcode === 'FST_ERR_BAD_URL') return 'the URL is not validly percent-encoded';
  if (fcode === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') return 'the Content-Length does not match the body';
  // fastify's own messages are short and free of internals.
  return typeof err.message === 'string' && err.message.length < 300 ? err.message : TITLES[status] ?? 'Bad Request';
}

function fromRevkitError(err: RevkitError, ctx: ProblemContext): { problem: Problem; headers: Record<string, string> } {
  let status = toHttpStatus(err);
  if (status === 499) status = 503; // only the server's own shutdown aborts a request
  const ext: Record<string, unknown> = {};
  const headers: Record<string, string> = {};
  let detail = err.message;
  if (ConflictError.is(err)) {
    status = ctx.conflictStatus ?? 412;
    ext.key = err.key;
    ext.expected = err.expected;
    ext.actual = err.actual;
    ext.currentEtag = err.actual === null ? null : etagOf(err.actual);
    ext.checks = err.checks.map((c) => ({ ...c, currentEtag: c.actual === null ? null : etagOf(c.actual) }));
    if (err.actual !== null && status === 412) headers.etag = etagOf(err.actual);
  } else if (ValidationError.is(err)) {
    ext.issues = err.issues.map((i) => ({
      message: i.message,
      ...(i.path ? { path: i.path.map((p) => String(typeof p === 'object' && p !== null ? (p as { key: PropertyKey }).key : p)) } : {}),
    }));
    if (err.key !== undefined) ext.key = err.key;
  } else if (TooLargeError.is(err)) {
    ext.limit = err.limit;
    ext.size = err.size;
  } else if (InvalidKeyError.is(err)) {
    ext.limit = err.limit;
  } else if (HistoryGoneError.is(err)) {
    ext.oldestRevision = err.oldestRevision;
    ext.fromRevision = err.fromRevision;
  } else if (RetryExhaustedError.is(err)) {
    ext.key = err.key;
    ext.attempts = err.attempts;
    ext.reason = err.reason;
    const last = err.lastError as { code?: unknown } | undefined;
    if (typeof last?.code === 'string') ext.lastErrorCode = last.code;
    if (status === 503) headers['retry-after'] = '1';
  } else if (UnsupportedError.is(err)) {
    ext.operation = err.operation;
    ext.backend = err.backend;
  } else if (OutcomeUnknownError.is(err)) {
    ext.key = err.key;
    // The loss may be this client's only report of it (the store tells a process once): pass it on.
    const loss = lossIn(err.cause);
    if (loss) ext.dataLost = { detail: loss.message, details: loss.details };
  } else if (DataLostError.is(err)) {
    // Not transient: it lasts until an operator accepts the loss. No ambiguity about this request: nothing was done.
    ext.details = err.details;
    ext.transient = false;
    ext.ambiguous = false;
  } else if (BackendError.is(err)) {
    // `ambiguous`: the write may have committed; a client must not simply apply it again.
    ext.transient = err.transient;
    ext.ambiguous = err.ambiguous;
    // The driver's message may name hosts or SQL; keep it out of the response.
    detail = err.ambiguous ? 'the store did not confirm the write; it may have committed'
      : err.transient ? 'the store is unavailable; try again' : 'the store failed';
    if (err.transient) headers['retry-after'] = '1';
  }
  // A message can carry what callers sent (keys, values' issues): bounded as a client bounds it (http/problems.ts).
  return { problem: problem(status, err.code, clipText(detail, MAX_DETAIL), ext), headers };
}

/** The longest `detail` the server sends; clients bound what they read to the same. */
const MAX_DETAIL = 2_000;
