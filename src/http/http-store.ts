import {
  AbortedError, AsyncQueue, BackendError, BaseStore, ClosedError, ConflictError, ForbiddenError, HistoryGoneError, InvalidArgumentError, InvalidKeyError,
  MAX_KEY_BYTES, OutcomeUnknownError, RetryExhaustedError, UnauthorizedError, RevkitError, TooLargeError, UnsupportedError, ValidationError, deepEqual, isTombstone, jsonCodec,
  type AtomicOp, type Capabilities, type DeleteOptions, type Entry, type FailedCheck, type HistoryOptions, type ListOptions, type ListPage,
  type PutOptions, type StoredRecord, type Tombstone, type WatchEvent, type WatchOptions,
} from '../core/index.js';
import { assertKnownUrlOptions, redactUrl, withoutUrlInput } from '../core/redact.js';
import { ServerClock } from './http-store-clock.js';
import { SseParser } from './sse-parser.js';

export interface HttpStoreOptions {
  /** Base URL of a revkit server, e.g. http://127.0.0.1:8787 (a path prefix is kept). */
  url: string;
  /** Bearer token. */
  token?: string;
  /** What the remote store does; `fromUrl` asks the server (GET /v1/info). */
  capabilities?: Capabilities;
  /** Remote backend name, for messages. */
  remoteBackend?: string;
  /** Per-request timeout in milliseconds (default 30 s; watch streams have none). */
  timeoutMs?: number;
  /**
   * The server's largest request body in bytes (its `limits.maxBodyBytes`), when known;
   * `fromUrl` asks the server. A write whose body is larger fails with `TooLargeError`
   * before it is sent, as the server would answer it.
   */
  maxBodyBytes?: number;
}

const DEFAULT_CAPABILITIES: Capabilities = { atomic: true, ttl: true, history: true, watch: true, crossProcess: true, durability: 'server-default' };
const IF_VALUE_ATTEMPTS = 64;
/** `<revision>.<index>` of an event, or a bare revision (the start of a stream). */
const EVENT_ID = /^\d+(\.\d+)?$/;

interface ProblemBody {
  code?: string;
  detail?: string;
  [k: string]: unknown;
}

/**
 * A Store that talks to a revkit server over HTTP (docs/semantics.md, "HTTP server"). Conditions
 * become If-Match / If-None-Match, `atomic()` is POST /v1/txn, watch is the
 * SSE stream (resumed with Last-Event-ID after a dropped connection), and
 * `update()` is BaseStore's loop of GET + PUT If-Match. Errors come back as
 * the revkit errors the server's problem bodies name.
 */
export class HttpStore extends BaseStore {
  readonly backend = 'http';
  readonly capabilities: Capabilities;
  readonly remoteBackend: string;
  private readonly base: string;
  private readonly authorization: string | undefined;
  private readonly timeoutMs: number;
  /** The server's body limit, once known (given, or learned from GET /v1/info). */
  private maxBodyBytes: number | undefined;
  /** Running watches: close() ends each, so a pending next() settles. */
  private readonly watches = new Set<{ end(): void }>();
  /** The server's clock, read from its responses: where watches "from now" start. */
  private readonly clock = new ServerClock();
  /** Requests in flight: close() aborts each, so every call settles (ClosedError). */
  private readonly inflight = new Set<AbortController>();

