/**
 * The watching half of `revkit check`'s workload: each worker runs a few
 * watchers beside its writing clients. A watcher runs one watch *segment*
 * after another and records each (start, every event delivered, end) so the
 * checker can hold it to the watch guarantees (checker/watch.ts):
 *
 * - from now — then, right after watch() returned and before asking for the
 *   first event, it commits a probe (an atomic commit of two keys where the
 *   store has atomic(), else a put), which the watch must deliver; every
 *   write of every process invoked after that moment is held to it as well;
 * - from a revision this worker was told (a write's result, a read, an
 *   earlier event), sometimes on one key only;
 * - resumed: after a few events the watcher cuts the stream (at a commit
 *   boundary: when an event of a new revision arrives it aborts and leaves
 *   that event undelivered) and watches again from the revision of the last
 *   event it had delivered.
 *
 * At the end the worker *drains*: it writes two sentinels under the watched
 * prefix, and every running watch of the prefix is read until one of them
 * arrives, so a change dropped near the end is followed by a delivered one.
 */
import { BackendError, HistoryGoneError, RevkitError, type AtomicOp, type Store, type WatchEvent } from '../../core/index.js';
import { hrtimeMicros } from '../checker/history.js';
import type { ToldKind, WatchEndKind, WatchFilter, WatchMode } from '../checker/watch-record.js';
import { prng } from './prng.js';

export type WatchLogRecord =
  | { t: 'start'; s: string; watcher: string; mode: WatchMode; filter: WatchFilter; from?: number; told?: ToldKind; resumes?: string; time: number }
  | { t: 'ev'; s: string; key: string; rev: number; type: 'put' | 'delete'; value?: unknown }
  | { t: 'end'; s: string; how: WatchEndKind; code?: string; transient?: boolean };

/** Revisions this worker was told (results, reads, events): where watches "from a revision" start. */
export class ToldRevisions {
  private readonly lists: Record<ToldKind, number[]> = { commit: [], read: [], event: [] };

  add(revision: number, kind: ToldKind): void {
    if (!Number.isSafeInteger(revision) || revision <= 0) return;
    const list = this.lists[kind];
    list.push(revision);
    if (list.length > 4096) list.splice(0, 2048);
  }

  /** A kind at random among those told so far, then mostly a recent revision of it (a short replay), sometimes any. */
  pick(random: () => number): { revision: number; kind: ToldKind } | undefined {
    const kinds = (Object.keys(this.lists) as ToldKind[]).filter((k) => this.lists[k].length > 0);
    if (kinds.length === 0) return undefined;
    const kind = kinds[Math.floor(random() * kinds.length)] as ToldKind;
    const list = this.lists[kind];
    const span = random() < 0.75 ? Math.min(40, list.length) : list.length;
    return { revision: list[list.length - 1 - Math.floor(random() * span)] as number, kind };
  }
}

export interface WatchersOptions {
  /** The store watches run on (a watch canary, when one is checked). */
  store: Store;
  /** A recording writer per client id, for the probes and sentinels (they are part of the history, at both levels). */
  writer: (clientId: string) => Writer;
  /** The run's prefix: every key the workload writes is under it. */
  prefix: string;
  keys: readonly string[];
  watchers: number;
  worker: number | string;
  seed: number;
  told: ToldRevisions;
  log: (record: WatchLogRecord) => void;
  /** Operations this worker's clients will make in all: fresh watches are paced by their progress. */
  total: number;
  /** How long a draining watch may take to deliver a sentinel before it is recorded as stalled; default 30 s. A liveness bound only: a stall is never a violation. */
  livenessMs?: number;
}

/** What the watchers write with: the workload's ApiRecorder. */
export interface Writer {
  put(key: string, value: unknown): Promise<unknown>;
  atomic(ops: readonly AtomicOp[]): Promise<unknown>;
}

export interface Watchers {
  /** Call after each operation of a client. */
  progress(): void;
  /** Writes the sentinels, reads every watch of the prefix up to them, and ends all watchers. */
  finish(): Promise<void>;
}

const SEGMENTS_PER_WATCHER = 12;

