import type { CheckCanaryKind } from './canaries.js';

/** What `revkit check` hands each worker process (in the environment variable WORKER_ENV). */
export interface CheckWorkerConfig {
  url: string;
  historyFile: string;
  worker: string;
  clients: number;
  ops: number;
  keys: number;
  seed: number;
  run: string;
  canary?: CheckCanaryKind;
  /** Watchers in this worker (0: none). */
  watchers?: number;
  watchFile?: string;
  /** The URL the watchers use, when not `url` (a stream-cutting proxy in front of a server). */
  watchUrl?: string;
  livenessMs?: number;
}

export const WORKER_ENV = 'REVKIT_CHECK_WORKER';

