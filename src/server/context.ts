import { validateCandidate, type Store } from '../core/index.js';
import { open } from '../open.js';
import { Authenticator } from './auth.js';
import { ServerMetrics } from './metrics.js';
import { DEFAULT_LIMITS, DEFAULT_TIMEOUTS, type CreateServerOptions, type ServerLimits, type ServerTimeouts } from './options.js';
import { RevisionClock } from './revision-clock.js';

/** What the server's plugins and routes share: built once by createServer(), handed to each as its options. */
export interface ServerContext {
  readonly store: Store;
  /** Close the store when the server closes. */
  readonly ownsStore: boolean;
  /**
   * Every value this server refuses, a client can tell from its limits and JSON alone (no validate
   * hook; a store it opened itself, with limits.maxValueBytes; no limit of the backend's own beyond
   * it): an HttpStore may then combine update()s, checking what it replaces (GET /v1/info).
   */
  readonly combinableUpdates: boolean;
  readonly limits: ServerLimits;
  readonly timeouts: ServerTimeouts;
  readonly auth: Authenticator;
  readonly metrics: ServerMetrics;
  /** Where a watch "from now" starts, and the Revkit-Clock header of every answer. */
  readonly clock: RevisionClock;
  readonly requirePreconditions: boolean;
  readonly validate: CreateServerOptions['validate'];
  readonly onInternalError: (err: unknown, request: { method: string; url: string }) => void;
  /** Open watch streams: close() ends each. */
  readonly watches: Set<AbortController>;
  /** Set by close(): a request that arrives now gets 503. */
  closing: boolean;
  /** Set by listen(): the DNS-rebinding guard for the address bound (host-check.ts); undefined: every Host passes. */
  hostAllowed: ((host: string | undefined) => boolean) | undefined;
}

/** Backends whose only refusal of a JSON value is its size (NATS adds its message limit, the file its length). */
const VALUE_LIMIT_ONLY = new Set(['memory', 'sqlite', 'postgres', 'redis']);

/** Opens the store (when given a URL) and starts its clock. */
export async function createContext(options: CreateServerOptions): Promise<ServerContext> {
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
  return {
    store, ownsStore, combinableUpdates: options.validate === undefined && (typeof options.store === 'string' || options.storeHasServerLimits === true) && VALUE_LIMIT_ONLY.has(store.backend),
    limits, timeouts, auth, metrics, clock, requirePreconditions, validate: options.validate, onInternalError, watches,
    closing: false, hostAllowed: undefined,
  };
}

/** Runs the server's `validate` option (when given) on a value about to be written. */
export async function validateValue(ctx: ServerContext, key: string, value: unknown): Promise<void> {
  const validate = ctx.validate;
  if (validate) await validateCandidate(key, value, { validate: (v) => validate(key, v) });
}

/** The options every plugin of the server is registered with. */
export interface ServerPluginOptions {
  ctx: ServerContext;
}
