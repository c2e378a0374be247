import type { FastifyInstance } from 'fastify';
import { DEFAULT_MAX_VALUE_BYTES, type Store } from '../core/index.js';
import type { Principal, TokenSpec } from './auth.js';
import type { ServerMetrics } from './metrics.js';

// What the server's routes say in their config, and what a request carries once admitted
// (plugins/admission.ts). Declared here, beside the exported types, so that the published
// typings of revkit/server carry them.
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
  /**
   * `store` (an object) was opened with `limits.maxValueBytes` and nothing else limits its values
   * (as `revkit serve` opens it): clients may then combine update()s (GET /v1/info
   * combinableUpdates). Implied when `store` is a URL.
   */
  storeHasServerLimits?: boolean;
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
