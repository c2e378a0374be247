import { AbortedError, BackendError, ClosedError, RevkitError, TooLargeError, type Capabilities, type ReplicationState } from '../core/index.js';
import { redactUrl } from '../core/redact.js';
import { ServerClock } from './http-store-clock.js';
import { errorFromProblem, safeJson, type ProblemBody } from './problems.js';
import { isConnectionLoss, transportError } from './transport-errors.js';

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** A write: a connection failure after sending may have committed it. */
  write?: boolean;
  key?: string;
  okStatuses?: number[];
  noTimeout?: boolean;
  timeoutMs?: number;
}

/** A response read to its end. */
export interface Reply {
  status: number;
  headers: Headers;
  text: string;
}

/** What GET /v1/info answers. */
export interface ServerInfo {
  backend: string;
  capabilities: Capabilities;
  limits?: { maxBodyBytes?: unknown; maxValueBytes?: unknown; maxJsonDepth?: unknown };
  /** Every value the server refuses can be told from its limits and JSON alone (absent from servers before 2026-12-06). */
  combinableUpdates?: boolean;
  /** The store's replication state (null: a single-server store); absent from servers before issue 25. */
  replication?: ReplicationState | null;
}

export function bodyLimitOf(info: ServerInfo): number | undefined {
  return limitOf(info, 'maxBodyBytes');
}

export function limitOf(info: ServerInfo, name: 'maxBodyBytes' | 'maxValueBytes' | 'maxJsonDepth'): number | undefined {
  const limit = info.limits?.[name];
  return typeof limit === 'number' && Number.isSafeInteger(limit) && limit > 0 ? limit : undefined;
}

export interface TransportOptions {
  /** The server's base URL: origin and path prefix, no trailing slash. */
  base: string;
  /** The Authorization header, when there is a token. */
  authorization: string | undefined;
  /** Per-request timeout in milliseconds. */
  timeoutMs: number;
  /** The server's body limit, when known. */
  maxBodyBytes: number | undefined;
  /** The store's backend name, for ClosedError. */
  backend: string;
  /** Throws ClosedError once the store is closed. */
  assertOpen: () => void;
}

/**
 * An HttpStore's exchanges with its server: one request and its reply, the
 * token, timeouts, the aborts of close(), the server's body limit and clock,
 * and what a failed exchange means as a revkit error.
 */
export class HttpTransport {
  /** The server's URL, secrets redacted: for messages. */
  readonly server: string;
  /** The server's clock, read from its responses: where watches "from now" start. */
  readonly clock = new ServerClock();
  private readonly base: string;
  private readonly authorization: string | undefined;
  private readonly timeoutMs: number;
  /** The server's body limit, once known (given, or learned from GET /v1/info). */
  private maxBodyBytes: number | undefined;
  private readonly backend: string;
  private readonly assertOpen: () => void;
  /** Requests in flight: close() aborts each, so every call settles (ClosedError). */
  private readonly inflight = new Set<AbortController>();

  constructor(options: TransportOptions) {
    this.base = options.base;
    this.server = redactUrl(options.base);
    this.authorization = options.authorization;
    this.timeoutMs = options.timeoutMs;
    this.maxBodyBytes = options.maxBodyBytes;
    this.backend = options.backend;
    this.assertOpen = options.assertOpen;
  }

  /** Settles every request in flight with ClosedError. */
  abortAll(): void {
    for (const request of this.inflight) request.abort(new ClosedError(this.backend));
    this.inflight.clear();
  }

  async requestJson(method: string, path: string, init: RequestOptions = {}): Promise<unknown> {
    const res = await this.request(method, path, init);
    return this.parseReply(res, method, init.write === true);
  }

  /** The JSON of a reply; a body that is not JSON (a proxy's page) is a transient fault, ambiguous for a write. */
  parseReply(res: Reply, method: string, write = false): unknown {
    try {
      return JSON.parse(res.text);
    } catch (cause) {
      throw new BackendError(`the revkit server at ${this.server} answered ${method} with ${res.status} and a body that is not JSON`, { transient: true, ambiguous: write, cause });
    }
  }

