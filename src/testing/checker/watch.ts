/**
 * The watch guarantees (DESIGN §3, "Watch guarantees"), checked against
 * what was committed.
 *
 * Input: the watch *segments* a run recorded — one per `watch()` call, with
 * how it was started (from now, from a revision some caller was told, or
 * resumed from the last event of a segment that was cut), the moment
 * `watch()` returned, every event it delivered in delivery order, and how it
 * ended — and the *committed changes*: every (key, revision) a write was
 * acknowledged with, plus what `history()` showed at the end of the run,
 * plus changes delivered by some watch that an unacknowledged write of that
 * very value may have made.
 *
 * Every verdict is drawn from orders that are facts, never from durations:
 * revisions, the delivery order within one segment, and the one monotonic
 * clock of the host (the same clock the linearizability checker uses) only
 * to say that a write was *invoked after* `watch()` had returned. A slow
 * machine makes fewer writes qualify; it never makes a correct store fail.
 *
 * - ordered: per key, revisions strictly increase; across keys (where the
 *   backend's watches deliver in revision order, see WatchOrder) they never go down.
 * - unique: no (key, revision) twice in a segment; a segment started from a
 *   revision delivers nothing at or below it (so a resume repeats nothing).
 * - atomic: a revision that is delivered is delivered whole (every committed
 *   write of it that the filter matches), in one run of events.
 * - reliable: no committed change is missing between two delivered ones
 *   (where only per-key order is known: two of the same key).
 * - resumable: from a revision r, nothing after r is missing before the
 *   first delivered event.
 * - from now: a change whose write was invoked after `watch()` returned is
 *   delivered, once the segment delivered anything later (in revision order) or a
 *   later change of that key.
 * - faithful: a delivered change of a key whose every write has a known
 *   outcome is one of its committed changes, with its value.
 */
import { deepEqual } from '../../core/equal.js';
import type { RecordedWatchEvent, ToldKind, WatchEndKind, WatchFilter, WatchMode, WatchSegment } from './watch-record.js';
import { changeId, type CommittedChange } from './committed-changes.js';

export type WatchGuarantee = 'ordered' | 'unique' | 'atomic' | 'reliable' | 'resumable' | 'from-now' | 'faithful';

export interface WatchViolation {
  guarantee: WatchGuarantee;
  segment: string;
  key?: string;
  revision?: number;
  detail: string;
}

export interface WatchReport {
  ok: boolean;
  violations: WatchViolation[];
  /** Per guarantee, how many violations (0 for each that held). */
  byGuarantee: Record<WatchGuarantee, number>;
  segments: number;
  events: number;
  modes: Record<WatchMode, number>;
  told: Record<ToldKind, number>;
  ends: Partial<Record<WatchEndKind | 'killed', number>>;
  /** Changes written after watch() returned that a from-now segment was held to (and delivered). */
  fromNowChecked: number;
  committed: number;
  /** What order was checked (see WatchOrder). */
  order: WatchOrder;
}

/**
 * What revisions say about order on a backend:
 * - `store`: revisions follow one store-wide commit order (memory, SQLite, file, NATS, Redis), so every
 *   watch delivers in revision order across keys, and a watch from now starts at a revision;
 * - `delivery`: commit order may differ from revision order, but watches deliver in revision order
 *   (PostgreSQL settles revisions first); a watch from now starts at a moment, not at a revision;
 * - `key`: only per-key revision order is known.
 */
export type WatchOrder = 'store' | 'delivery' | 'key';

export interface WatchCheckOptions {
  order: WatchOrder;
  /** Keys whose committed changes are all known (every write to them has a known outcome). */
  closedKeys?: ReadonlySet<string>;
  /** At most this many violations are kept (all are counted). */
  maxViolations?: number;
}

const GUARANTEES: WatchGuarantee[] = ['ordered', 'unique', 'atomic', 'reliable', 'resumable', 'from-now', 'faithful'];

const matcher = (f: WatchFilter) => (f.key !== undefined ? (k: string) => k === f.key : (k: string) => k.startsWith(f.prefix ?? ''));


