import {
  AsyncQueue, BackendError, HistoryGoneError, RevkitError, backlogged, cursorPrecedes as precedes, isAfterCursor as after, keyFilter,
  type ChangeCursor as Cursor, type WatchEvent, type WatchOptions,
} from '../core/index.js';
import type { Row } from './rows.js';
import { likePattern } from './sql/common.js';

/**
 * A mark: the last revision handed out (s), then the transactions that may
 * still commit a revision of this store (see holdersOf in sql/watch.ts).
 * `holders` null: not looked up (s was settled already).
 */
export interface Mark {
  s: number;
  holders: string[] | null;
}

/** The shared part of a watch "from now"'s start: snapshot S0, then a mark, and the server clock. */
export interface StartMark {
  snap: string;
  s: number;
  holders: string[];
  /** Server clock (ms) read during the start statement. */
  serverMs: number;
  /** performance.now() when its answer arrived. */
  receivedAt: number;
  /** A revision settled before S0. */
  low: number;
  /** meta.pruned_through in S0. */
  pruned: number;
}

/** One watcher's start: the shared mark plus its own bounds. */
export interface WatchStart extends StartMark {
  /** A revision the store had seen before watch() was called. */
  known: number;
  /** Server ms at or before the moment watch() was called. */
  since: number;
  ready: boolean;
}

/** What the hub needs from its store (WatchQueries in watch-source.ts implements it). */
export interface WatchSource {
  readonly pollMs: number;
  /** A revision up to which every revision is settled; only grows. */
  settledHorizon: number;
  readonly isClosed: boolean;
  watchMark(settled: number): Promise<Mark>;
  watchQuery(params: WatchQueryParams): Promise<Row[]>;
  watchStart(): Promise<StartMark>;
  watchStartRows(start: WatchStart, patterns: string[]): Promise<Row[]>;
  decodeChange(row: Row): WatchEvent;
  /** Throws the DataLostError owed to a watch begun at loss-detection epoch `begun` (lineage.ts owedTo). */
  owedTo(begun: number): void;
}

export interface WatchQueryParams {
  settled: number;
  from: Cursor;
  patterns: string[];
  /** Set when every watcher watches one key: those keys (the query then uses the primary key). */
  keys?: string[];
  limit: number;
}

/**
 * How far before the moment watch() was called a "from now" start reaches
 * back, beyond the measured round trip: the server clock's rounding to ms
 * and a step of the server's clock by up to this much between watch() and
 * its start statement (a few ms) cannot make it miss a write. The price: a
 * write by another process that began up to this long (plus the start's
 * round trip) before watch() was called may be delivered too.
 */
export const START_CLOCK_MARGIN_MS = 250;

class Subscriber {
  /** undefined until a "from now" watch has its start. */
  cursor: Cursor | undefined;
  start: WatchStart | undefined;
  readonly matches: (key: string) => boolean;
  readonly pattern: string;
  /** The one key watched, if the watch is of one key. */
  readonly key: string | undefined;

  /**
   * `startedAt` (performance.now()) and `known` (a revision the store had
   * seen) are taken when watch() is called: a "from now" start reaches back
   * to them, however late its start statement runs.
   */
  constructor(options: WatchOptions, readonly queue: AsyncQueue<WatchEvent>, readonly startedAt: number, readonly known: number, readonly begun: number) {
    this.matches = keyFilter(options);
    this.pattern = options.key !== undefined ? likePattern(options.key, false) : likePattern(options.prefix ?? '', true);
    this.key = options.key;
    if (options.fromRevision !== undefined) this.cursor = { rev: options.fromRevision, key: null };
  }
}

