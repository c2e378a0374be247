/**
 * The current leader's value of an election, as it changes: a value when
 * someone leads, null when nobody does. Only a holder of the lock key writes
 * it, so every value shown is one a leader announced.
 */
import { performance } from 'node:perf_hooks';
import { ClosedError, assertOptions, assertSignal, assertStore, deepEqual, isTombstone, type Entry, type Store, type StoredRecord } from '../core/index.js';
import { MAX_TIMER_MS, sleep } from '../core/waiting.js';
import { isTransient } from './acquire.js';
import { DEFAULT_PREFIX, checkedPrefix, lockKeys, stampOf } from './names.js';

export interface ObserveOptions {
  prefix?: string;
  signal?: AbortSignal;
}

const LOOK_AGAIN_SLACK_MS = 100;

export async function* observe<T = unknown>(store: Store, name: string, options: ObserveOptions = {}): AsyncGenerator<T | null> {
  assertStore(store, 'observe()');
  assertOptions(options, 'observe()');
  assertSignal(options.signal, 'observe()');
  const keys = lockKeys(checkedPrefix(options.prefix ?? DEFAULT_PREFIX), name);
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    let shown: { fence: number; value: unknown } | null | undefined;
    const changed = (entry: Entry | null): boolean => {
      const now = leaderOf(entry);
      if (shown !== undefined && (now === null ? shown === null : shown !== null && shown.fence === now.fence && deepEqual(shown.value, now.value))) return false;
      shown = now;
      return true;
    };
    for (let failures = 0; ; ) {
      if (stop.signal.aborted) return;
      let head: number | undefined;
      let record: StoredRecord | null;
      try {
        head = store.headRevision ? await store.headRevision() : undefined;
        record = await store.getRecord(keys.key);
        failures = 0;
      } catch (err) {
        // A store that is briefly away is waited out, as a watch rides out a cut; a closed one ends it.
        if (stop.signal.aborted || ClosedError.is(err) || !isTransient(err)) throw err;
        await nap(Math.min(100 * 2 ** failures++, 2_000), stop.signal);
        continue;
      }
      let current: Entry | null = record !== null && !isTombstone(record) ? record : null;
      if (changed(current)) yield (shown?.value ?? null) as T | null;
      const from = Math.max(head ?? 0, record?.revision ?? 0);
      // A store that can say neither where its head is nor where this key is: watch from now.
      const watch = store.watch({ key: keys.key, ...(from > 0 || head !== undefined ? { fromRevision: from } : {}), signal: stop.signal });
      const it = watch[Symbol.asyncIterator]();
      let pending = it.next();
      let aliveAt = performance.now();
      for (;;) {
        const leaseMs = current ? stampOf(current.value)?.ttlMs : undefined;
        const quiet = leaseMs === undefined ? undefined : aliveAt + leaseMs + LOOK_AGAIN_SLACK_MS - performance.now();
        let timer: NodeJS.Timeout | undefined;
        const step = await Promise.race([
          pending.then((r) => ({ r }), (err: unknown) => ({ err })),
          ...(quiet === undefined ? [] : [new Promise<{ quiet: true }>((resolve) => { timer = setTimeout(() => resolve({ quiet: true }), Math.min(Math.max(0, quiet), MAX_TIMER_MS)); })]),
        ]);
        clearTimeout(timer);
        if ('quiet' in step) {
          // No keepalive for a whole lease: the store may have expired it without an event yet.
          try {
            current = await store.get(keys.key);
          } catch (err) {
            if (stop.signal.aborted || !isTransient(err)) throw err;
            break;
          }
          aliveAt = performance.now();
          if (changed(current)) yield (shown?.value ?? null) as T | null;
          continue;
        }
        if ('err' in step) {
          if (stop.signal.aborted) return;
          break;
        }
        if (step.r.done) {
          if (stop.signal.aborted) return;
          break;
        }
        const event = step.r.value;
        pending = it.next();
        if (event.revision <= (current?.revision ?? 0)) continue;
        current = event.type === 'put' ? event.entry : null;
        aliveAt = performance.now();
        if (changed(current)) yield (shown?.value ?? null) as T | null;
      }
      void it.return?.();
      await nap(100, stop.signal);
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    stop.abort();
  }
}

/** Waits `ms`, or less if `signal` aborts (the loop then ends): never rejects. */
function nap(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, undefined, signal);
}

function leaderOf(entry: Entry | null): { fence: number; value: unknown } | null {
  const stamp = entry ? stampOf(entry.value) : null;
  return entry && stamp && 'value' in stamp ? { fence: entry.createdRevision, value: stamp.value } : null;
}
