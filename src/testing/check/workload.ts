import { BackendError, ConflictError, RetryExhaustedError, type Store } from '../../core/index.js';
import { HistoryRecorder } from '../checker/history.js';
import type { VersionedKvInput, VersionedKvOutput } from '../checker/linearizability.js';
import { RecordingStore } from './recording-store.js';

export interface WorkloadOptions {
  clients: number;
  ops: number;
  keys: number;
  /** Names clients apart across processes: `w<worker>/c<client>`. */
  worker: number | string;
  seed: number;
  /** Names this run's keys apart, so a store that already holds data (an earlier run) checks cleanly. */
  run: string;
  onProgress?: (done: number) => void;
}

/** A small deterministic PRNG (mulberry32), so a seed reproduces the operation mix. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Mixed read / CAS / update() / blind put / delete workload. Every written
 * value is unique (`w1/c2#17`), so a read pins down exactly which write it saw.
 */
export async function runWorkload(store: Store, recorder: HistoryRecorder<VersionedKvInput, VersionedKvOutput>, options: WorkloadOptions): Promise<void> {
  let done = 0;
  const keys = Array.from({ length: options.keys }, (_, i) => `check/${options.run}/k${i}`);
  // Half of the update()s go through one store shared by all clients of this worker, so that
  // concurrent ones are combined and the combiner's reads and writes are checked too.
  const shared = new RecordingStore(store, recorder, `w${options.worker}/combined`);
  const client = async (c: number) => {
    const clientId = `w${options.worker}/c${c}`;
    const recording = new RecordingStore(store, recorder, clientId);
    const random = prng(options.seed * 1000 + c);
    for (let n = 0; n < options.ops; n++) {
      const key = keys[Math.floor(random() * keys.length)] as string;
      const value = `${clientId}#${n}`;
      const roll = random();
      try {
        if (roll < 0.35) {
          await recording.getRecord(key);
        } else if (roll < 0.6) {
          const read = await recording.getRecord(key);
          await recording.put(key, value, read === null ? { ifAbsent: true } : { ifRevision: read.revision });
        } else if (roll < 0.85) {
          const combine = random() < 0.5;
          await (combine ? shared : recording).update<string>(key, (current) => `${value}<${String(current ?? '')}`.slice(0, 64), { combine, maxAttempts: 20, deadlineMs: 10_000 });
        } else if (roll < 0.95) {
          await recording.put(key, value);
        } else {
          await recording.delete(key);
        }
      } catch (err) {
        // Conflicts, exhausted retries and outages are expected outcomes, and are in the history;
        // anything else is a broken store or client, and fails the run.
        if (!ConflictError.is(err) && !RetryExhaustedError.is(err) && !(BackendError.is(err) && err.transient)) throw err;
      }
      options.onProgress?.(++done);
    }
  };
  await Promise.all(Array.from({ length: options.clients }, (_, c) => client(c)));
}
