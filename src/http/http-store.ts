import {
  AsyncQueue, BackendError, BaseStore, ConflictError, InvalidArgumentError, TooLargeError, assertAfter, assertKey, assertOptions, assertPrefix, assertValueSize, deepEqual, isTombstone, jsonCodec, keyFilter, writerFromPercentEncoding,
  type AtomicOp, type Capabilities, type DeleteOptions, type Entry, type HistoryOptions, type ListOptions, type ListPage,
  type PutOptions, type ReplicationState, type StoredRecord, type Tombstone, type WatchEvent, type WatchOptions,
} from '../core/index.js';
import type { ProblemBody } from './problems.js';
import { ReplicaPool } from './replica-pool.js';
import { replicationOf } from './replication.js';
import { parseServerList } from './server-urls.js';
import { HttpTransport, bodyLimitOf, limitOf, type ServerInfo } from './transport.js';
import { nestingDepth } from '../core/json-numbers.js';
import { followWatchStream } from './watch-stream.js';

export interface HttpStoreOptions {
  /**
   * Base URL of a revkit server, e.g. http://127.0.0.1:8787 (a path prefix is kept); or several
   * servers over one store (replicas), as a list or comma-separated: the first is the one used
   * while it answers, the others take over when it does not (docs/replication-http.md).
   */
  url: string | readonly string[];
  /** How often a server that gave no answer is probed (GET /readyz) until it answers again (default 250 ms). */
  probeIntervalMs?: number;
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
  /**
   * Combine concurrent update()s of one key (one GET, each mutation in turn, one PUT), checking each
   * value a later caller's replaces against these limits: only right when they are all the server
   * refuses a value for. `fromUrl` combines when the server says so (GET /v1/info `combinableUpdates`,
   * with its limits); by default each update() runs its own GET + PUT If-Match loop.
   */
  combineUpdates?: { maxValueBytes: number; maxJsonDepth: number; maxBodyBytes: number };
}

const DEFAULT_CAPABILITIES: Capabilities = { atomic: true, ttl: true, history: true, watch: true, crossProcess: true, durability: 'server-default' };
const IF_VALUE_ATTEMPTS = 64;

/**
 * A Store that talks to a revkit server over HTTP (docs/semantics.md, "HTTP server"). Conditions
 * become If-Match / If-None-Match, `atomic()` is POST /v1/txn, watch is the
 * SSE stream (resumed with Last-Event-ID after a dropped connection), and
 * `update()` is BaseStore's loop of GET + PUT If-Match. Errors come back as
 * the revkit errors the server's problem bodies name.
 */
export class HttpStore extends BaseStore {
  readonly backend = 'http';
  /**
   * A server may refuse a value for reasons this client cannot check before the write (its `validate`
   * hook, its store's own limits): a value a later caller's replaced in a combined write would pass
   * unchecked. update()s are combined only where the server says its limits are all (combineUpdates).
   */
  protected override get combinesUpdates(): boolean {
    return this.valueLimits !== undefined;
  }

  /**
   * What a value a combined write replaces is checked against: all the server would refuse it for
   * (see combineUpdates), in the order a PUT meets them — JSON, the body limit (this client's, then
   * the server's), the nesting depth, the store's value limit.
   */
  override checkValue(value: unknown): unknown {
    const bytes = jsonCodec.encode(value);
    this.pool.current().checkBodySize(bytes.byteLength);
    const text = new TextDecoder().decode(bytes);
    const limits = this.valueLimits;
    if (limits !== undefined) {
      if (bytes.byteLength > limits.maxBodyBytes) throw new TooLargeError('the request body', bytes.byteLength, limits.maxBodyBytes);
      if (text.length > limits.maxJsonDepth && nestingDepth(text) > limits.maxJsonDepth) throw new InvalidArgumentError(`the JSON body nests deeper than ${limits.maxJsonDepth} levels`);
      assertValueSize(bytes, limits.maxValueBytes);
    }
    return JSON.parse(text);
  }
  readonly capabilities: Capabilities;
  readonly remoteBackend: string;
  /** The servers, one transport each (requests, timeouts, the aborts of close(), body limit, clock), and which serves now. */
  private readonly pool: ReplicaPool;
  /** Running watches: close() ends each, so a pending next() settles. */
  private readonly watches = new Set<{ end(): void }>();
  private readonly valueLimits: HttpStoreOptions['combineUpdates'];