  constructor(options: HttpStoreOptions) {
    super();
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch (cause) {
      throw new InvalidArgumentError(`malformed server URL ${JSON.stringify(redactUrl(options.url))}`, { cause: withoutUrlInput(cause) });
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new InvalidArgumentError(`a server URL must be http: or https:, got ${parsed.protocol}`);
    this.base = `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
    this.authorization = options.token ? `Bearer ${options.token}` : undefined;
    this.capabilities = { ...(options.capabilities ?? DEFAULT_CAPABILITIES), crossProcess: true };
    this.remoteBackend = options.remoteBackend ?? 'unknown';
    this.timeoutMs = options.timeoutMs ?? 30_000;
    if (options.maxBodyBytes !== undefined) this.maxBodyBytes = options.maxBodyBytes;
  }

  /**
   * `http://host:port[/base]?token=T` → a store connected to that server. Asks
   * GET /v1/info once, which checks the URL and the token and learns the
   * remote store's capabilities.
   */
  static async fromUrl(url: string, options: Omit<HttpStoreOptions, 'url'> = {}): Promise<HttpStore> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (cause) {
      throw new InvalidArgumentError(`malformed server URL ${JSON.stringify(redactUrl(url))}`, { cause: withoutUrlInput(cause) });
    }
    // The server's base URL takes no query: a token is the only option (any other is refused, never dropped unread).
    assertKnownUrlOptions(url, 'server', parsed.searchParams.keys(), ['token']);
    const token = parsed.searchParams.get('token') ?? options.token;
    parsed.searchParams.delete('token');
    parsed.search = '';
    const probe = new HttpStore({ ...options, url: parsed.href, ...(token ? { token } : {}) });
    let info: ServerInfo;
    try {
      info = (await probe.requestJson('GET', '/v1/info')) as ServerInfo;
    } finally {
      await probe.close();
    }
    const maxBodyBytes = options.maxBodyBytes ?? bodyLimitOf(info);
    return new HttpStore({
      ...options, url: parsed.href, ...(token ? { token } : {}), capabilities: info.capabilities, remoteBackend: info.backend,
      ...(maxBodyBytes !== undefined ? { maxBodyBytes } : {}),
    });
  }

  async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.assertOpen();
    const res = await this.request('GET', keyPath(key), { okStatuses: [200, 404] });
    if (res.status === 404) {
      const body = (this.parseReply(res, 'GET') ?? {}) as ProblemBody;
      if (body.deleted === true && typeof body.revision === 'number') {
        const t: Tombstone = { key, revision: body.revision, deleted: true };
        if (typeof body.writer === 'string') t.writer = body.writer;
        if (typeof body.updatedAt === 'number') t.updatedAt = body.updatedAt;
        return t;
      }
      return null;
    }
    const value = this.parseReply(res, 'GET') as T;
    const entry: Entry<T> = {
      key,
      value,
      revision: revisionOf(res.headers.get('etag')),
      createdRevision: Number(res.headers.get('revkit-created-revision')),
      updatedAt: Number(res.headers.get('revkit-updated-at')),
    };
    const expires = res.headers.get('revkit-expires-at');
    if (expires !== null) entry.expiresAt = Number(expires);
    const writer = res.headers.get('revkit-writer');
    if (writer !== null) entry.writer = writer;
    return entry;
  }

