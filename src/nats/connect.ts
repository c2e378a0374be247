/**
 * How a `nats://` URL becomes a connection and the store options it carries.
 *
 * `nats://[user:pass@]host:port[,host2:port…]?bucket=name&replicas=1&storage=file&history=64&timeoutMs=5000`;
 * credentials also as `?token=…` or `?user=…&pass=…`. Any other option is refused (URL_OPTIONS).
 * Several hosts are seeds of one cluster: the client connects to any of them
 * and moves to another member when the one it uses goes away (url.ts).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { InvalidArgumentError } from '../core/index.js';
import { assertKnownUrlOptions } from '../core/redact.js';
import { toBackendError } from './errors.js';
import { DEFAULT_TIMEOUT_MS, type NatsStoreOptions } from './options.js';
import { parseNatsUrl } from './url.js';

/** Options a nats:// URL may carry. */
const URL_OPTIONS = ['bucket', 'replicas', 'storage', 'history', 'timeoutMs', 'create', 'token', 'user', 'pass'] as const;

/** Connects to the servers a URL names; `options` overlaid with the URL's own. */
export async function connectUrl(url: string, options: NatsStoreOptions): Promise<{ nc: NatsConnection; options: NatsStoreOptions }> {
  const parsed = parseNatsUrl(url);
  const q = parsed.query;
  assertKnownUrlOptions(url, 'nats', q.keys(), URL_OPTIONS);
  const opts = storeOptionsOf(q, options);
  const servers = parsed.servers;
  const connectOptions: Record<string, unknown> = {
    servers,
    name: 'revkit',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    // Every request would otherwise build an Error up front to keep the caller's async stack
    // for a possible timeout; that cost a fifth of the client's CPU per update(). revkit wraps
    // driver errors in BackendError with the driver error as `cause`, so nothing is lost.
    noAsyncTraces: true,
  };
  if (parsed.user !== undefined) connectOptions.user = parsed.user;
  if (parsed.pass !== undefined) connectOptions.pass = parsed.pass;
  if (parsed.token !== undefined) connectOptions.token = parsed.token;
  if (q.has('user')) connectOptions.user = q.get('user');
  if (q.has('pass')) connectOptions.pass = q.get('pass');
  if (q.has('token')) connectOptions.token = q.get('token');
  try {
    return { nc: await connect(connectOptions), options: opts };
  } catch (cause) {
    throw toBackendError(cause, false, `cannot connect to NATS at ${servers.join(',')}`);
  }
}

function storeOptionsOf(q: URLSearchParams, options: NatsStoreOptions): NatsStoreOptions {
  const opts: NatsStoreOptions = { ...options };
  if (q.has('bucket')) opts.bucket = q.get('bucket') as string;
  if (q.has('replicas')) opts.replicas = intParam(q, 'replicas');
  if (q.has('history')) opts.history = intParam(q, 'history');
  if (q.has('timeoutMs')) opts.timeoutMs = intParam(q, 'timeoutMs');
  if (q.has('storage')) {
    const s = q.get('storage');
    if (s !== 'file' && s !== 'memory') throw new InvalidArgumentError(`storage must be file or memory, got ${JSON.stringify(s)}`);
    opts.storage = s;
  }
  if (q.has('create')) {
    const c = q.get('create');
    if (c !== 'true' && c !== 'false') throw new InvalidArgumentError(`create must be true or false, got ${JSON.stringify(c)}`);
    opts.create = c === 'true';
  }
  return opts;
}

function intParam(q: URLSearchParams, name: string): number {
  const n = Number(q.get(name));
  if (!/^-?\d+$/.test(q.get(name) ?? '') || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got ${JSON.stringify(q.get(name))}`);
  return n;
}
