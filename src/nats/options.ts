import type { Durability, StoreOptions } from '../core/index.js';

export interface NatsStoreOptions extends StoreOptions {
  /** Bucket name (`[A-Za-z0-9_-]+`); default `revkit`. */
  bucket?: string;
  /** Stream replicas when the bucket is created; default 1. */
  replicas?: number;
  /** Storage when the bucket is created; default `file`. */
  storage?: 'file' | 'memory';
  /** Revisions kept per key (1–64) when the bucket is created; default 64. */
  history?: number;
  /** Create the bucket when it does not exist; default true. */
  create?: boolean;
  /** Timeout of one request to the server; default 5000 ms. */
  timeoutMs?: number;
  /**
   * What to report as `capabilities.durability`. Detected from the bucket
   * (`memory`, `replicated` for R>1, else `os-buffered`); say `fsync` only when
   * the server runs with `jetstream { sync_interval: always }` (nats-server 2.10+).
   */
  durability?: Durability;
  /**
   * On a replicated bucket (replicas > 1) of a server older than 2.9.21, whose per-key guard does
   * not hold there (features.ts, `replicatedCas`), leave out the stream-wide guard revkit adds
   * (serial.ts): concurrent updates then get lost. Only for the tests that show why the guard is
   * there; code only, never in a URL.
   */
  unsafeReplicatedCas?: boolean;
}

/** Timeout of one request to the server when the options name none. */
export const DEFAULT_TIMEOUT_MS = 5000;
