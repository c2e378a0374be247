import type { QueryResultRow } from 'pg';
import { AsyncQueue, BackendError, HistoryGoneError, RevkitError, keyFilter, type WatchEvent, type WatchOptions } from '../core/index.js';
import { likePattern } from './sql.js';

type Row = QueryResultRow & { [column: string]: unknown };

/** An observation of watch_mark(): the last revision handed out, then a fresh xid. */
export interface Mark {
  s: number;
  x: string;
}

/** A watch "from now": mark taken in snapshot `snap`; `low` was settled before it. */
export interface WatchStart extends Mark {
  snap: string;
  low: number;
}

/** What the hub needs from its store (PostgresStore implements it). */
export interface WatchSource {
  readonly pollMs: number;
  /** A revision below which every transaction is known to have finished; only grows. */
  settledHorizon: number;
  readonly isClosed: boolean;
  watchQuery(params: WatchQueryParams): Promise<{ mark: Mark; rows: Row[] }>;
  watchStart(): Promise<WatchStart>;
  watchStartRows(start: WatchStart, patterns: string[]): Promise<Row[]>;
  decodeChange(row: Row): WatchEvent;
}

export interface WatchQueryParams {
  pending: Mark | undefined;
  settled: number;
  from: Cursor;
  patterns: string[];
  limit: number;
}

/** Everything up to (rev, key) was delivered; key null: all of rev. */
interface Cursor {
  rev: number;
  key: string | null;
}

/** (rev, key) order; a null key is the end of its revision. */
function after(rev: number, key: string, c: Cursor): boolean {
  return rev > c.rev || (rev === c.rev && c.key !== null && key > c.key);
}

function before(a: Cursor, b: Cursor): boolean {
  if (a.rev !== b.rev) return a.rev < b.rev;
  if (a.key === b.key) return false;
  return a.key !== null && (b.key === null || a.key < b.key);
}

class Subscriber {
  /** undefined until a "from now" watch has its start. */
  cursor: Cursor | undefined;
  start: WatchStart | undefined;
  readonly matches: (key: string) => boolean;
  readonly pattern: string;

  constructor(options: WatchOptions, readonly queue: AsyncQueue<WatchEvent>) {
    this.matches = keyFilter(options);
    this.pattern = options.key !== undefined ? likePattern(options.key, false) : likePattern(options.prefix ?? '', true);
    if (options.fromRevision !== undefined) this.cursor = { rev: options.fromRevision, key: null };
  }
}

/**
 * Every watch() of one store, served by one poller: per poll one mark and one
 * query of the change log for all watchers' keys, fanned out in process.
 * It delivers, in revision order, the changes up to W — the highest revision
 * below which no transaction can still commit (see watchSql for the proof).
 * That makes it exactly-once and gap-free even when transactions commit out
 * of revision order (revision 7 committing after revision 8 is held back
 * until 7 is settled). Ordering by revision implies per-key order. Each
 * watcher keeps its own cursor: one that starts behind the others is caught
 * up by the same query (the others skip what they already have). Transient
 * errors (restart) are ridden out: cursors are kept and polling resumes.
 */
export class WatchHub {
  private static readonly BATCH = 500;
  private readonly subs = new Set<Subscriber>();
  private running = false;
  private dirty = false;
  /** A wake-up for a watched key: worth polling again soon while revisions are unsettled. */
  private eager = false;
  private waiter: (() => void) | undefined;
  private settled = 0;
  private pending: Mark | undefined;

  constructor(private readonly source: WatchSource, private readonly onIdle: () => void) {}

  get size(): number {
    return this.subs.size;
  }

  add(options: WatchOptions, queue: AsyncQueue<WatchEvent>): void {
    const sub = new Subscriber(options, queue);
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
        // Revisions handed out but not yet settled: look again soon if a watched key may be among them.
        await this.sleep(starting || (this.pending && this.eager) ? 10 : this.source.pollMs);
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
    for (const sub of this.subs) if (sub.cursor === undefined && sub.start === undefined) sub.start = await this.source.watchStart();
    const ready = [...this.subs].filter((s) => s.cursor !== undefined);
    let from: Cursor | undefined;
    for (const sub of ready) if (!from || before(sub.cursor as Cursor, from)) from = sub.cursor;
    const patterns = [...new Set(ready.map((s) => s.pattern))];
    const p = this.pending;
    const { mark, rows } = await this.source.watchQuery({
      pending: p, settled: this.settled, from: from ?? { rev: this.settled, key: null }, patterns, limit: WatchHub.BATCH,
    });
    const head = rows[0];
    if (!head) throw new BackendError('watch query returned no row', { transient: true });
    const pruned = Number(head.pruned);
    const w = Number(head.w);
    const xmin = BigInt(head.xmin as string);
    for (const sub of ready) {
      const c = sub.cursor as Cursor;
      if (pruned > c.rev || (pruned === c.rev && c.key !== null)) this.fail(sub, new HistoryGoneError(c.rev, pruned + 1));
    }
    const changes = rows.filter((r) => r.key !== null && r.key !== undefined);
    for (const row of changes) {
      const key = row.key as string;
      const rev = Number(row.revision);
      for (const sub of ready) {
        const c = sub.cursor as Cursor;
        if (!sub.queue.closed && this.subs.has(sub) && sub.matches(key) && after(rev, key, c)) {
          sub.queue.push(this.source.decodeChange(row));
          sub.cursor = { rev, key };
        }
      }
    }
    const full = changes.length === WatchHub.BATCH;
    const last = changes[changes.length - 1];
    const reached: Cursor = full && last ? { rev: Number(last.revision), key: last.key as string } : { rev: w, key: null };
    for (const sub of ready) if (before(sub.cursor as Cursor, reached)) sub.cursor = reached;
    await this.startWatchers(xmin);
    // Mirror the SQL's decision to keep the oldest unsettled observation.
    this.settled = w;
    const confirmed = xmin >= BigInt(mark.x) ? mark.s : p && xmin >= BigInt(p.x) ? p.s : undefined;
    if (confirmed !== undefined) this.source.settledHorizon = Math.max(this.source.settledHorizon, confirmed);
    if (xmin >= BigInt(mark.x)) this.pending = undefined;
    else if (!p || xmin >= BigInt(p.x)) this.pending = mark.s > w ? mark : undefined;
    if (!this.pending) this.eager = false;
    return full;
  }

  /**
   * "From now" watchers whose start mark is settled (every holder of a
   * revision at or below it has finished): deliver what the start snapshot
   * did not see, then continue from the mark like any other watcher.
   */
  private async startWatchers(xmin: bigint): Promise<void> {
    for (const sub of [...this.subs]) {
      const start = sub.start;
      if (sub.cursor !== undefined || !start || xmin < BigInt(start.x)) continue;
      const late = await this.source.watchStartRows(start, [sub.pattern]);
      for (const row of late) if (sub.matches(row.key as string)) sub.queue.push(this.source.decodeChange(row));
      sub.cursor = { rev: start.s, key: null };
      sub.start = undefined;
      this.source.settledHorizon = Math.max(this.source.settledHorizon, start.s);
    }
  }
}
