import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  ConflictError, DEFAULT_MAX_VALUE_BYTES, HistoryGoneError, InvalidKeyError, MAX_KEY_BYTES, SKIP, assertKey, deepEqual, isTombstone, validateCandidate,
  type Condition, type Entry, type PutOptions, type Store, type StoredRecord, type UpdateOptions,
} from '../core/index.js';
import { open } from '../open.js';
import { hostGuard } from './host-check.js';
import { Authenticator, hasAnyAdmin, requireAccess, type Principal, type TokenSpec } from './auth.js';
import { etagOf, parseTagList, revisionOfTag, strongMatch, weakMatch, type TagList } from './etag.js';
import { assertFaithfulText } from '../core/faithful.js';
import { applyMergePatch } from './merge-patch.js';
import { ServerMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { HttpProblem, problem, toProblem, type Problem } from './problem.js';
import { parseSince, RevisionClock } from './revision-clock.js';
import { streamWatch } from './sse.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** No token needed (health, readiness, the OpenAPI document). */
    public?: boolean;
    /** Status of ERR_CONFLICT on this route (default 412). */
    conflictStatus?: 409 | 412;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export interface ServerLimits {
  /** Largest request body in bytes (default 2 MiB). Over it: 413 ERR_PAYLOAD_TOO_LARGE. */
  maxBodyBytes: number;
  /** Largest encoded value (default 1 MiB); enforced by the store, reported in /v1/info. Over it: 413 ERR_TOO_LARGE. */
  maxValueBytes: number;
  /** Largest page of GET /v1/kv (default 1000); larger `limit`s are clamped. */
  maxPageSize: number;
  /** Most operations in one POST /v1/txn (default 1000). */
  maxTxnOps: number;
  /** Deepest nesting of arrays and objects in a JSON body (default 512). */
  maxJsonDepth: number;
  /**
   * Bytes one watch stream may have queued for a reader that does not keep up
   * (default 8 MiB; one event more may be queued). Past it the stream ends with
   * `event: overflow` and the reader resumes with Last-Event-ID.
   */
  maxWatchBufferBytes: number;
}

export interface ServerTimeouts {
  /** Time allowed to receive the request headers (default 10 s). */
  headersMs: number;
  /** Time allowed to receive the whole request, body included (default 30 s). */
  requestMs: number;
  /** A connection with no traffic for this long is closed (default 120 s). */
  idleMs: number;
  /** Keep-alive between requests (default 5 s). */
  keepAliveMs: number;
  /** Comment lines on watch streams so proxies and the idle timeout keep them open (default 15 s). */
  heartbeatMs: number;
  /** How often the header and request timeouts are checked (default 1 s). */
  checkIntervalMs: number;
}

export interface CreateServerOptions {
  /** An open store, or a store URL for `open()` (then the server owns and closes it). */
  store: Store | string;
  /** Close the store when the server closes; default true when `store` is a URL. */
  closeStore?: boolean;
  /** Bearer tokens with scopes; `null` or omitted (and no adminToken): no authentication. */
  tokens?: TokenSpec[] | null;
  /** Shorthand for a token with admin access to every key. */
  adminToken?: string;
  /** Unconditional PUT, DELETE and txn writes get 428 (PATCH is a server-side CAS loop and stays allowed). */
  requirePreconditions?: boolean;
  limits?: Partial<ServerLimits>;
  timeouts?: Partial<ServerTimeouts>;
  /** Runs on every value before it is written (PUT, PATCH, txn sets); invalid → 422 ERR_VALIDATION, nothing written. */
  validate?: (key: string, value: unknown) => void | string | boolean | Promise<void | string | boolean>;
  /** Where 500s are reported (default: one line on stderr). */
  onInternalError?: (err: unknown, request: { method: string; url: string }) => void;
  /** Passed to fastify (default false). */
  logger?: boolean;
  /**
   * Host names (no port) the server answers to besides loopback names; any other
   * Host gets 421 (host-check.ts). Bound to loopback, only loopback names pass
   * without it; bound elsewhere, every Host passes unless this is given.
   */
  allowedHosts?: string[];
}

export interface RevkitServer {
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly metrics: ServerMetrics;
  /** Every route as "METHOD /path" (the OpenAPI test checks each is documented). */
  readonly routes: string[];
  /** Base URL once listening. */
  readonly url: string | undefined;
  /** Starts listening (default 127.0.0.1, port 0 = any free port); returns the base URL. */
  listen(options?: { host?: string; port?: number }): Promise<string>;
  /** Graceful: stop accepting, end watch streams, finish in-flight requests, close the store (when owned). */
  close(): Promise<void>;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxBodyBytes: 2 * 1024 * 1024,
  maxValueBytes: DEFAULT_MAX_VALUE_BYTES,
  maxPageSize: 1000,
  maxTxnOps: 1000,
  maxJsonDepth: 512,
  maxWatchBufferBytes: 8 * 1024 * 1024,
};

export const DEFAULT_TIMEOUTS: ServerTimeouts = {
  headersMs: 10_000,
  requestMs: 30_000,
  idleMs: 120_000,
  keepAliveMs: 5_000,
  heartbeatMs: 15_000,
  checkIntervalMs: 1_000,
};

const KV = '/v1/kv/';
const WRITER = /^[A-Za-z0-9_-]{1,64}$/;
const JSON_TYPE = 'application/json; charset=utf-8';
const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';
const MERGE_PATCH = 'application/merge-patch+json';

/** Creates the HTTP server (docs/semantics.md, "HTTP server") over a store (not yet listening). */
export async function createServer(options: CreateServerOptions): Promise<RevkitServer> {
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const timeouts: ServerTimeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  const ownsStore = options.closeStore ?? typeof options.store === 'string';
  const store = typeof options.store === 'string' ? await open(options.store, { maxValueBytes: limits.maxValueBytes }) : options.store;
  const tokens = options.tokens ?? null;
  const allTokens = options.adminToken !== undefined
    ? [...(tokens ?? []), { token: options.adminToken, name: 'admin', scopes: [{ prefix: '', access: 'admin' as const }] }]
    : tokens;
  const auth = new Authenticator(allTokens);
  const metrics = new ServerMetrics();
  const requirePreconditions = options.requirePreconditions ?? false;
  const onInternalError = options.onInternalError ?? ((err, req) => {
    process.stderr.write(`revkit serve: internal error on ${req.method} ${req.url}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  });
  const watches = new Set<AbortController>();
  const clock = new RevisionClock(store);
  await clock.start();
  let closing = false;
  let url: string | undefined;

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: limits.maxBodyBytes,
    connectionTimeout: timeouts.idleMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    requestTimeout: Math.max(timeouts.requestMs, timeouts.headersMs),
    http: { headersTimeout: timeouts.headersMs, connectionsCheckingInterval: timeouts.checkIntervalMs },
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    exposeHeadRoutes: true,
    routerOptions: { maxParamLength: 4 * MAX_KEY_BYTES },
    frameworkErrors: (err, _req, reply) => sendProblem(reply, toProblem(err).problem, {}),
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => writeRawProblem(err, socket),
  });
  app.decorateRequest('principal', null);
  // CONNECT never reaches a route: node hands it to 'connect' listeners or drops the socket.
  app.server.on('connect', (_req, socket: Socket) => {
    writeRawResponse(socket, 405, 'Method Not Allowed', problem(405, 'ERR_METHOD_NOT_ALLOWED', 'CONNECT is not supported'), 'Allow: GET, HEAD, PUT, DELETE, PATCH, POST\r\n');
  });
  const routes: string[] = [];

  // ---- auth, shutdown and metrics hooks. Each route gets its own, built once here with
  // what they need from the route (its URL, whether it is public) in their closure:
  // req.routeOptions builds a fresh object on every read. Callback hooks, not async
  // ones: no promise per hook per request.
  const admit = (req: FastifyRequest, reply: FastifyReply, isPublic: boolean): void => {
    if (closing) {
      reply.header('connection', 'close');
      throw new HttpProblem(503, 'the server is shutting down', {}, { 'retry-after': '1' });
    }
    if (!isPublic) req.principal = auth.authenticateOn(req.raw.socket, req.headers.authorization);
  };
  const admitHook = (isPublic: boolean) => (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void => {
    try {
      admit(req, reply, isPublic);
    } catch (err) {
      return done(err as Error);
    }
    done();
  };
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) routes.push(`${m} ${r.url}`);
    const count = metrics.forRoute(r.url);
    const onResponse = (req: FastifyRequest, reply: FastifyReply, done: () => void): void => {
      count(req.method, reply.statusCode, reply.elapsedTime / 1000);
      done();
    };
    // New arrays: the HEAD route fastify derives from a GET route gets hooks of its own.
    r.onRequest = [admitHook(r.config?.public === true), ...[r.onRequest ?? []].flat()];
    r.onResponse = [onResponse, ...[r.onResponse ?? []].flat()];
  });
  // Before anything else: a page that rebound its own name to this address is refused (DNS rebinding).
  let hostAllowed: ((host: string | undefined) => boolean) | undefined;
  app.addHook('onRequest', (req, _reply, done) => {
    if (hostAllowed === undefined || hostAllowed(req.headers.host)) return done();
    done(new HttpProblem(421, 'this server does not answer for that Host; start it with --allowed-host to add a name'));
  });
  // Every answer carries this server's clock: where an HttpStore's watch "from now" starts (revision-clock.ts).
  app.addHook('onSend', (_req, reply, payload, done) => {
    reply.header('revkit-clock', clock.reading());
    done(null, payload);
  });
  // Requests no route matched (the not-found handler) pass the same checks.
  const admitUnmatched = admitHook(false);
  const countUnmatched = metrics.forRoute('unmatched');
  app.addHook('onRequest', (req, reply, done) => (req.is404 ? admitUnmatched(req, reply, done) : done()));
  app.addHook('onResponse', (req, reply, done) => {
    if (req.is404) countUnmatched(req.method, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  // ---- body parsing: JSON and JSON Merge Patch only, parsed as plain JSON (a
  // `__proto__` member stays an ordinary own property), with a depth limit.
  // A number literal JSON.parse cannot carry faithfully (12345678901234567891
  // would be stored as 12345678901234567000, 1e400 as null) is refused with a
  // 422 ERR_VALIDATION naming its path in the body, before any route runs:
  // PUT values, PATCH merge patches and POST /v1/txn alike.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(['application/json', MERGE_PATCH], { parseAs: 'string' }, (_req, body, done) => {
    const text = body as string;
    if (text.length === 0) return done(null, undefined);
    // Nesting n levels takes n brackets: a body this short cannot be too deep.
    if (text.length > limits.maxJsonDepth && nestingDepth(text) > limits.maxJsonDepth) return done(new HttpProblem(400, `the JSON body nests deeper than ${limits.maxJsonDepth} levels`, { limit: limits.maxJsonDepth }));
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return done(new HttpProblem(400, `the body is not valid JSON: ${err instanceof Error ? err.message.slice(0, 200) : 'parse error'}`));
    }
    try {
      assertFaithfulText(text);
    } catch (err) {
      return done(err as Error);
    }
    done(null, value);
  });

  app.setErrorHandler((err, req, reply) => {
    const { problem: p, headers, internal } = toProblem(err, { conflictStatus: req.routeOptions.config?.conflictStatus ?? 412 });
    if (internal) onInternalError(err, { method: req.method, url: req.url });
    if (p.code === 'ERR_CONFLICT') metrics.conflicts.inc();
    if ((err as { code?: unknown }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') refuseBody(req, reply, p, limits.maxBodyBytes);
    return sendProblem(reply, p, headers);
  });

  app.setNotFoundHandler((req, reply) => {
    const path = pathOf(req.raw.url ?? '/');
    const allow = allowedMethods(path);
    if (allow) return sendProblem(reply, problem(405, 'ERR_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path.slice(0, 200)}; allowed: ${allow}`), { allow });
    return sendProblem(reply, problem(404, 'ERR_NOT_FOUND', 'no such route; see /openapi.json'), {});
  });

  // ---- operations
  app.get('/healthz', { config: { public: true } }, async (_req, reply) => sendJson(reply, 200, { status: 'ok' }));

  app.get('/readyz', { config: { public: true } }, async (_req, reply) => {
    try {
      await store.get('__revkit/readyz');
      return sendJson(reply, 200, { status: 'ready', backend: store.backend });
    } catch {
      return sendProblem(reply, problem(503, 'ERR_UNAVAILABLE', `the ${store.backend} store is not reachable`), { 'retry-after': '1' });
    }
  });

  app.get('/metrics', async (req, reply) => {
    if (auth.enabled && !hasAnyAdmin(req.principal as Principal)) throw new HttpProblem(403, '/metrics needs a token with admin access', { access: 'admin', scope: 'admin on any prefix' });
    return reply.code(200).type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render());
  });

  app.get('/openapi.json', { config: { public: true } }, async (_req, reply) => sendJson(reply, 200, openApiDocument));
  await app.register((await import('./console.js')).consolePlugin); // the web console at /ui

  app.get('/v1/info', async (req, reply) => sendJson(reply, 200, {
    backend: store.backend,
    capabilities: store.capabilities,
    requirePreconditions,
    limits: { ...limits, maxKeyBytes: MAX_KEY_BYTES },
    principal: { name: (req.principal as Principal).name, scopes: (req.principal as Principal).scopes },
  }));

  // ---- keys
  app.get('/v1/kv', async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    const prefix = queryString(q, 'prefix') ?? '';
    const after = queryString(q, 'after');
    const limit = queryInt(q, 'limit');
    requireAccess(req.principal as Principal, 'read', prefix, 'prefix');
    const page = await store.list({ prefix, ...(after !== undefined ? { after } : {}), limit: Math.min(limit ?? limits.maxPageSize, limits.maxPageSize) });
    return sendJson(reply, 200, { entries: page.entries.map(entryJson), ...(page.cursor !== undefined ? { cursor: page.cursor } : {}) });
  });

  app.get('/v1/kv/*', async (req, reply) => {
    const { key, history } = keyOf(req);
    requireAccess(req.principal as Principal, 'read', key);
    if (history) {
      const limit = queryInt(req.query as Record<string, unknown>, 'limit');
      const records = await store.history(key, limit !== undefined ? { limit } : {});
      return sendJson(reply, 200, { key, records: records.map(recordJson) });
    }
    const record = await store.getRecord(key);
    const pre = readPreconditions(req);
    const live = record !== null && !isTombstone(record);
    if (pre.ifMatch !== undefined && !(pre.ifMatch === '*' ? live : live && strongMatch(pre.ifMatch, (record as Entry).revision))) {
      throw new ConflictError([{ key, expected: 'value', actual: record?.revision ?? null }]);
    }
    if (!live) throw notFound(key, record);
    const entry = record as Entry;
    setEntryHeaders(reply, entry);
    if (pre.ifNoneMatch !== undefined && (pre.ifNoneMatch === '*' || weakMatch(pre.ifNoneMatch, entry.revision))) return reply.code(304).send();
    return reply.code(200).type(JSON_TYPE).send(JSON.stringify(entry.value));
  });

  app.put('/v1/kv/*', async (req, reply) => {
    const { key } = keyOf(req);
    requireAccess(req.principal as Principal, 'write', key);
    const value = req.body;
    if (value === undefined) throw new HttpProblem(400, 'PUT needs a JSON body: the value to store');
    const writer = writerOf(req);
    const ttlMs = queryInt(req.query as Record<string, unknown>, 'ttlMs');
    if (options.validate) await validateValue(key, value);
    const guard = plainGuard(req);
    const entry = guard !== undefined
      ? await store.put(key, value, withWriteOptions(guard, writer, ttlMs))
      : await guardedWrite(key, readPreconditions(req), (g) => store.put(key, value, withWriteOptions({ ...g }, writer, ttlMs)));
    setEntryHeaders(reply, entry);
    return sendJson(reply, entry.createdRevision === entry.revision ? 201 : 200, metaJson(entry));
  });

  app.delete('/v1/kv/*', async (req, reply) => {
    const { key } = keyOf(req);
    requireAccess(req.principal as Principal, 'write', key);
    const writer = writerOf(req);
    const guard = plainGuard(req);
    const revision = guard !== undefined
      ? await store.delete(key, withWriteOptions(guard, writer, undefined))
      : await guardedWrite(key, readPreconditions(req), (g) => store.delete(key, withWriteOptions({ ...g }, writer, undefined)));
    if (revision === null) throw notFound(key, null);
    reply.header('etag', etagOf(revision));
    return sendJson(reply, 200, { key, revision, deleted: true });
  });

  // PATCH takes only a JSON Merge Patch: a body of any other type (application/json included — a JSON
  // document is not a patch) is 415 naming the one it takes, checked before the body is parsed, so
  // a malformed or missing one gets the same answer.
  app.patch('/v1/kv/*', {
    preParsing: (req, _reply, payload, done) => {
      const type = mediaType(req);
      if (type === MERGE_PATCH) return done(null, payload);
      done(new HttpProblem(415, `PATCH takes a JSON Merge Patch (RFC 7396): send it with Content-Type: ${MERGE_PATCH}${type ? `, not ${type.slice(0, 100)}` : ''}`, {}, { 'accept-patch': MERGE_PATCH }));
    },
  }, async (req, reply) => {
    const { key } = keyOf(req);
    requireAccess(req.principal as Principal, 'write', key);
    const patch = req.body;
    if (patch === undefined) throw new HttpProblem(400, 'PATCH needs a JSON Merge Patch body');
    const pre = readPreconditions(req);
    let entry: Entry | null;
    if (pre.ifMatch === undefined && pre.ifNoneMatch === undefined) {
      // Without preconditions: the server-side update loop (no lost update).
      const opts: UpdateOptions<unknown> = { onRetry: () => metrics.retries.inc() };
      if (options.validate) opts.validate = (v) => (options.validate as NonNullable<CreateServerOptions['validate']>)(key, v);
      entry = await store.update<unknown>(key, (current) => {
        const next = applyMergePatch(current, patch);
        return current !== undefined && deepEqual(next, current) ? SKIP : next;
      }, opts);
    } else {
      entry = await guardedWrite(key, pre, async (guard, read) => {
        const current = read !== undefined ? read : await store.getRecord(key);
        const failed = guardFailure(key, current, guard);
        if (failed) throw failed;
        const live = current !== null && !isTombstone(current);
        const base = live ? (current as Entry).value : undefined;
        const next = applyMergePatch(base, patch);
        if (live && deepEqual(next, base)) return current as Entry; // a no-op writes nothing
        await validateValue(key, next);
        const writer = writerOf(req);
        return store.put(key, next, { ...guard, ...(writer ? { writer } : {}) });
      });
    }
    if (entry === null) throw notFound(key, null);
    setEntryHeaders(reply, entry);
    return reply.code(200).type(JSON_TYPE).send(JSON.stringify(entry.value));
  });

  // ---- atomic batches
  app.post('/v1/txn', { config: { conflictStatus: 409 } }, async (req, reply) => {
    const ops = parseTxn(req.body, limits.maxTxnOps);
    const principal = req.principal as Principal;
    const checked = new Set<string>();
    for (const op of ops) {
      assertKey(op.key);
      requireAccess(principal, op.type === 'check' ? 'read' : 'write', op.key);
      if (op.type === 'check') checked.add(op.key);
    }
    if (requirePreconditions) {
      const unguarded = ops.filter((op) => op.type !== 'check' && !checked.has(op.key)).map((op) => op.key);
      if (unguarded.length > 0) {
        throw new HttpProblem(428, `this server requires conditional writes: add a check for ${unguarded.map((k) => JSON.stringify(k)).join(', ')}`, { keys: unguarded });
      }
    }
    for (const op of ops) if (op.type === 'set') await validateValue(op.key, op.value);
    const batch = store.atomic();
    for (const op of ops) {
      if (op.type === 'check') batch.check(op.key, op.revision);
      else if (op.type === 'set') batch.set(op.key, op.value, op.ttlMs !== undefined ? { ttlMs: op.ttlMs } : undefined);
      else batch.delete(op.key);
    }
    const { revision } = await batch.commit();
    reply.header('etag', etagOf(revision));
    return sendJson(reply, 200, { revision });
  });

  // ---- watch as Server-Sent Events
  const countWatch = metrics.forRoute('/v1/watch'); // counted as it starts: a stream its reader closes never finishes
  app.get('/v1/watch', { exposeHeadRoute: false }, async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    const key = queryString(q, 'key');
    const prefix = queryString(q, 'prefix');
    if (key !== undefined && prefix !== undefined) throw new HttpProblem(400, 'give key or prefix, not both');
    let fromRevision = queryInt(q, 'fromRevision', 0);
    // Event ids are `<revision>.<index of the event within that revision>`: a commit's events
    // share a revision, so resuming after the middle of one needs the index too. A plain
    // revision means "everything up to and including this revision".
    let skip: { revision: number; count: number } | undefined;
    const lastEventId = req.headers['last-event-id'];
    if (typeof lastEventId === 'string' && lastEventId.trim() !== '') {
      const m = /^(0|[1-9][0-9]{0,15})(?:\.(0|[1-9][0-9]{0,8}))?$/.exec(lastEventId.trim());
      if (!m) throw new HttpProblem(400, 'Last-Event-ID must be an event id (<revision>.<index>) or a revision');
      const revision = Number(m[1]);
      if (m[2] === undefined) fromRevision = revision;
      else {
        fromRevision = Math.max(0, revision - 1);
        skip = { revision, count: Number(m[2]) + 1 };
      }
    }
    if (key !== undefined) requireAccess(req.principal as Principal, 'read', key);
    else requireAccess(req.principal as Principal, 'read', prefix ?? '', 'prefix');
    let startId = typeof lastEventId === 'string' && lastEventId.trim() !== '' ? lastEventId.trim() : fromRevision?.toString();
    const since = queryString(q, 'since');
    if (since !== undefined && fromRevision === undefined) {
      // From the moment the client's watch() was called, on this server's clock: what had committed by then.
      const moment = parseSince(since);
      if (!moment) throw new HttpProblem(400, 'since must be <instance>;<milliseconds>, from a Revkit-Clock header');
      if (moment.instance !== clock.instance) {
        throw new HttpProblem(503, 'since names another run of this server (it restarted): read Revkit-Clock again', {}, { 'retry-after': '0' });
      }
      const at = clock.revisionAt(moment.at, moment.strict);
      if (at === undefined) {
        const gone = new HistoryGoneError(0, 0);
        gone.message = 'a watch "from now" cannot start where it was asked to: watch() was called before this run of the server began keeping time (it restarted), or too long ago; what was written meanwhile cannot be told apart — watch again, or from a revision';
        throw gone;
      }
      startId = String((fromRevision = at));
    }
    if (fromRevision === undefined) {
      // "From now" is pinned to a revision when the store can name its head, so that the
      // stream can announce it and a reader cut before its first event resumes with no gap.
      const head = await headRevision(store);
      if (head !== undefined) startId = String((fromRevision = head));
    }
    const controller = new AbortController();
    const iterable = store.watch({
      ...(key !== undefined ? { key } : { prefix: prefix ?? '' }),
      ...(fromRevision !== undefined ? { fromRevision } : {}),
      signal: controller.signal,
    });
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
      connection: 'close',
      'revkit-clock': clock.reading(),
    });
    countWatch('GET', 200);
    metrics.watchOpened();
    watches.add(controller);
    res.on('close', () => controller.abort());
    try {
      const end = await streamWatch(res, iterable[Symbol.asyncIterator](), {
        maxBufferBytes: limits.maxWatchBufferBytes,
        heartbeatMs: timeouts.heartbeatMs,
        startId,
        skip,
        signal: controller.signal,
        onBuffered: (bytes) => metrics.watchBuffered(bytes),
        describeError: (err) => {
          const { problem: p, internal } = toProblem(err);
          if (internal) onInternalError(err, { method: req.method, url: req.url });
          return p;
        },
      });
      if (end === 'overflow') metrics.watchOverflows.inc();
    } finally {
      watches.delete(controller);
      controller.abort();
      metrics.watchClosed();
    }
  });

  app.addHook('preClose', async () => {
    closing = true;
    for (const w of watches) w.abort();
    clock.stop(); // not awaited: a head read of an unreachable store may take long, and nothing waits for its answer
  });
  app.addHook('onClose', async () => {
    if (ownsStore) await store.close();
  });

  // ---- helpers that need the store and options

  async function validateValue(key: string, value: unknown): Promise<void> {
    if (options.validate) await validateCandidate(key, value, { validate: (v) => (options.validate as NonNullable<CreateServerOptions['validate']>)(key, v) });
  }

  /**
   * Evaluates If-Match / If-None-Match and runs `write` guarded by a store
   * condition, so the check and the write are one compare-and-swap.
   * `write` gets the record it is guarded by when this function read it.
   */
  async function guardedWrite<R>(key: string, pre: Preconditions, write: (guard: Condition, read?: StoredRecord | null) => Promise<R>): Promise<R> {
    const { ifMatch, ifNoneMatch } = pre;
    if (ifMatch === undefined && ifNoneMatch === undefined) {
      if (requirePreconditions) {
        throw new HttpProblem(428, 'this server requires conditional writes: send If-Match: "<revision>" to change a key or If-None-Match: * to create one');
      }
      return write({});
    }
    if (ifNoneMatch === undefined && ifMatch !== undefined && ifMatch !== '*' && ifMatch.length === 1) {
      const tag = ifMatch[0] as { weak: boolean; opaque: string };
      const revision = tag.weak ? null : revisionOfTag(tag);
      if (revision !== null) return write({ ifRevision: revision });
    }
    if (ifMatch === undefined && ifNoneMatch === '*') return write({ ifAbsent: true });
    // Lists, `If-Match: *`, weak tags: read, evaluate, write guarded by the revision read.
    for (let attempt = 1; ; attempt++) {
      const read = await store.getRecord(key);
      const live = read !== null && !isTombstone(read);
      const actual = read?.revision ?? null;
      const matchOk = ifMatch === undefined || (ifMatch === '*' ? live : strongMatch(ifMatch, actual ?? 0));
      const noneOk = ifNoneMatch === undefined || (ifNoneMatch === '*' ? !live : !(live && weakMatch(ifNoneMatch, actual as number)));
      if (!matchOk || !noneOk) throw new ConflictError([{ key, expected: matchOk ? 'absent' : expectedOf(ifMatch as TagList), actual }]);
      try {
        return await write({ ifRevision: read?.revision ?? 0 }, read);
      } catch (err) {
        if (!ConflictError.is(err) || attempt >= 16) throw err;
        metrics.retries.inc();
      }
    }
  }

  const server: RevkitServer = {
    app,
    store,
    metrics,
    routes,
    get url() {
      return url;
    },
    async listen(listenOptions = {}) {
      const host = listenOptions.host ?? '127.0.0.1';
      hostAllowed = hostGuard(host, options.allowedHosts);
      await app.listen({ host, port: listenOptions.port ?? 0 });
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : listenOptions.port;
      url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
      return url;
    },
    async close() {
      await app.close();
    },
  };
  return server;
}