  /**
   * One request and its whole reply. Every failure is a RevkitError: the
   * server's problem document as the error it names; a transport failure as a
   * transient BackendError — ambiguous for a write whose request may have
   * reached the server, whether the connection failed before the response or
   * in the middle of it —; a close() meanwhile as ClosedError.
   */
  async request(method: string, path: string, init: RequestOptions = {}): Promise<Reply> {
    this.assertOpen();
    const closer = new AbortController();
    this.inflight.add(closer);
    let reply: Reply;
    try {
      const res = await this.send(method, path, init, closer.signal);
      try {
        reply = { status: res.status, headers: res.headers, text: await res.text() };
      } catch (err) {
        throw await this.failure(err, method, init, res.status, closer.signal);
      }
    } finally {
      this.inflight.delete(closer);
    }
    if ((reply.status >= 200 && reply.status < 300) || init.okStatuses?.includes(reply.status)) return reply;
    throw errorFromProblem(reply.status, safeJson(reply.text) as ProblemBody | undefined, init.key, {
      write: init.write === true, server: this.server, bodyBytes: bodyBytesOf(init), bodyLimit: this.maxBodyBytes,
    });
  }

  /** A streaming response (the watch), its body left to the caller; `init.signal` (aborted by close()) ends it. */
  async openStream(path: string, init: RequestOptions): Promise<Response> {
    this.assertOpen();
    const res = await this.send('GET', path, init, undefined);
    if (res.ok) return res;
    let text = '';
    try {
      text = await res.text();
    } catch (err) {
      throw await this.failure(err, 'GET', init, res.status, undefined);
    }
    throw errorFromProblem(res.status, safeJson(text) as ProblemBody | undefined, init.key, { server: this.server });
  }

  /**
   * Whether the server is ready (GET /readyz answers 200): the background
   * probe of a replica that gave no answer. Never throws.
   */
  async probe(signal: AbortSignal, timeoutMs: number): Promise<boolean> {
    try {
      const res = await fetch(`${this.base}/readyz`, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) });
      await res.body?.cancel().catch(() => undefined);
      if (res.ok) this.clock.observe(res.headers.get('revkit-clock'), performance.now());
      return res.ok;
    } catch {
      return false;
    }
  }

  /** A write whose body is larger than the server's known limit fails here, as the server would answer it. */
  checkBodySize(bytes: number): void {
    if (this.maxBodyBytes !== undefined && bytes > this.maxBodyBytes) throw new TooLargeError('the request body', bytes, this.maxBodyBytes);
  }

  /** fetch(), its failures translated; resolves once the status line and headers arrived. */
  private async send(method: string, path: string, init: RequestOptions, closer: AbortSignal | undefined): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.authorization) headers.authorization = this.authorization;
    const signals: AbortSignal[] = [];
    if (closer) signals.push(closer);
    if (init.signal) signals.push(init.signal);
    if (!init.noTimeout) signals.push(AbortSignal.timeout(init.timeoutMs ?? this.timeoutMs));
    try {
      const res = await fetch(this.base + path, {
        method,
        headers,
        ...(init.body !== undefined ? { body: init.body } : {}),
        ...(signals.length > 0 ? { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) } : {}),
      });
      this.clock.observe(res.headers.get('revkit-clock'), performance.now());
      return res;
    } catch (err) {
      throw await this.failure(err, method, init, undefined, closer);
    }
  }

  /**
   * What a failed exchange means. `status` is that of a response whose body
   * was cut (undefined: no response arrived). A connection that failed while a
   * body over the server's limit was being sent is the server refusing it (it
   * may answer 413 early and close): TooLargeError, as its answer would say.
   */
  private async failure(err: unknown, method: string, init: RequestOptions, status: number | undefined, closer: AbortSignal | undefined): Promise<RevkitError> {
    // fetch rejects with the abort's reason: close() and the caller's signal are told apart by their signals.
    if (closer?.aborted) return new ClosedError(this.backend, { ambiguous: init.write === true, cause: err });
    if (init.signal?.aborted) return new AbortedError(init.signal.reason);
    if (RevkitError.is(err)) return err;
    if (status === undefined && init.body !== undefined && isConnectionLoss(err)) {
      const refusal = await this.bodyRefusal(bodyBytesOf(init) ?? 0).catch(() => undefined);
      if (refusal) return refusal;
    }
    return transportError(this.server, err, method, init.write === true, status);
  }

  /** TooLargeError when `bytes` is over the server's body limit (asked of the server when not yet known). */
  private async bodyRefusal(bytes: number): Promise<TooLargeError | undefined> {
    if (this.maxBodyBytes === undefined) {
      const info = (await this.requestJson('GET', '/v1/info', { timeoutMs: Math.min(this.timeoutMs, 5_000) })) as ServerInfo;
      const limit = bodyLimitOf(info);
      if (limit !== undefined) this.maxBodyBytes = limit;
    }
    return this.maxBodyBytes !== undefined && bytes > this.maxBodyBytes ? new TooLargeError('the request body', bytes, this.maxBodyBytes) : undefined;
  }
}

function bodyBytesOf(init: RequestOptions): number | undefined {
  return init.body === undefined ? undefined : Buffer.byteLength(init.body);
}