/**
 * Every watch() of one store, served by one poller: per poll one mark and one
 * query of the change log for all watchers' keys, fanned out in process.
 * It delivers, in revision order, the changes up to W — the highest revision
 * up to which every transaction that drew a revision has ended (see markSql:
 * a mark (s, holders) is settled once none of its holders holds the store's
 * revision sequence any more). That makes it exactly-once and gap-free even
 * when transactions commit out of revision order (revision 7 committing after
 * revision 8 is held back until 7 is settled), and only transactions that
 * drew a revision of this store can hold it back — not an idle transaction
 * elsewhere on the cluster. Ordering by revision implies per-key order. Each
 * watcher keeps its own cursor: one query from the slowest serves everyone
 * (each skips what it already has), and when that page is full, those already
 * past its end get a second page in the same round, so a watch catching up a
 * backlog does not hold back the others (as SQLite's hub does). Transient
 * errors (restart) are ridden out: cursors are kept and polling resumes.
 */
export class WatchHub {
  private static readonly BATCH = 500;
  /** Marks kept waiting to settle at most (the oldest and the newest are kept). */
  private static readonly MAX_PENDING = 4;
  private readonly subs = new Set<Subscriber>();
  private running = false;
  private dirty = false;
  /** A wake-up for a watched key: worth polling again soon while revisions are unsettled. */
  private eager = false;
  /** The quick re-poll delay while something waits to settle; grows while nothing settles. */
  private quickMs = QUICK_MIN_MS;
  private waiter: (() => void) | undefined;
  private settled = 0;
  private pending: Array<{ s: number; holders: string[] }> = [];

  constructor(private readonly source: WatchSource, private readonly onIdle: () => void) {}

  /** A watcher passed over for its backlog can read on. */
  private readonly resume = () => this.wake();

  get size(): number {
    return this.subs.size;
  }

  add(options: WatchOptions, queue: AsyncQueue<WatchEvent>, startedAt: number, known: number, begun = 0): void {
    const sub = new Subscriber(options, queue, startedAt, known, begun);
    this.subs.add(sub);
    queue.onClose(() => this.remove(sub));
    this.wake();
    if (!this.running) {
      this.running = true;
      void this.run();
    }
  }

  /** Whether a write of one of `keys` concerns a watcher (undefined: unknown keys). */
  wants(keys: readonly string[] | undefined): boolean {
    if (keys === undefined) return this.subs.size > 0;
    for (const sub of this.subs) for (const k of keys) if (sub.matches(k)) return true;
    return false;
  }

  wake(): void {
    this.dirty = true;
    this.eager = true;
    this.quickMs = QUICK_MIN_MS;
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  endAll(): void {
    for (const sub of [...this.subs]) sub.queue.end();
    this.subs.clear();
    this.wake();
  }

  private remove(sub: Subscriber): void {
    this.subs.delete(sub);
    if (this.subs.size === 0) {
      this.wake();
      this.onIdle();
    }
  }

  private fail(sub: Subscriber, err: unknown): void {
    this.subs.delete(sub);
    sub.queue.fail(RevkitError.is(err) ? err : new BackendError('watch failed', { transient: false, cause: err }));
  }

  /**
   * Fails a watch owed a DataLostError (right before it would be handed
   * changes): this process delivered changes that a failover lost, and the
   * watch began before it learned that an operator accepted that — however
   * soon the acceptance came (lineage.ts owedTo). True when it failed.
   */
  private failIfOwed(sub: Subscriber): boolean {
    try {
      this.source.owedTo(sub.begun);
      return false;
    } catch (err) {
      this.fail(sub, err);
      return true;
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.dirty || this.subs.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiter = undefined;
        resolve();
      }, ms);
      this.waiter = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private async run(): Promise<void> {
    let backoff = 100;
    while (this.subs.size > 0 && !this.source.isClosed) {
      try {
        const more = await this.poll();
        backoff = 100;
        if (more) continue;
        const starting = [...this.subs].some((s) => s.cursor === undefined);
        // Revisions handed out but not yet settled: look again soon if a watched key may be among them
        // (sooner at first; a transaction that stays open is looked at less and less often).
        if (starting || (this.pending.length > 0 && this.eager)) {
          const ms = this.quickMs;
          this.quickMs = Math.min(this.quickMs * 2, this.source.pollMs);
          await this.sleep(ms);
        } else {
          await this.sleep(this.source.pollMs);
        }
      } catch (err) {
        if (BackendError.is(err) && err.transient) {
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, 2000);
          continue;
        }
        for (const sub of [...this.subs]) this.fail(sub, err);
      }
    }
    this.running = false;
    // A watcher added while the loop was finishing found it still running.
    if (this.subs.size > 0 && !this.source.isClosed) {
      this.running = true;
      void this.run();
    }
  }