// ---------------------------------------------------------------------------

interface Preconditions {
  ifMatch: TagList | undefined;
  ifNoneMatch: TagList | undefined;
}

/**
 * The store condition of the two common forms, read straight from the headers:
 * If-Match with one strong revkit ETag (`"12"`) and no If-None-Match, or
 * If-None-Match: * and no If-Match. Anything else (no precondition, lists,
 * weak or foreign tags, malformed fields): undefined, for guardedWrite().
 */
function plainGuard(req: FastifyRequest): PutOptions | undefined {
  const { 'if-match': ifMatch, 'if-none-match': ifNoneMatch } = req.headers;
  if (ifNoneMatch === undefined) {
    const revision = typeof ifMatch === 'string' ? plainRevision(ifMatch) : null;
    return revision === null ? undefined : { ifRevision: revision };
  }
  return ifMatch === undefined && ifNoneMatch === '*' ? { ifAbsent: true } : undefined;
}

/**
 * The revision of `"N"` with N as revkit writes it (no leading zero, a safe integer),
 * read without a regular expression or a match array; null for anything else
 * (then the general path reads the field).
 */
function plainRevision(tag: string): number | null {
  const end = tag.length - 1;
  if (end < 2 || end > 17 || tag.charCodeAt(0) !== 34 || tag.charCodeAt(end) !== 34 || (tag.charCodeAt(1) === 48 && end > 2)) return null;
  let revision = 0;
  for (let i = 1; i < end; i++) {
    const digit = tag.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return null;
    revision = revision * 10 + digit;
  }
  return Number.isSafeInteger(revision) ? revision : null;
}

