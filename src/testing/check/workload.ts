import { BackendError, ConflictError, OutcomeUnknownError, RetryExhaustedError, type AtomicOp, type Store } from '../../core/index.js';
import { HistoryRecorder } from '../checker/history.js';
import type { VersionedKvOutput } from '../checker/versioned-kv-model.js';
import type { ApiKvInput } from '../checker/api-model.js';
import { DoubleApplyStore, SharedResultStore } from '../api-canaries.js';
import { CanaryStore } from '../canary.js';
import { watchCanary, watchCanaryKinds, type WatchCanaryKind } from '../watch-canaries.js';
import { ApiRecorder, RecordingStore, type HistorySink } from './recording-store.js';
import { startWatchers, ToldRevisions, type WatchLogRecord } from './watch-workload.js';
import type { CheckCanaryKind } from './canaries.js';

export { prng } from './prng.js';
import { prng } from './prng.js';

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
  canary?: CheckCanaryKind;
  onProgress?: (done: number) => void;
  /** Watchers beside the clients (0: none; skipped where the store has no watch). */
  watchers?: number;
  /** Where the watchers' segments and events go (required when there are watchers). */
  watchLog?: (record: WatchLogRecord) => void;
  /** The store the watchers use, when not `store` itself (over HTTP: a connection through a proxy that cuts streams). */
  watchStore?: Store;
  /** Liveness bound of a draining watch (see startWatchers). */
  livenessMs?: number;
}

export type CheckRecorder = HistoryRecorder<ApiKvInput, VersionedKvOutput>;

/**
 * Where each canary sits: a lost update is the store's fault, so it goes
 * under the store-level recorder; the API-level ones break update() itself,
 * so they go between what clients call and the recorded store operations.
 */
function layers(store: Store, canary: CheckCanaryKind | undefined): { base: Store; front: (recorded: Store) => Store } {
  if (canary !== undefined && (watchCanaryKinds as readonly string[]).includes(canary)) return { base: watchCanary(canary as WatchCanaryKind, store), front: (s) => s };
  switch (canary) {
    case 'lost-update': return { base: new CanaryStore(store), front: (s) => s };
    case 'shared-result': return { base: store, front: (s) => new SharedResultStore(s) };
    case 'double-apply': return { base: store, front: (s) => new DoubleApplyStore(s) };
    default: return { base: store, front: (s) => s };
  }
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
  // Every revision a client is told (a write's result, a read) is one a watch may start from.
  const told = new ToldRevisions();
  const sink = tell(recorder, told);
  // Half of the update()s go through one store shared by all clients of this worker, so that
  // concurrent ones are combined and the combiner's reads and writes are checked too.
  const shared = front(new RecordingStore(base, sink, `w${options.worker}/combined`));
  const watchBase = options.watchStore ? layers(options.watchStore, options.canary).base : base;
  const watchers = (options.watchers ?? 0) > 0 && watchBase.capabilities.watch && options.watchLog
    ? startWatchers({
      store: watchBase, writer: (clientId) => new ApiRecorder(front(new RecordingStore(base, sink, clientId)), sink, clientId), prefix: `check/${options.run}/`, keys, watchers: options.watchers ?? 0,
      worker: options.worker, seed: options.seed, told, log: options.watchLog, total: options.clients * options.ops,
      ...(options.livenessMs !== undefined ? { livenessMs: options.livenessMs } : {}),
    })
    : undefined;
  const client = async (c: number) => {
    const clientId = `w${options.worker}/c${c}`;
    const recording = new RecordingStore(base, sink, clientId);
    const own = new ApiRecorder(front(recording), sink, clientId);
    const viaShared = new ApiRecorder(shared, sink, clientId);
    const alongside = new ApiRecorder(shared, sink, `${clientId}/b`);
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
          if (combine && random() < 0.35) {
            // Two increments of one counter at once through the shared store: they are combined whatever the
            // timing of the other clients, and each caller must still be told its own result.
            const key = pick(counters);
            const settled = await Promise.allSettled([viaShared, alongside].map((c) => c.update(key, { kind: 'increment' }, { ...updates, combine })));
            for (const r of settled) if (r.status === 'rejected') throw r.reason;
          } else {
            await (combine ? viaShared : own).update(pick(counters), { kind: 'increment' }, { ...updates, combine });
          }
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
      watchers?.progress();
    }
  };
  await Promise.all(Array.from({ length: options.clients }, (_, c) => client(c)));
  await watchers?.finish();
}

/** The recorder, also noting every revision an operation answered with. */
function tell(recorder: CheckRecorder, told: ToldRevisions): HistorySink {
  const reads = new Set<number>();
  return {
    invoke(clientId, input) {
      const id = recorder.invoke(clientId, input);
      if (input.op === 'get') reads.add(id);
      return id;
    },
    ok(id, output) {
      recorder.ok(id, output);
      const isRead = reads.delete(id);
      const revision = (output as { revision?: unknown } | null)?.revision;
      if (typeof revision === 'number' && (output as { ok?: boolean }).ok !== false) told.add(revision, isRead ? 'read' : 'commit');
    },
    fail(id, output) {
      reads.delete(id);
      recorder.fail(id, output);
      // A refused condition names the current revision: one more revision a caller was told.
      const actual = (output as { actual?: unknown } | undefined)?.actual;
      if (typeof actual === 'number') told.add(actual, 'read');
    },
    unknown(id) {
      reads.delete(id);
      recorder.unknown(id);
    },
  };
}