  /** One round; true when a batch was full (more to read at once). */
  private async poll(): Promise<boolean> {
    this.dirty = false;
    this.settled = Math.max(this.settled, this.source.settledHorizon);
    // 1. "From now" watchers without a start: one start statement for all of them.
    const fresh = [...this.subs].filter((s) => s.cursor === undefined && s.start === undefined);
    if (fresh.length > 0) {
      const base = await this.source.watchStart();
      for (const sub of fresh) {
        // The server's clock when watch() was called, at the latest: the answer's server time
        // minus the whole time since the call (the server read its clock before answering).
        const since = Math.floor(base.serverMs - (base.receivedAt - sub.startedAt)) - START_CLOCK_MARGIN_MS;
        sub.start = { ...base, known: Math.min(sub.known, base.s), since, ready: false };
      }
    }
    // 2. A mark: which earlier marks (and starts) have settled.
    const mark = await this.source.watchMark(this.settled);
    const now = mark.holders === null ? undefined : new Set(mark.holders);
    const gone = (holders: string[]) => now !== undefined && holders.every((h) => !now.has(h));
    let w = this.settled;
    for (const p of this.pending) if (gone(p.holders)) w = Math.max(w, p.s);
    if (mark.s > w && mark.holders !== null) {
      if (mark.holders.length === 0) w = mark.s;
      else this.pending.push({ s: mark.s, holders: mark.holders });
    }
    const before = this.pending.length;
    this.pending = this.pending.filter((p) => p.s > w && !gone(p.holders));
    if (this.pending.length > WatchHub.MAX_PENDING) this.pending.splice(1, this.pending.length - WatchHub.MAX_PENDING);
    if (w > this.settled || this.pending.length < before) this.quickMs = QUICK_MIN_MS;
    this.settled = w;
    this.source.settledHorizon = Math.max(this.source.settledHorizon, w);
    for (const sub of this.subs) {
      const start = sub.start;
      if (start && !start.ready && (start.s <= w || gone(start.holders))) start.ready = true;
    }
    // 3. The changes up to W, for every watcher that has a cursor (a new snapshot, after the mark).
    // When the page from the slowest cursor is full, the watchers already past its end get a page
    // of their own in the same round: a watch catching up a backlog does not hold back the others.
    // One-key watches far behind every prefix watch are read apart, by their keys.
    // A watcher whose consumer has a full backlog waiting is passed over, its cursor kept (backlogged in core).
    let full = false;
    const reading = [...this.subs].filter((s) => s.cursor !== undefined && !backlogged(s.queue, this.resume));
    for (const group of WatchHub.groups(reading)) {
      const page = await this.deliver(group, w);
      if (page.full && page.ahead.length > 0) await this.deliver(page.ahead, w);
      full ||= page.full;
    }
    // 4. Starts whose mark has settled (a new snapshot, after the mark that showed it).
    await this.startWatchers();
    if (this.pending.length === 0) this.eager = false;
    return full;
  }

  /**
   * The watchers with a cursor, split when one-key watches are behind every
   * prefix watch: a page read for a prefix (LIKE, in revision order) from
   * their cursor would be mostly rows no watcher needs — the prefix watches
   * already have them — and would take the laggards a round per page; read by
   * their keys (the primary key), they catch up at once.
   */
  private static groups(subs: Subscriber[]): Subscriber[][] {
    let slowestPrefix: Cursor | undefined;
    for (const sub of subs) if (sub.key === undefined && (!slowestPrefix || precedes(sub.cursor as Cursor, slowestPrefix))) slowestPrefix = sub.cursor;
    if (slowestPrefix === undefined) return [subs];
    const laggards = subs.filter((sub) => sub.key !== undefined && precedes(sub.cursor as Cursor, slowestPrefix as Cursor));
    return laggards.length === 0 ? [subs] : [laggards, subs.filter((sub) => !laggards.includes(sub))];
  }