/** `guard` (a fresh object) with the writer and TTL of the request added. */
function withWriteOptions(guard: PutOptions, writer: string | undefined, ttlMs: number | undefined): PutOptions {
  if (writer !== undefined) guard.writer = writer;
  if (ttlMs !== undefined) guard.ttlMs = ttlMs;
  return guard;
}

function readPreconditions(req: FastifyRequest): Preconditions {
  return {
    ifMatch: tagListOf('If-Match', req.headers['if-match']),
    ifNoneMatch: tagListOf('If-None-Match', req.headers['if-none-match']),
  };
}

function tagListOf(name: string, raw: string | string[] | undefined): TagList | undefined {
  const parsed = parseTagList(name, raw);
  if ('malformed' in parsed) throw new HttpProblem(400, parsed.malformed);
  return parsed.tags;
}

function expectedOf(list: TagList): number | null | 'absent' | 'value' {
  if (list === '*') return 'value';
  for (const t of list) {
    const r = t.weak ? null : revisionOfTag(t);
    if (r !== null) return r;
  }
  return null;
}

/** The failed check when `current` does not satisfy a store condition (checked again, atomically, by the write). */
function guardFailure(key: string, current: StoredRecord | null, guard: Condition): ConflictError | null {
  const live = current !== null && !isTombstone(current);
  const actual = current?.revision ?? null;
  if (guard.ifRevision !== undefined && actual !== guard.ifRevision) return new ConflictError([{ key, expected: guard.ifRevision, actual }]);
  if (guard.ifAbsent && live) return new ConflictError([{ key, expected: 'absent', actual }]);
  return null;
}

