import { BackendError, ConflictError, OutcomeUnknownError, RetryExhaustedError, type AtomicOp, type Store } from '../../core/index.js';
import { HistoryRecorder } from '../checker/history.js';
import type { VersionedKvOutput } from '../checker/linearizability.js';
import type { ApiKvInput } from '../checker/api-model.js';
import { DoubleApplyStore, SharedResultStore, type CanaryKind } from '../api-canaries.js';
import { CanaryStore } from '../canary.js';
import { ApiRecorder, RecordingStore } from './recording-store.js';

export interface WorkloadOptions {
  clients: number;
  ops: number;
  keys: number;
  /** Names clients apart across processes: `w<worker>/c<client>`. */
  worker: number | string;
  seed: number;
  /** Names this run's keys apart, so a store that already holds data (an earlier run) checks cleanly. */
  run: string;
  /** A deliberately broken layer, to show the check catches it. */
  canary?: CanaryKind;
  onProgress?: (done: number) => void;
}

export type CheckRecorder = HistoryRecorder<ApiKvInput, VersionedKvOutput>;

/**
 * Where each canary sits: a lost update is the store's fault, so it goes
 * under the store-level recorder; the API-level ones break update() itself,
 * so they go between what clients call and the recorded store operations.
 */
function layers(store: Store, canary: CanaryKind | undefined): { base: Store; front: (recorded: Store) => Store } {
  switch (canary) {
    case 'lost-update': return { base: new CanaryStore(store), front: (s) => s };
    case 'shared-result': return { base: store, front: (s) => new SharedResultStore(s) };
    case 'double-apply': return { base: store, front: (s) => new DoubleApplyStore(s) };
    default: return { base: store, front: (s) => s };
  }
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
 * Mixed read / CAS / update() / atomic / blind put / delete workload on shared keys,
 * plus counters that only see reads and `update(n => n + 1)`. Every written
 * value is unique (`w1/c2#17`, and each update() prepends its own tag), so a
 * read pins down exactly which write it saw and an update()'s result names
 * whose mutation produced it. Both levels are recorded: the store operations
 * (RecordingStore) and what each client is told (ApiRecorder).
 */
export async function runWorkload(store: Store, recorder: CheckRecorder, options: WorkloadOptions): Promise<void> {
  let done = 0;
  const keys = Array.from({ length: options.keys }, (_, i) => `check/${options.run}/k${i}`);
  const counters = Array.from({ length: Math.max(1, Math.ceil(options.keys / 2)) }, (_, i) => `check/${options.run}/n${i}`);
  const { base, front } = layers(store, options.canary);
  // Half of the update()s go through one store shared by all clients of this worker, so that
  // concurrent ones are combined and the combiner's reads and writes are checked too.
  const shared = front(new RecordingStore(base, recorder, `w${options.worker}/combined`));
  const client = async (c: number) => {
    const clientId = `w${options.worker}/c${c}`;
    const recording = new RecordingStore(base, recorder, clientId);
    const own = new ApiRecorder(front(recording), recorder, clientId);
    const viaShared = new ApiRecorder(shared, recorder, clientId);
    const random = prng(options.seed * 1000 + c);
    const pick = (list: string[]) => list[Math.floor(random() * list.length)] as string;
    for (let n = 0; n < options.ops; n++) {
      const value = `${clientId}#${n}`;
      const roll = random();
      const updates = { maxAttempts: 20, deadlineMs: 10_000 };
      try {
        if (roll < 0.08) {
          await recording.getRecord(pick(counters));
        } else if (roll < 0.25) {
          const combine = random() < 0.5;
          await (combine ? viaShared : own).update(pick(counters), { kind: 'increment' }, { ...updates, combine });
        } else if (roll < 0.5) {
          await recording.getRecord(pick(keys));
        } else if (roll < 0.68) {
          const key = pick(keys);
          const read = await recording.getRecord(key);
          await own.put(key, value, read === null ? { ifAbsent: true } : { ifRevision: read.revision });
        } else if (roll < 0.84) {
          const combine = random() < 0.5;
          await (combine ? viaShared : own).update(pick(keys), { kind: 'prepend', tag: value }, { ...updates, combine });
        } else if (roll < 0.9 && base.capabilities.atomic) {
          // A CAS on one key that also writes a second one, in one commit.
          const [first, second] = [pick(keys), pick(keys)];
          const read = await recording.getRecord(first);
          const ops: AtomicOp[] = [{ type: 'check', key: first, revision: read?.revision ?? null }, { type: 'set', key: first, value }];
          if (second !== first) ops.push({ type: 'set', key: second, value: `${value}+` });
          await own.atomic(ops);
        } else if (roll < 0.96) {
          await own.put(pick(keys), value);
        } else {
          await own.delete(pick(keys));
        }
      } catch (err) {
        // Conflicts, exhausted retries and outages are expected outcomes, and are in the history;
        // anything else is a broken store or client, and fails the run.
        const expected = ConflictError.is(err) || RetryExhaustedError.is(err) || OutcomeUnknownError.is(err) || (BackendError.is(err) && err.transient);
        if (!expected) throw err;
      }
      options.onProgress?.(++done);
    }
  };
  await Promise.all(Array.from({ length: options.clients }, (_, c) => client(c)));
}