  /**
   * One page of changes up to W from the slowest cursor of `group`, for the
   * watchers of `group` behind its end; `ahead`: the others, when it is full.
   */
  private async deliver(group: Subscriber[], w: number): Promise<{ full: boolean; ahead: Subscriber[] }> {
    if (group.length === 0) return { full: false, ahead: [] };
    let from: Cursor | undefined;
    for (const sub of group) if (!from || precedes(sub.cursor as Cursor, from)) from = sub.cursor;
    const patterns = [...new Set(group.map((s) => s.pattern))];
    const query: WatchQueryParams = { settled: w, from: from as Cursor, patterns, limit: WatchHub.BATCH };
    if (group.every((s) => s.key !== undefined)) query.keys = [...new Set(group.map((s) => s.key as string))];
    const rows = await this.source.watchQuery(query);
    const head = rows[0];
    if (!head) throw new BackendError('watch query returned no row', { transient: true });
    const changes = rows.filter((r) => r.key !== null && r.key !== undefined);
    const full = changes.length === WatchHub.BATCH;
    const last = changes[changes.length - 1];
    const reached: Cursor = full && last ? { rev: Number(last.revision), key: last.key as string } : { rev: w, key: null };
    const ahead = full ? group.filter((s) => !precedes(s.cursor as Cursor, reached)) : [];
    const served = ahead.length === 0 ? group : group.filter((s) => precedes(s.cursor as Cursor, reached));
    for (const sub of served) this.failIfOwed(sub);
    const pruned = Number(head.pruned);
    for (const sub of served) {
      const c = sub.cursor as Cursor;
      // Inside a revision (key set) the watch still owes that revision's other changes: the history gone is after c.rev − 1.
      if (pruned > c.rev || (pruned === c.rev && c.key !== null)) this.fail(sub, new HistoryGoneError(c.key !== null ? c.rev - 1 : c.rev, pruned + 1));
    }
    for (const row of changes) {
      const key = row.key as string;
      const rev = Number(row.revision);
      for (const sub of served) {
        const c = sub.cursor as Cursor;
        if (!sub.queue.closed && this.subs.has(sub) && sub.matches(key) && after(rev, key, c)) {
          // A value this store cannot decode (another codec wrote it) ends the watches it is for, not the others.
          if (!this.push(sub, row)) continue;
          sub.cursor = { rev, key };
        }
      }
    }
    for (const sub of served) if (precedes(sub.cursor as Cursor, reached)) sub.cursor = reached;
    return { full, ahead };
  }

  /** Hands `row` to `sub` as an event; false (and `sub` failed) when its value cannot be decoded. */
  private push(sub: Subscriber, row: Row): boolean {
    let event: WatchEvent;
    try {
      event = this.source.decodeChange(row);
    } catch (err) {
      this.fail(sub, err);
      return false;
    }
    sub.queue.push(event);
    return true;
  }

  /**
   * "From now" watchers whose start mark is settled (every holder of a
   * revision at or below it has ended): deliver what the start owes (see
   * startRowsSql), then continue from the mark like any other watcher.
   */
  private async startWatchers(): Promise<void> {
    for (const sub of [...this.subs]) {
      const start = sub.start;
      if (sub.cursor !== undefined || !start || !start.ready) continue;
      const rows = await this.source.watchStartRows(start, [sub.pattern]);
      if (!this.subs.has(sub) || this.failIfOwed(sub)) continue;
      // The sweep may have pruned a change the start owes while its mark settled (startRowsSql, `gone`).
      if (rows[0]?.gone === true) {
        this.fail(sub, new HistoryGoneError(Math.min(start.low, start.known), Number(rows[0].pruned) + 1));
        continue;
      }
      if (rows.some((row) => row.key !== null && row.key !== undefined && sub.matches(row.key as string) && !this.push(sub, row))) continue;
      sub.cursor = { rev: start.s, key: null };
      sub.start = undefined;
      this.dirty = true; // catch it up above its mark at once
    }
  }
}

/** The first quick re-poll delay while revisions wait to settle. */
const QUICK_MIN_MS = 10;