function pathOf(rawUrl: string): string {
  const q = rawUrl.indexOf('?');
  return q < 0 ? rawUrl : rawUrl.slice(0, q);
}

/**
 * The key is taken from the raw request target so that `%2F` (a slash inside
 * a level) and `/` (a level separator) both decode to `/` exactly once, and
 * `GET …/history` is recognised before decoding: a key whose last level is
 * literally `history` is read with that slash encoded (`a%2Fhistory`).
 * An empty path key (`/v1/kv/?key=…`, `/v1/kv//history?key=…`) takes the key
 * from the `key` query parameter: `.` and `..` cannot be path segments, as
 * fetch and proxies remove them even percent-encoded.
 */
function keyOf(req: FastifyRequest): { key: string; history: boolean } {
  const path = pathOf(req.raw.url ?? '');
  if (!path.startsWith(KV)) throw new HttpProblem(400, `keys are addressed as ${KV}{percent-encoded key}`);
  let encoded = path.slice(KV.length);
  const queryKey = queryString(req.query as Record<string, unknown>, 'key');
  let history = false;
  const read = req.method === 'GET' || req.method === 'HEAD';
  if (read && encoded.endsWith('/history') && (encoded.length > '/history'.length || (encoded === '/history' && queryKey !== undefined))) {
    history = true;
    encoded = encoded.slice(0, -'/history'.length);
  }
  let key: string;
  if (encoded === '' && queryKey !== undefined) key = queryKey;
  else if (!encoded.includes('%')) key = encoded; // nothing to decode
  else {
    try {
      key = decodeURIComponent(encoded);
    } catch {
      throw new InvalidKeyError('the key is not validly percent-encoded UTF-8', MAX_KEY_BYTES);
    }
  }
  assertKey(key);
  return { key, history };
}