export function checkWatches(segments: readonly WatchSegment[], committed: readonly CommittedChange[], options: WatchCheckOptions): WatchReport {
  const max = options.maxViolations ?? 200;
  const violations: WatchViolation[] = [];
  const byGuarantee = Object.fromEntries(GUARANTEES.map((g) => [g, 0])) as Record<WatchGuarantee, number>;
  const flag = (v: WatchViolation) => {
    byGuarantee[v.guarantee]++;
    if (violations.length < max) violations.push(v);
  };
  const changes = [...committed].sort((a, b) => a.revision - b.revision || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const byId = new Map(changes.map((c) => [changeId(c.key, c.revision), c]));
  const byRevision = new Map<number, CommittedChange[]>();
  for (const c of changes) {
    const list = byRevision.get(c.revision);
    if (list) list.push(c);
    else byRevision.set(c.revision, [c]);
  }
  /** Index of the first change with a revision above r. */
  const above = (r: number) => {
    let lo = 0;
    let hi = changes.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((changes[mid] as CommittedChange).revision <= r) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const segmentsById = new Map(segments.map((s) => [s.id, s]));
  const modes: Record<WatchMode, number> = { now: 0, from: 0, resume: 0 };
  const told: Record<ToldKind, number> = { commit: 0, read: 0, event: 0 };
  const ends: Partial<Record<WatchEndKind | 'killed', number>> = {};
  let events = 0;
  let fromNowChecked = 0;

  for (const s of segments) {
    modes[s.mode]++;
    if (s.told) told[s.told]++;
    const endKind = s.end?.how ?? 'killed';
    ends[endKind] = (ends[endKind] ?? 0) + 1;
    events += s.events.length;
    const matches = matcher(s.filter);
    const where = (e: RecordedWatchEvent) => `${e.key}@${e.revision}`;

    // ordered, unique, atomic (one run of events per revision), faithful
    const seen = new Set<string>();
    const lastOfKey = new Map<string, number>();
    const firstOfKey = new Map<string, number>();
    const finishedRevisions = new Set<number>();
    let previous: RecordedWatchEvent | undefined;
    for (const e of s.events) {
      const eid = changeId(e.key, e.revision);
      if (seen.has(eid)) flag({ guarantee: 'unique', segment: s.id, key: e.key, revision: e.revision, detail: `${where(e)} delivered twice in one watch` });
      seen.add(eid);
      if (!matches(e.key)) flag({ guarantee: 'faithful', segment: s.id, key: e.key, revision: e.revision, detail: `${where(e)} delivered to a watch of ${describeFilter(s.filter)}` });
      if (s.fromRevision !== undefined && e.revision <= s.fromRevision) {
        const again = s.mode === 'resume' && s.resumes !== undefined && segmentsById.get(s.resumes)?.events.some((p) => p.key === e.key && p.revision === e.revision);
        flag({
          guarantee: s.mode === 'resume' ? 'unique' : 'resumable', segment: s.id, key: e.key, revision: e.revision,
          detail: `${where(e)} delivered by a watch from revision ${s.fromRevision}${again ? ', which the watch it resumes had delivered already' : ''}`,
        });
      }
      const lastKey = lastOfKey.get(e.key);
      if (lastKey !== undefined && e.revision < lastKey) {
        flag({ guarantee: 'ordered', segment: s.id, key: e.key, revision: e.revision, detail: `${where(e)} delivered after ${e.key}@${lastKey}` });
      }
      if (previous && e.revision !== previous.revision) {
        if (finishedRevisions.has(e.revision)) {
          flag({ guarantee: 'atomic', segment: s.id, key: e.key, revision: e.revision, detail: `a write of commit ${e.revision} (${e.key}) delivered apart from the rest of it, after ${where(previous)}` });
        } else if (options.order !== 'key' && e.revision < previous.revision) {
          flag({ guarantee: 'ordered', segment: s.id, key: e.key, revision: e.revision, detail: `${where(e)} delivered after ${where(previous)}: revisions went down, on a backend whose watches deliver in revision order` });
        }
        finishedRevisions.add(previous.revision);
      }
      const c = byId.get(eid);
      const closed = options.closedKeys?.has(e.key) ?? false;
      if (c === undefined && closed) {
        flag({ guarantee: 'faithful', segment: s.id, key: e.key, revision: e.revision, detail: `${where(e)} (${e.type}) was delivered, but no write committed it` });
      } else if (c !== undefined && (c.type !== e.type || (e.type === 'put' && !deepEqual(c.value, e.value)))) {
        flag({ guarantee: 'faithful', segment: s.id, key: e.key, revision: e.revision, detail: `${where(e)} delivered as ${show(e)}, but the write committed ${show(c)}` });
      }
      if (!firstOfKey.has(e.key)) firstOfKey.set(e.key, e.revision);
      lastOfKey.set(e.key, Math.max(lastKey ?? 0, e.revision));
      previous = e;
    }
    if (s.events.length === 0) continue;

    // A revision delivered only in part. The last revision of a segment whose watcher was killed
    // (or that failed) may legitimately have been cut short by the consumer itself.
    const last = s.events[s.events.length - 1] as RecordedWatchEvent;
    const whole = s.end !== undefined && s.end.how !== 'error' && s.end.how !== 'ended';
    const deliveredRevisions = new Set(s.events.map((e) => e.revision));
    for (const r of deliveredRevisions) {
      if (r === last.revision && !whole) continue;
      if (s.fromRevision !== undefined && r <= s.fromRevision) continue; // delivered at all: unique / resumable, above
      for (const c of byRevision.get(r) ?? []) {
        if (!matches(c.key) || seen.has(changeId(c.key, r))) continue;
        const got = s.events.filter((e) => e.revision === r).map((e) => e.key);
        flag({ guarantee: 'atomic', segment: s.id, key: c.key, revision: r, detail: `commit ${r} delivered in part: ${got.join(', ')} but not ${c.key} (${committedWrites(byRevision.get(r) ?? [], matches)} written)` });
      }
    }

    // Missing changes: reliable, resumable, from now.
    const maxRevision = Math.max(...s.events.map((e) => e.revision));
    const firstRevision = (s.events[0] as RecordedWatchEvent).revision;
    const lower = s.fromRevision ?? -Infinity;
    for (let i = above(lower); i < changes.length; i++) {
      const c = changes[i] as CommittedChange;
      if (c.revision >= maxRevision) break;
      if (!matches(c.key) || seen.has(changeId(c.key, c.revision)) || deliveredRevisions.has(c.revision)) continue; // partial commits: atomic, above
      const lastKey = lastOfKey.get(c.key);
      const firstKey = firstOfKey.get(c.key);
      // Known to be passed: a later revision was delivered (of any key where revisions are the order, else of this key).
      const passed = options.order !== 'key' || (lastKey !== undefined && c.revision < lastKey);
      if (!passed) continue;
      if (s.mode === 'now') {
        // Between two delivered events it is a gap, whenever its write began; before the first one it may
        // have committed before the start — unless its write was invoked after watch() returned.
        const inside = options.order === 'store' ? c.revision > firstRevision : firstKey !== undefined && c.revision > firstKey;
        if (inside) {
          flag({ guarantee: 'reliable', segment: s.id, key: c.key, revision: c.revision, detail: `${c.key}@${c.revision} skipped by a watch from now: delivered ${neighbours(s.events, c.revision)}` });
        } else if (c.invoked > s.returned) {
          const late = `${((c.invoked - s.returned) / 1000).toFixed(3)} ms`;
          flag({ guarantee: 'from-now', segment: s.id, key: c.key, revision: c.revision, detail: `${c.key}@${c.revision} was made by a write${c.by ? ` of ${c.by}` : ''} invoked ${late} after watch() returned, and never delivered: the watch began with ${where(s.events[0] as RecordedWatchEvent)}` });
        }
        continue;
      }
      const beforeFirst = options.order !== 'key' ? c.revision < firstRevision : firstKey === undefined || c.revision < firstKey;
      flag({
        guarantee: beforeFirst ? 'resumable' : 'reliable', segment: s.id, key: c.key, revision: c.revision,
        detail: beforeFirst
          ? `a watch from revision ${s.fromRevision} (${s.mode === 'resume' ? 'resumed after a cut' : `told by a ${s.told ?? 'caller'}`}) began after ${c.key}@${c.revision}: its first event was ${where(s.events[0] as RecordedWatchEvent)}`
          : `${c.key}@${c.revision} skipped: delivered ${neighbours(s.events, c.revision)}`,
      });
    }
    if (s.mode === 'now') {
      for (const e of s.events) {
        const c = byId.get(changeId(e.key, e.revision));
        if (c && c.invoked > s.returned) fromNowChecked++;
      }
    }
  }

  // A watch that errs with anything but HistoryGoneError or a transient fault, or ends by itself, stops without saying what it skipped.
  for (const s of segments) {
    if (s.end?.how === 'error' && s.end.code !== 'ERR_HISTORY_GONE' && !s.end.transient) {
      flag({ guarantee: 'reliable', segment: s.id, detail: `the watch failed with ${s.end.code ?? 'an error'} (only HistoryGoneError may end a watch)` });
    }
    if (s.end?.how === 'ended') flag({ guarantee: 'reliable', segment: s.id, detail: 'the watch ended by itself while the store was open' });
  }

  return {
    ok: violations.length === 0 && Object.values(byGuarantee).every((n) => n === 0),
    violations, byGuarantee, segments: segments.length, events, modes, told, ends, fromNowChecked, committed: changes.length, order: options.order,
  };
}

function describeFilter(f: WatchFilter): string {
  return f.key !== undefined ? `key ${JSON.stringify(f.key)}` : `prefix ${JSON.stringify(f.prefix ?? '')}`;
}

function show(c: { type: 'put' | 'delete'; value?: unknown }): string {
  return c.type === 'delete' ? 'a delete' : `put ${JSON.stringify(c.value)}`;
}

function committedWrites(list: CommittedChange[], matches: (k: string) => boolean): string {
  return list.filter((c) => matches(c.key)).map((c) => c.key).join(', ');
}

function neighbours(events: readonly RecordedWatchEvent[], revision: number): string {
  let before: RecordedWatchEvent | undefined;
  let after: RecordedWatchEvent | undefined;
  for (const e of events) {
    if (e.revision < revision && (!before || e.revision >= before.revision)) before = e;
    if (e.revision > revision && (!after || e.revision < after.revision)) after = e;
  }
  return `${before ? `${before.key}@${before.revision}` : 'nothing'} then ${after ? `${after.key}@${after.revision}` : 'nothing'}`;
}