  protected async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    const bytes = jsonCodec.encode(value); // ValidationError for undefined, functions…
    const body = new TextDecoder().decode(bytes);
    this.checkBodySize(bytes.byteLength);
    if (options.ifValue !== undefined) {
      return this.withValueCondition(key, options.ifValue, (revision) => this.doPut(key, value, { ...options, ifValue: undefined, ifRevision: revision }));
    }
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    addCondition(headers, options);
    if (options.writer !== undefined) headers['revkit-writer'] = options.writer;
    const query: Record<string, string> = options.ttlMs !== undefined ? { ttlMs: String(options.ttlMs) } : {};
    const meta = (await this.requestJson('PUT', keyPath(key, '', query), { headers, body, write: true, key })) as Omit<Entry<T>, 'value'>;
    const entry: Entry<T> = { ...meta, key, value: JSON.parse(body) as T };
    return entry;
  }

  protected async doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    if (options.ifValue !== undefined) {
      return this.withValueCondition(key, options.ifValue, (revision) => this.doDelete(key, { ...options, ifValue: undefined, ifRevision: revision }));
    }
    const headers: Record<string, string> = {};
    addCondition(headers, options);
    if (options.writer !== undefined) headers['revkit-writer'] = options.writer;
    const res = await this.request('DELETE', keyPath(key), { headers, write: true, key, okStatuses: [200, 404] });
    if (res.status === 404) return null;
    return (this.parseReply(res, 'DELETE', true) as { revision: number }).revision;
  }

  /**
   * `ifValue` over HTTP: read, compare, write guarded by the revision read;
   * a conflict on that revision means the value may have changed, so re-read.
   * Equivalent to the store's own check: the write lands only on a revision
   * whose value deep-equals `expected`.
   */
  private async withValueCondition<R>(key: string, expected: unknown, write: (revision: number) => Promise<R>): Promise<R> {
    let last: unknown;
    for (let attempt = 0; attempt < IF_VALUE_ATTEMPTS; attempt++) {
      const current = await this.getRecord(key);
      if (current === null || isTombstone(current) || !deepEqual(current.value, expected)) {
        throw new ConflictError([{ key, expected: 'value', actual: current?.revision ?? null }]);
      }
      try {
        return await write(current.revision);
      } catch (err) {
        if (!ConflictError.is(err)) throw err;
        last = err;
      }
    }
    throw last;
  }

  protected override async commitAtomic(ops: AtomicOp[]): Promise<{ revision: number }> {
    // What JSON cannot carry (NaN, cycles, big integers' neighbours…) is refused here as put() refuses it, not sent as null.
    for (const op of ops) if (op.type === 'set') jsonCodec.encode(op.value);
    const body = JSON.stringify({
      ops: ops.map((op) => (op.type === 'set' ? { op: 'set', key: op.key, value: op.value, ...(op.ttlMs !== undefined ? { ttlMs: op.ttlMs } : {}) } : { op: op.type, key: op.key, ...(op.type === 'check' ? { revision: op.revision } : {}) })),
    });
    this.checkBodySize(Buffer.byteLength(body));
    return (await this.requestJson('POST', '/v1/txn', { headers: { 'content-type': 'application/json' }, body, write: true })) as { revision: number };
  }

  async list<T = unknown>(options: ListOptions = {}): Promise<ListPage<T>> {
    this.assertOpen();
    const q = new URLSearchParams();
    if (options.prefix !== undefined) q.set('prefix', options.prefix);
    if (options.after !== undefined) q.set('after', options.after);
    if (options.limit !== undefined) {
      if (typeof options.limit !== 'number' || !Number.isSafeInteger(options.limit) || options.limit <= 0) {
        throw new InvalidArgumentError(`limit must be a positive integer, got ${String(options.limit)}`);
      }
      q.set('limit', String(options.limit));
    }
    const qs = q.toString();
    const page = (await this.requestJson('GET', `/v1/kv${qs ? `?${qs}` : ''}`)) as ListPage<T>;
    return page.cursor === undefined ? { entries: page.entries } : page;
  }

  async history<T = unknown>(key: string, options: HistoryOptions = {}): Promise<StoredRecord<T>[]> {
    this.assertOpen();
    if (options.limit !== undefined && (!Number.isSafeInteger(options.limit) || options.limit <= 0)) {
      throw new InvalidArgumentError(`limit must be a positive integer, got ${String(options.limit)}`);
    }
    const query: Record<string, string> = options.limit !== undefined ? { limit: String(options.limit) } : {};
    // The last slash of the key is encoded, so `…/history` is always the history route.
    const body = (await this.requestJson('GET', keyPath(key, '/history', query), { key })) as { records: StoredRecord<T>[] };
    return body.records;
  }

  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    this.assertOpen();
    const queue = new AsyncQueue<WatchEvent<T>>(options.signal);
    const controller = new AbortController();
    queue.onClose(() => controller.abort());
    this.watches.add(queue);
    queue.onClose(() => this.watches.delete(queue));
    void this.runWatch(options, queue, controller.signal, performance.now());
    return queue;
  }

  /**
   * `calledAt`: when watch() was called. A watch "from now" asks the server
   * to start from what had committed by then on its clock (ServerClock): its
   * request reaches the server later, and a write made meanwhile, by any
   * process, is still delivered — a write made up to ~250 ms (plus the
   * network's delay) before watch() may be too. Until the stream announced
   * its start, a reconnect asks for the same moment again.
   */
  private async runWatch<T>(options: WatchOptions, queue: AsyncQueue<WatchEvent<T>>, signal: AbortSignal, calledAt: number): Promise<void> {
    const q = new URLSearchParams();
    if (options.key !== undefined) q.set('key', options.key);
    else q.set('prefix', options.prefix ?? '');
    if (options.fromRevision !== undefined) q.set('fromRevision', String(options.fromRevision));
    // Resume point: the id of the last event that arrived (`<revision>.<index>`), or the starting revision.
    let lastId: string | undefined = options.fromRevision === undefined ? undefined : String(options.fromRevision);
    let failures = 0;
    while (!signal.aborted && !queue.closed) {
      try {
        const headers: Record<string, string> = { accept: 'text/event-stream' };
        if (lastId !== undefined) headers['last-event-id'] = lastId;
        else if (options.fromRevision === undefined) {
          let since = this.clock.since(calledAt);
          if (since === undefined) {
            await this.request('GET', '/healthz', { signal });
            since = this.clock.since(calledAt);
          }
          if (since !== undefined) q.set('since', since); // undefined: a server that sends no clock (an older revkit)
        }
        const res = await this.openStream(`/v1/watch?${q.toString()}`, { headers, signal, noTimeout: true });
        failures = 0;
        if (!res.body) throw new BackendError(`the revkit server at ${redactUrl(this.base)} sent a watch stream without a body`, { transient: true });
        try {
          // An event cut in the middle (a dropped connection) is never yielded: the parser yields complete events only,
          // and the stream resumes after the last one that arrived.
          // Every complete block with an id moves the resume point: an event, the start of the stream (an id with no data)
          // and `overflow` (we fell behind; the stream ends).
          const parser = new SseParser((id) => {
            if (EVENT_ID.test(id)) lastId = id;
          });
          const decoder = new TextDecoder();
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            for (const msg of parser.feed(decoder.decode(chunk, { stream: true }))) {
              if (msg.event === 'error') {
                queue.fail(errorFromProblem(503, safeJson(msg.data) as ProblemBody));
                return;
              }
              if (msg.event !== 'put' && msg.event !== 'delete') continue;
              const data = JSON.parse(msg.data) as { type: 'put' | 'delete'; key: string; revision: number; value?: unknown } & Record<string, unknown>;
              if (data.type === 'put') {
                const { type: _type, ...entry } = data;
                queue.push({ type: 'put', key: data.key, revision: data.revision, entry: entry as unknown as Entry<T> });
              } else {
                queue.push({ type: 'delete', key: data.key, revision: data.revision });
              }
            }
          }
        } catch (err) {
          if (signal.aborted || queue.closed) return;
          throw err instanceof SyntaxError
            ? new BackendError(`the revkit server at ${redactUrl(this.base)} sent a watch event that is not JSON`, { transient: false, cause: err })
            : this.transportError(err, 'GET', {}, res.status);
        }
        // The server ended the stream (shutdown): reconnect.
      } catch (err) {
        if (signal.aborted || queue.closed) return;
        if (RevkitError.is(err) && !(BackendError.is(err) && err.transient)) {
          queue.fail(err);
          return;
        }
        if (++failures > 20) {
          queue.fail(RevkitError.is(err) ? err : this.transportError(err, 'GET', {}, undefined));
          return;
        }
      }
      if (signal.aborted || queue.closed) return;
      await abortableDelay(Math.min(2000, 50 * 2 ** failures), signal);
    }
  }

  /**
   * Ends every watch (a pending `next()` resolves done, as on every other
   * backend) and settles every call in flight with `ClosedError` (a write
   * among them carries `ambiguous: true`: it may have reached the server).
   */
  protected async doClose(): Promise<void> {
    for (const queue of this.watches) queue.end();
    this.watches.clear();
    for (const request of this.inflight) request.abort(new ClosedError(this.backend));
    this.inflight.clear();
  }

  // ---- HTTP plumbing

  private async requestJson(method: string, path: string, init: RequestInit2 = {}): Promise<unknown> {
    const res = await this.request(method, path, init);
    return this.parseReply(res, method, init.write === true);
  }

  /** The JSON of a reply; a body that is not JSON (a proxy's page) is a transient fault, ambiguous for a write. */
  private parseReply(res: Reply, method: string, write = false): unknown {
    try {
      return JSON.parse(res.text);
    } catch (cause) {
      throw new BackendError(`the revkit server at ${redactUrl(this.base)} answered ${method} with ${res.status} and a body that is not JSON`, { transient: true, ambiguous: write, cause });
    }
  }

  /**
   * One request and its whole reply. Every failure is a RevkitError: the
   * server's problem document as the error it names; a transport failure as a
   * transient BackendError — ambiguous for a write whose request may have
   * reached the server, whether the connection failed before the response or
   * in the middle of it —; a close() meanwhile as ClosedError.
   */
  private async request(method: string, path: string, init: RequestInit2 = {}): Promise<Reply> {
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
      write: init.write === true, server: redactUrl(this.base), bodyBytes: bodyBytesOf(init), bodyLimit: this.maxBodyBytes,
    });
  }

  /** A streaming response (the watch), its body left to the caller; `init.signal` (aborted by close()) ends it. */
  private async openStream(path: string, init: RequestInit2): Promise<Response> {
    this.assertOpen();
    const res = await this.send('GET', path, init, undefined);
    if (res.ok) return res;
    let text = '';
    try {
      text = await res.text();
    } catch (err) {
      throw await this.failure(err, 'GET', init, res.status, undefined);
    }
    throw errorFromProblem(res.status, safeJson(text) as ProblemBody | undefined, init.key, { server: redactUrl(this.base) });
  }

  /** fetch(), its failures translated; resolves once the status line and headers arrived. */
  private async send(method: string, path: string, init: RequestInit2, closer: AbortSignal | undefined): Promise<Response> {
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
  private async failure(err: unknown, method: string, init: RequestInit2, status: number | undefined, closer: AbortSignal | undefined): Promise<RevkitError> {
    // fetch rejects with the abort's reason: close() and the caller's signal are told apart by their signals.
    if (closer?.aborted) return new ClosedError(this.backend, { ambiguous: init.write === true, cause: err });
    if (init.signal?.aborted) return new AbortedError(init.signal.reason);
    if (RevkitError.is(err)) return err;
    if (status === undefined && init.body !== undefined && isConnectionLoss(err)) {
      const refusal = await this.bodyRefusal(bodyBytesOf(init) ?? 0).catch(() => undefined);
      if (refusal) return refusal;
    }
    return this.transportError(err, method, init, status);
  }

  /**
   * A transport failure as a transient BackendError naming the server (secrets
   * redacted) with the driver's error as `cause`. Ambiguous for a write that
   * may have reached the server: one whose connection failed once sent, or
   * whose response was cut — unless the status line already said the server
   * refused it (4xx).
   */
  private transportError(err: unknown, method: string, init: RequestInit2, status: number | undefined): BackendError {
    const write = init.write === true;
    const what = describeTransportError(err);
    if (status === undefined) {
      const code = causeCode(err);
      const refused = code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
      return new BackendError(`cannot reach the revkit server at ${redactUrl(this.base)} (${method}): ${what}`, { transient: true, ambiguous: write && !refused, cause: err });
    }
    const refusedByServer = status >= 400 && status < 500;
    return new BackendError(`the response of the revkit server at ${redactUrl(this.base)} to ${method} (${status}) was cut: ${what}`, {
      transient: true, ambiguous: write && !refusedByServer, cause: err,
    });
  }

  /** A write whose body is larger than the server's known limit fails here, as the server would answer it. */
  private checkBodySize(bytes: number): void {
    if (this.maxBodyBytes !== undefined && bytes > this.maxBodyBytes) throw new TooLargeError('the request body', bytes, this.maxBodyBytes);
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

interface RequestInit2 {
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
interface Reply {
  status: number;
  headers: Headers;
  text: string;
}

interface ServerInfo {
  backend: string;
  capabilities: Capabilities;
  limits?: { maxBodyBytes?: unknown };
}

function bodyLimitOf(info: ServerInfo): number | undefined {
  const limit = info.limits?.maxBodyBytes;
  return typeof limit === 'number' && Number.isSafeInteger(limit) && limit > 0 ? limit : undefined;
}

function bodyBytesOf(init: RequestInit2): number | undefined {
  return init.body === undefined ? undefined : Buffer.byteLength(init.body);
}


/** The code of the socket error under fetch's TypeError (ECONNRESET, EPIPE, UND_ERR_SOCKET…). */
function causeCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}

/** The connection failed under a request (reset, broken pipe, closed by the other side), rather than a timeout or a refusal. */
function isConnectionLoss(err: unknown): boolean {
  const code = causeCode(err);
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET' || code === 'ECONNABORTED';
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

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Every character outside the unreserved set is encoded, `/` included. The
 * keys `.` and `..` would be path segments that fetch (and proxies) remove,
 * percent-encoded or not, so they go in the `key` query parameter of an
 * empty path key.
 */
function keyPath(key: string, suffix: '' | '/history' = '', query: Record<string, string> = {}): string {
  const dotSegment = key === '.' || key === '..';
  const params = new URLSearchParams(dotSegment ? { key, ...query } : query).toString();
  return `/v1/kv/${dotSegment ? '' : encodeURIComponent(key)}${suffix}${params ? `?${params}` : ''}`;
}

function addCondition(headers: Record<string, string>, cond: { ifAbsent?: true; ifRevision?: number }): void {
  if (cond.ifAbsent) headers['if-none-match'] = '*';
  else if (cond.ifRevision !== undefined) headers['if-match'] = `"${cond.ifRevision}"`;
}

function revisionOf(etag: string | null): number {
  const m = /^"(\d+)"$/.exec(etag ?? '');
  if (!m) throw new BackendError(`the server sent no revision ETag (${String(etag)})`, { transient: false });
  return Number(m[1]);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The revkit error a problem body stands for. */
export function errorFromProblem(
  status: number, body: ProblemBody | undefined, key?: string, request: { write?: boolean; server?: string; bodyBytes?: number | undefined; bodyLimit?: number | undefined } = {},
): RevkitError {
  const detail = typeof body?.detail === 'string' ? body.detail : `HTTP ${status}`;
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
    case 'ERR_OUTCOME_UNKNOWN':
      return new OutcomeUnknownError(typeof body.key === 'string' ? body.key : (key ?? ''), detail);
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

/**
 * A write answered by a gateway error or an internal error may have reached
 * the store: unless the server says otherwise, treat it as unconfirmed.
 * ERR_UNAVAILABLE is the server refusing before doing anything (shutdown).
 */
function isUnconfirmedWrite(status: number, body: ProblemBody | undefined): boolean {
  return status >= 500 && body?.code !== 'ERR_UNAVAILABLE' && body?.code !== 'ERR_UNSUPPORTED';
}