function allowedMethods(path: string): string | undefined {
  if (path.startsWith(KV) && path.length > KV.length) return 'GET, HEAD, PUT, DELETE, PATCH';
  switch (path) {
    case '/v1/kv':
    case '/healthz':
    case '/readyz':
    case '/metrics':
    case '/openapi.json':
    case '/v1/info':
      return 'GET, HEAD';
    case '/v1/watch':
      return 'GET';
    case '/v1/txn':
      return 'POST';
    default:
      return undefined;
  }
}

function mediaType(req: FastifyRequest): string {
  return String(req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

function writerOf(req: FastifyRequest): string | undefined {
  const w = req.headers['revkit-writer'];
  if (w === undefined) return undefined;
  if (typeof w !== 'string' || !WRITER.test(w)) throw new HttpProblem(400, 'Revkit-Writer must be 1 to 64 characters of [A-Za-z0-9_-]');
  return w;
}

function queryString(q: Record<string, unknown>, name: string): string | undefined {
  const v = q?.[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new HttpProblem(400, `query parameter ${name} must be given once`);
  return v;
}

function queryInt(q: Record<string, unknown>, name: string, min = 1): number | undefined {
  const v = queryString(q, name);
  if (v === undefined) return undefined;
  if (!/^[0-9]{1,16}$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < min) {
    throw new HttpProblem(400, `query parameter ${name} must be an integer ≥ ${min}`);
  }
  return Number(v);
}

type TxnOp =
  | { type: 'check'; key: string; revision: number | null }
  | { type: 'set'; key: string; value: unknown; ttlMs?: number }
  | { type: 'delete'; key: string };

function parseTxn(body: unknown, maxOps: number): TxnOp[] {
  const shape = 'the body must be { "ops": [ { "op": "check", "key", "revision": n | null } | { "op": "set", "key", "value", "ttlMs"? } | { "op": "delete", "key" } ] }';
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpProblem(400, shape);
  const ops = (body as { ops?: unknown }).ops;
  // No ops is a commit that writes nothing, as atomic().commit() is on every store: it answers a committed revision.
  if (!Array.isArray(ops)) throw new HttpProblem(400, shape);
  if (ops.length > maxOps) throw new HttpProblem(413, `a transaction has at most ${maxOps} operations`, { limit: maxOps });
  return ops.map((raw, i): TxnOp => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new HttpProblem(400, `ops[${i}]: ${shape}`);
    const op = raw as Record<string, unknown>;
    const kind = Object.hasOwn(op, 'op') ? op.op : op.type;
    if (typeof op.key !== 'string') throw new HttpProblem(400, `ops[${i}].key must be a string`);
    const key = op.key;
    if (kind === 'check') {
      const r = op.revision;
      if (r !== null && !(typeof r === 'number' && Number.isSafeInteger(r) && r >= 0)) throw new HttpProblem(400, `ops[${i}].revision must be a revision or null (must not exist)`);
      return { type: 'check', key, revision: r as number | null };
    }
    if (kind === 'set') {
      if (!Object.hasOwn(op, 'value')) throw new HttpProblem(400, `ops[${i}].value is missing`);
      const ttl = op.ttlMs;
      if (ttl !== undefined && !(typeof ttl === 'number' && Number.isSafeInteger(ttl) && ttl > 0)) throw new HttpProblem(400, `ops[${i}].ttlMs must be a positive integer`);
      return ttl === undefined ? { type: 'set', key, value: op.value } : { type: 'set', key, value: op.value, ttlMs: ttl as number };
    }
    if (kind === 'delete') return { type: 'delete', key };
    throw new HttpProblem(400, `ops[${i}].op must be "check", "set" or "delete"`);
  });
}

function notFound(key: string, record: StoredRecord | null): HttpProblem {
  if (record !== null && isTombstone(record)) {
    return new HttpProblem(404, `no value at ${JSON.stringify(key)}: it was deleted`, {
      key, deleted: true, revision: record.revision, currentEtag: etagOf(record.revision), ...(record.writer ? { writer: record.writer } : {}), ...(record.updatedAt !== undefined ? { updatedAt: record.updatedAt } : {}),
    });
  }
  return new HttpProblem(404, `no value at ${JSON.stringify(key)}`, { key, currentEtag: null });
}

function setEntryHeaders(reply: FastifyReply, e: Entry): void {
  reply.header('etag', etagOf(e.revision));
  reply.header('revkit-created-revision', String(e.createdRevision));
  reply.header('revkit-updated-at', String(e.updatedAt));
  reply.header('last-modified', httpDate(e.updatedAt));
  reply.header('cache-control', 'no-cache');
  if (e.expiresAt !== undefined) reply.header('revkit-expires-at', String(e.expiresAt));
  if (e.writer !== undefined && WRITER.test(e.writer)) reply.header('revkit-writer', e.writer);
}

// Last-Modified has a resolution of one second, and most writes share their second with the previous one.
let lastDate = { second: Number.NaN, text: '' };

function httpDate(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== lastDate.second) lastDate = { second, text: new Date(ms).toUTCString() };
  return lastDate.text;
}

function metaJson(e: Entry): Record<string, unknown> {
  const meta: Record<string, unknown> = { key: e.key, revision: e.revision, createdRevision: e.createdRevision, updatedAt: e.updatedAt };
  if (e.expiresAt !== undefined) meta.expiresAt = e.expiresAt;
  if (e.writer !== undefined) meta.writer = e.writer;
  return meta;
}

function entryJson(e: Entry): Record<string, unknown> {
  return { ...metaJson(e), value: e.value };
}

function recordJson(r: StoredRecord): Record<string, unknown> {
  if (!isTombstone(r)) return entryJson(r);
  return { key: r.key, revision: r.revision, deleted: true, ...(r.writer !== undefined ? { writer: r.writer } : {}), ...(r.updatedAt !== undefined ? { updatedAt: r.updatedAt } : {}) };
}

/** Stores may name the revision a watch "from now" would start after; none of the interface requires it. */
async function headRevision(store: Store): Promise<number | undefined> {
  const source = store as Store & { headRevision?: () => Promise<number> };
  return typeof source.headRevision === 'function' ? source.headRevision() : undefined;
}

function sendJson(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).type(JSON_TYPE).send(JSON.stringify(body));
}