  constructor(options: HttpStoreOptions) {
    super();
    this.valueLimits = options.combineUpdates;
    const { bases } = parseServerList(options.url, false);
    this.capabilities = { ...(options.capabilities ?? DEFAULT_CAPABILITIES), crossProcess: true };
    this.remoteBackend = options.remoteBackend ?? 'unknown';
    this.pool = new ReplicaPool(bases.map((base) => new HttpTransport({
      base,
      authorization: options.token ? `Bearer ${options.token}` : undefined,
      timeoutMs: options.timeoutMs ?? 30_000,
      maxBodyBytes: options.maxBodyBytes,
      backend: this.backend,
      assertOpen: () => this.assertOpen(),
    })), options.probeIntervalMs);
  }

  /**
   * `http://host:port[/base]?token=T` → a store connected to that server;
   * `http://h1:8787,http://h2:8787?token=T` (full URLs, comma-separated) → one
   * that fails over between them. Asks GET /v1/info once (of the first server
   * that answers), which checks the URL and the token and learns the remote
   * store's capabilities.
   */
  static async fromUrl(url: string, options: Omit<HttpStoreOptions, 'url'> = {}): Promise<HttpStore> {
    const parsed = parseServerList(url, true);
    const token = parsed.token ?? options.token;
    const probe = new HttpStore({ ...options, url: parsed.bases, ...(token ? { token } : {}) });
    let info: ServerInfo;
    try {
      info = (await probe.pool.run((t) => t.requestJson('GET', '/v1/info'))) as ServerInfo;
    } finally {
      await probe.close();
    }
    const maxBodyBytes = options.maxBodyBytes ?? bodyLimitOf(info);
    const maxValueBytes = limitOf(info, 'maxValueBytes');
    const maxJsonDepth = limitOf(info, 'maxJsonDepth');
    const serverBodyBytes = limitOf(info, 'maxBodyBytes');
    // Learned from one server, so only for one: replicas may differ (a validate hook on one, an older revkit on another).
    const combineUpdates = options.combineUpdates
      ?? (parsed.bases.length === 1 && info.combinableUpdates === true && maxValueBytes !== undefined && maxJsonDepth !== undefined && serverBodyBytes !== undefined
        ? { maxValueBytes, maxJsonDepth, maxBodyBytes: serverBodyBytes }
        : undefined);
    return new HttpStore({
      ...options, url: parsed.bases, ...(token ? { token } : {}), capabilities: info.capabilities, remoteBackend: info.backend,
      ...(maxBodyBytes !== undefined ? { maxBodyBytes } : {}),
      ...(combineUpdates !== undefined ? { combineUpdates } : {}),
    });
  }

  /**
   * The servers this client fails over between (which one serves it now, which
   * are down, how often it moved) and the replication state of the store
   * behind them, as the serving server reports it (GET /v1/info).
   */
  async replication(): Promise<ReplicationState> {
    this.assertOpen();
    const info = (await this.pool.run((t) => t.requestJson('GET', '/v1/info'))) as ServerInfo;
    return replicationOf(this.pool, info, this.capabilities.durability);
  }

  /**
   * Accepts a loss of acknowledged writes the store behind the servers
   * detected (POST /v1/admin/accept-loss, admin access). UnsupportedError
   * when that store has nothing to accept losses with.
   */
  async acceptLoss(): Promise<void> {
    this.assertOpen();
    await this.pool.run((t) => t.requestJson('POST', '/v1/admin/accept-loss', { headers: { 'content-type': 'application/json' }, body: '{}' }));
  }