export function startWatchers(o: WatchersOptions): Watchers {
  const sentinels = `${o.prefix}end/${o.worker}/`;
  let done = 0;
  let draining = false;
  let waiters: { at: number; resolve: () => void }[] = [];
  let startDrain!: () => void;
  const drainStarted = new Promise<void>((resolve) => (startDrain = resolve));
  const step = Math.max(1, Math.floor(o.total / SEGMENTS_PER_WATCHER));
  const livenessMs = o.livenessMs ?? 30_000;

  const until = (at: number) => (done >= at || draining ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ at, resolve })));
  const wakeAll = () => {
    for (const w of waiters) w.resolve();
    waiters = [];
  };

  const watcher = async (index: number) => {
    const name = `w${o.worker}/watch${index}`;
    const random = prng(o.seed * 7919 + index * 104_729 + 17);
    const writer = o.writer(name);
    let n = 0;
    let threshold = 0;
    let resume: { from: number; filter: WatchFilter; after: string } | undefined;
    for (;;) {
      if (!resume) {
        if (draining) return;
        await until(threshold);
        if (draining) return;
        threshold = done + step;
      }
      const seg = `${name}#${n++}`;
      let mode: WatchMode;
      let filter: WatchFilter;
      let from: number | undefined;
      let told: ToldKind | undefined;
      const resumes = resume?.after;
      if (resume) {
        [mode, filter, from] = ['resume', resume.filter, resume.from];
      } else {
        const pick = random() < 0.5 ? undefined : o.told.pick(random);
        if (pick === undefined) {
          [mode, filter] = ['now', { prefix: o.prefix }];
        } else {
          [mode, from, told] = ['from', pick.revision, pick.kind];
          filter = random() < 0.25 ? { key: o.keys[Math.floor(random() * o.keys.length)] as string } : { prefix: o.prefix };
        }
      }
      resume = undefined;
      const controller = new AbortController();
      const start = (time: number) => o.log({
        t: 'start', s: seg, watcher: name, mode, filter, time,
        ...(from !== undefined ? { from } : {}), ...(told ? { told } : {}), ...(resumes ? { resumes } : {}),
      });
      let iterator: AsyncIterator<WatchEvent>;
      try {
        iterator = o.store.watch({ ...filter, ...(from !== undefined ? { fromRevision: from } : {}), signal: controller.signal })[Symbol.asyncIterator]();
      } catch (err) {
        start(hrtimeMicros());
        o.log({ t: 'end', s: seg, how: 'error', ...errorFields(err) });
        continue;
      }
      start(hrtimeMicros());
      let stallTimer: NodeJS.Timeout | undefined;
      let pending: Promise<IteratorResult<WatchEvent>> | undefined;
      const end = (how: WatchEndKind, extra: { code?: string; transient?: boolean } = {}) => {
        // A next() left waiting settles when the watch is aborted; whatever it brings is not delivered.
        pending?.catch(() => undefined);
        if (stallTimer) clearTimeout(stallTimer);
        controller.abort();
        iterator.return?.().catch(() => undefined);
        o.log({ t: 'end', s: seg, how, ...extra });
      };
      if (mode === 'now') await probe(o, writer, `${name}#p${n}`, random);
      const quota = 3 + Math.floor(random() * 18);
      const cutting = random() < 0.6;
      let count = 0;
      let last: number | undefined;
      let stalled: Promise<'stall'> | undefined;
      for (;;) {
        pending ??= iterator.next();
        let r: IteratorResult<WatchEvent> | 'drain' | 'stall';
        try {
          // Draining, a watch of the prefix waits for a sentinel, within the liveness bound; any other watch ends.
          const other = draining && filter.key === undefined
            ? (stalled ??= new Promise<'stall'>((resolve) => (stallTimer = setTimeout(() => resolve('stall'), livenessMs))))
            : drainStarted.then(() => 'drain' as const);
          r = await Promise.race([pending, other]);
        } catch (err) {
          if (HistoryGoneError.is(err)) {
            end('gone', { code: err.code });
          } else {
            const fields = errorFields(err);
            end('error', fields);
            const at = last ?? from;
            // A transient fault is resumed from where the watch had got to, as a consumer would.
            if (fields.transient && at !== undefined) resume = { from: at, filter, after: seg };
          }
          break;
        }
        if (r === 'drain') {
          // A watch of one key may never see a sentinel: it ends here, between two of its events.
          if (filter.key !== undefined) {
            end('stopped');
            break;
          }
          continue;
        }
        if (r === 'stall') {
          end('stalled');
          break;
        }
        pending = undefined;
        if (r.done) {
          end('ended');
          break;
        }
        const event = r.value;
        if (!draining && count >= quota && event.revision !== last && last !== undefined) {
          end(cutting ? 'cut' : 'stopped');
          if (cutting) resume = { from: last, filter, after: seg };
          break;
        }
        o.log({ t: 'ev', s: seg, key: event.key, rev: event.revision, type: event.type, ...(event.type === 'put' ? { value: event.entry.value } : {}) });
        count++;
        last = event.revision;
        o.told.add(event.revision, 'event');
        if (draining && event.key.startsWith(sentinels)) {
          end('drained');
          break;
        }
      }
    }
  };

  const running = Array.from({ length: o.watchers }, (_, i) => watcher(i));
  return {
    progress() {
      done++;
      if (waiters.length && waiters.some((w) => done >= w.at)) {
        const ready = waiters.filter((w) => done >= w.at);
        waiters = waiters.filter((w) => done < w.at);
        for (const w of ready) w.resolve();
      }
    },
    async finish() {
      draining = true;
      wakeAll();
      startDrain();
      const writer = o.writer(`w${o.worker}/end`);
      // Two sentinels, one after the other: a watch that loses one change still gets the other.
      for (const n of [1, 2]) {
        for (let attempt = 1; ; attempt++) {
          try {
            await writer.put(`${sentinels}${n}`, `end ${String(o.worker)} ${n}`);
            break;
          } catch (err) {
            if (!(BackendError.is(err) && err.transient) || attempt >= 10) throw err;
          }
        }
      }
      await Promise.all(running);
    },
  };
}

/** The write a watch "from now" must deliver: made right after watch() returned, before the first next(). */
async function probe(o: WatchersOptions, writer: Writer, value: string, random: () => number): Promise<void> {
  const pick = () => o.keys[Math.floor(random() * o.keys.length)] as string;
  const first = pick();
  let second = pick();
  if (second === first) second = o.keys[(o.keys.indexOf(first) + 1) % o.keys.length] as string;
  try {
    if (o.store.capabilities.atomic && second !== first) await writer.atomic([{ type: 'set', key: first, value }, { type: 'set', key: second, value: `${value}+` }]);
    else await writer.put(first, value);
  } catch {
    // Its outcome is in the history (ok, failed or unknown), which is all the checker needs.
  }
}

function errorFields(err: unknown): { code: string; transient?: boolean } {
  if (!RevkitError.is(err)) return { code: `not a RevkitError: ${String(err).slice(0, 120)}` };
  return BackendError.is(err) ? { code: err.code, transient: err.transient } : { code: err.code };
}