function sendProblem(reply: FastifyReply, p: Problem, headers: Record<string, string>): FastifyReply {
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  return reply.code(p.status).type(PROBLEM_TYPE).send(JSON.stringify(p));
}

/** What a connection may still send of a body refused for its size (read and dropped) before it is closed. */
const REFUSED_BODY_DRAIN = { bytes: 64 * 1024 * 1024, ms: 10_000 };

/**
 * A body over the limit: the 413 names the limit (and the announced size),
 * and the rest of the body is read and dropped, up to REFUSED_BODY_DRAIN.
 * Closing at once (fastify's way) closes a socket with unread data, which the
 * kernel answers with a reset: a client still sending gets EPIPE and may never
 * read the 413. The connection stays open for the next request, or — when the
 * client asked to close it — is closed in stages (RFC 9112 §9.6): the write
 * side once the 413 is out, the rest once the client has stopped sending.
 */
function refuseBody(req: FastifyRequest, reply: FastifyReply, p: Problem, limit: number): void {
  p.limit = limit;
  const announced = Number(req.headers['content-length']);
  if (Number.isSafeInteger(announced) && announced > limit) p.size = announced;
  const raw = req.raw;
  const socket = raw.socket;
  if (raw.complete || raw.destroyed || !socket) return;
  if (reply.raw.shouldKeepAlive) reply.removeHeader('connection');
  else {
    // node ends the write side when the answer is out, then destroys the socket once that is done:
    // not while the body is still coming, but once it has all been read or the client hung up.
    reply.raw.once('finish', () => {
      if (raw.complete) return;
      socket.removeListener('finish', socket.destroy);
      raw.once('end', () => socket.destroy());
      socket.once('end', () => socket.destroy());
    });
  }
  let dropped = 0;
  const cut = () => socket.destroy();
  const timer = setTimeout(cut, REFUSED_BODY_DRAIN.ms);
  timer.unref();
  raw.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > REFUSED_BODY_DRAIN.bytes) cut();
  });
  raw.once('end', () => clearTimeout(timer));
  raw.once('close', () => clearTimeout(timer));
  raw.resume();
}

/** Errors node's HTTP parser raises before fastify sees a request (malformed request line, huge headers, timeouts). */
function writeRawProblem(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, detail] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'ERR_REQUEST_TIMEOUT', 'the request took too long to arrive']
      : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'ERR_HEADERS_TOO_LARGE', 'the request headers are too large']
        : err.code === 'HPE_URI_TOO_LONG' ? [414, 'ERR_URI_TOO_LONG', 'the request URI is too long']
          : [400, 'ERR_BAD_REQUEST', 'the request is not valid HTTP/1.1'];
  const reason = status === 408 ? 'Request Timeout' : status === 431 ? 'Request Header Fields Too Large' : status === 414 ? 'URI Too Long' : 'Bad Request';
  writeRawResponse(socket, status, reason, problem(status, code, detail));
}

function writeRawResponse(socket: Socket, status: number, reason: string, p: Problem, extraHeaders = ''): void {
  const body = JSON.stringify(p);
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: ${PROBLEM_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}Connection: close\r\n\r\n${body}`);
  }
  socket.destroySoon?.();
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** Deepest nesting of arrays and objects in JSON text (strings skipped). */
function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > max) max = depth;
    } else if (c === 93 || c === 125) depth--;
  }
  return max;
}