  async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.assertOpen();
    assertKey(key);
    return this.pool.run((t) => this.readRecord<T>(t, key));
  }

  private async readRecord<T>(transport: HttpTransport, key: string): Promise<StoredRecord<T> | null> {
    const res = await transport.request('GET', keyPath(key), { okStatuses: [200, 404] });
    if (res.status === 404) {
      const body = (transport.parseReply(res, 'GET') ?? {}) as ProblemBody;
      if (body.deleted === true && typeof body.revision === 'number') {
        const t: Tombstone = { key, revision: body.revision, deleted: true };
        if (typeof body.writer === 'string') t.writer = body.writer;
        if (typeof body.updatedAt === 'number') t.updatedAt = body.updatedAt;
        return t;
      }
      return null;
    }
    const value = transport.parseReply(res, 'GET') as T;
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
    if (writer !== null) entry.writer = writerFromPercentEncoding(writer); // server/request.ts writerOf
    return entry;
  }

  protected async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    const bytes = jsonCodec.encode(value); // ValidationError for undefined, functions…
    const body = new TextDecoder().decode(bytes);
    this.pool.current().checkBodySize(bytes.byteLength);
    if (options.ifValue !== undefined) {
      return this.withValueCondition(key, options.ifValue, (revision) => this.doPut(key, value, { ...options, ifValue: undefined, ifRevision: revision }));
    }
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    addCondition(headers, options);
    if (options.writer !== undefined) headers['revkit-writer'] = encodeURIComponent(options.writer);
    const query: Record<string, string> = options.ttlMs !== undefined ? { ttlMs: String(options.ttlMs) } : {};
    const meta = (await this.pool.run((t) => t.requestJson('PUT', keyPath(key, '', query), { headers, body, write: true, key }))) as Omit<Entry<T>, 'value'>;
    const entry: Entry<T> = { ...meta, key, value: JSON.parse(body) as T };
    return entry;
  }

  protected async doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    if (options.ifValue !== undefined) {
      return this.withValueCondition(key, options.ifValue, (revision) => this.doDelete(key, { ...options, ifValue: undefined, ifRevision: revision }));
    }
    const headers: Record<string, string> = {};
    addCondition(headers, options);
    if (options.writer !== undefined) headers['revkit-writer'] = encodeURIComponent(options.writer);
    return this.pool.run(async (t) => {
      const res = await t.request('DELETE', keyPath(key), { headers, write: true, key, okStatuses: [200, 404] });
      if (res.status === 404) return null;
      return (t.parseReply(res, 'DELETE', true) as { revision: number }).revision;
    });
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
    this.pool.current().checkBodySize(Buffer.byteLength(body));
    return (await this.pool.run((t) => t.requestJson('POST', '/v1/txn', { headers: { 'content-type': 'application/json' }, body, write: true }))) as { revision: number };
  }

  async list<T = unknown>(options: ListOptions = {}): Promise<ListPage<T>> {
    assertOptions(options, 'list()');
    this.assertOpen();
    if (options.prefix !== undefined) assertPrefix(options.prefix);
    const q = new URLSearchParams();
    if (options.prefix !== undefined) q.set('prefix', options.prefix);
    assertAfter(options.after);
    if (options.after !== undefined) q.set('after', options.after);
    if (options.limit !== undefined) {
      if (typeof options.limit !== 'number' || !Number.isSafeInteger(options.limit) || options.limit <= 0) {
        throw new InvalidArgumentError(`limit must be a positive integer, got ${String(options.limit)}`);
      }
      q.set('limit', String(options.limit));
    }
    const qs = q.toString();
    const page = (await this.pool.run((t) => t.requestJson('GET', `/v1/kv${qs ? `?${qs}` : ''}`))) as ListPage<T>;
    return page.cursor === undefined ? { entries: page.entries } : page;
  }

  async history<T = unknown>(key: string, options: HistoryOptions = {}): Promise<StoredRecord<T>[]> {
    assertOptions(options, 'history()');
    this.assertOpen();
    assertKey(key);
    if (options.limit !== undefined && (!Number.isSafeInteger(options.limit) || options.limit <= 0)) {
      throw new InvalidArgumentError(`limit must be a positive integer, got ${String(options.limit)}`);
    }
    const query: Record<string, string> = options.limit !== undefined ? { limit: String(options.limit) } : {};
    // The last slash of the key is encoded, so `…/history` is always the history route.
    const body = (await this.pool.run((t) => t.requestJson('GET', keyPath(key, '/history', query), { key }))) as { records: StoredRecord<T>[] };
    return body.records;
  }

  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    this.assertOpen();
    keyFilter(options); // checks key / prefix / fromRevision before anything is sent
    const queue = new AsyncQueue<WatchEvent<T>>(options.signal);
    const controller = new AbortController();
    queue.onClose(() => controller.abort());
    this.watches.add(queue);
    queue.onClose(() => this.watches.delete(queue));
    void followWatchStream(this.pool, options, queue, controller.signal, performance.now());
    return queue;
  }

  /**
   * Ends every watch (a pending `next()` resolves done, as on every other
   * backend) and settles every call in flight with `ClosedError` (a write
   * among them carries `ambiguous: true`: it may have reached the server).
   */
  protected async doClose(): Promise<void> {
    for (const queue of this.watches) queue.end();
    this.watches.clear();
    this.pool.close();
    for (const transport of this.pool.transports) transport.abortAll();
  }
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
