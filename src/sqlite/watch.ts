import { watch as watchFiles, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { EventEmitter } from 'node:events';
import { AsyncQueue, HistoryGoneError, backlogged, cursorPrecedes as precedes, isAfterCursor as isAfter, keyFilter, type ChangeCursor as Cursor, type WatchEvent, type WatchOptions } from '../core/index.js';
import type { Row } from './statements.js';
import { wakeableDelay } from '../core/waiting.js';

/** Changes read per watch poll. */
const PAGE = 1000;

/**
 * Wakes watchers: this process wrote, or the database files changed (another
 * process wrote). Between wake-ups watchers look every pollIntervalMs.
 */
export class WriteSignal {
  private readonly listeners = new EventEmitter();
  private fileWatcher: FSWatcher | undefined;
  pollIntervalMs: number;

  constructor(private readonly path: string, private readonly pollOption: number | undefined) {
    this.pollIntervalMs = pollOption ?? 1000;
    this.listeners.setMaxListeners(0);
  }

  emit(): void {
    this.listeners.emit('write');
  }

  on(listener: () => void): void {
    this.listeners.on('write', listener);
    this.watchFiles();
  }

  off(listener: () => void): void {
    this.listeners.off('write', listener);
    if (this.listeners.listenerCount('write') === 0) this.unwatchFiles();
  }

  /** On close: no more file events; every watcher wakes once to see the store closed. */
  close(): void {
    this.unwatchFiles();
    this.emit();
  }

  /**
   * Another process's commit appends to the WAL (a checkpoint writes the
   * main file): a directory watch sees both, even when the WAL is recreated.
   */
  private watchFiles(): void {
    if (this.fileWatcher || this.path === ':memory:') return;
    const names = new Set([basename(this.path), `${basename(this.path)}-wal`]);
    try {
      this.fileWatcher = watchFiles(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file === null || names.has(String(file))) this.emit();
      });
      this.fileWatcher.on('error', () => this.fileWatchFailed());
    } catch {
      this.fileWatchFailed();
    }
  }

  private fileWatchFailed(): void {
    this.unwatchFiles();
    this.pollIntervalMs = this.pollOption ?? 20;
  }

  private unwatchFiles(): void {
    this.fileWatcher?.close();
    this.fileWatcher = undefined;
  }
}

/** What a watch reads from the store. */
export interface ChangeLog {
  /** The newest committed revision. */
  head(): number;
  /** In one snapshot, so a prune by another process cannot fall between them: the pruning floor and the next changes after (position, positionKey). */
  readPage(position: number, positionKey: string | null, limit: number): { prunedBelow: number; rows: Row[] };
  /** In one snapshot, a key's changes after `after` (oldest first) and the head; undefined if more than `max` or pruned. */
  keyChangesAfter(key: string, after: number, max: number): { head: number; rows: Row[] } | undefined;
  toEvent<T>(row: Row): WatchEvent<T>;
  isClosed(): boolean;
}

/** One watch() of the hub: its queue, its keys and how far it has read. */
class Follower {
  /** The events of the newest revision read, held until the rest of their commit is read. */
  held: WatchEvent[] = [];
  heldRevision = -1;

  constructor(readonly queue: AsyncQueue<WatchEvent>, readonly matches: (key: string) => boolean, public cursor: Cursor) {}

  release(): void {
    for (const event of this.held) this.queue.push(event);
    this.held = [];
  }
}

/**
 * Every watch() of one store, served by one reader: each round reads one page
 * of the change log from the lowest follower's position and hands each row to
 * the followers whose keys it matches and who have not read it yet. A write
 * costs one read however many watches are open (a reader per watch made each
 * write cost a read per watch: 45 µs × 10,000 watchers, bench/growth-watchers.mjs).
 * A commit's writes are delivered together, and none of them if its rest was
 * pruned before it was read: the events of the newest revision of a full page
 * wait for the next page.
 */
export class ChangeHub {
  private readonly followers = new Set<Follower>();
  /** Followers of one key, by key; the others (a prefix, '' for all) are checked one by one. */
  private readonly byKey = new Map<string, Set<Follower>>();
  private readonly byPrefix = new Map<Follower, string>();
  private running = false;
  /** A change signalled while reading must not wait for the next safety poll. */
  private dirty = false;
  private wake: (() => void) | undefined;
  private readonly onWrite = () => {
    this.dirty = true;
    this.wake?.();
  };

  constructor(private readonly log: ChangeLog, private readonly signal: WriteSignal) {}

  /** Follows the changes from options.fromRevision (default: the head). */
  /** `committedHead`: given when called inside a write transaction, where the log may hold what rolls back. */
  follow<T>(options: WatchOptions, committedHead?: number): AsyncIterable<WatchEvent<T>> {
    const matches = keyFilter(options);
    const queue = new AsyncQueue<WatchEvent>(options.signal);
    const follower = new Follower(queue, matches, { rev: options.fromRevision ?? committedHead ?? this.log.head(), key: null });
    const byChain = options.key !== undefined && options.fromRevision !== undefined && committedHead === undefined;
    if (byChain && !this.catchUpByKey(follower, options.key as string)) return queue as AsyncIterable<WatchEvent<T>>;
    this.add(follower, options);
    queue.onClose(() => this.remove(follower, options));
    this.onWrite();
    if (!this.running) {
      this.running = true;
      // Inside a write transaction the first round would read rows that may still roll back: read after it.
      if (committedHead === undefined) void this.run();
      else setImmediate(() => void this.run());
    }
    return queue as AsyncIterable<WatchEvent<T>>;
  }

  /**
   * A watch of one key from an old revision reads that key's changes by its chain, then joins the shared
   * reader at the head: reading the log after the revision cost 29 s for 10 changes of a 10M-entry log.
   */
  private catchUpByKey(follower: Follower, key: string): boolean {
    const caughtUp = this.log.keyChangesAfter(key, follower.cursor.rev, PAGE);
    if (caughtUp === undefined) return true;
    try {
      for (const row of caughtUp.rows) follower.queue.push(this.log.toEvent(row));
    } catch (err) {
      // A change this watch cannot read (a value its codec cannot decode): this watch alone fails.
      follower.queue.fail(err);
      return false;
    }
    follower.cursor = { rev: Math.max(follower.cursor.rev, caughtUp.head), key: null };
    return true;
  }

  private add(follower: Follower, options: WatchOptions): void {
    if (this.followers.size === 0) this.signal.on(this.onWrite);
    this.followers.add(follower);
    if (options.key !== undefined) {
      let set = this.byKey.get(options.key);
      if (!set) this.byKey.set(options.key, (set = new Set()));
      set.add(follower);
    } else {
      this.byPrefix.set(follower, options.prefix ?? '');
    }
  }

  private remove(follower: Follower, options: WatchOptions): void {
    if (!this.followers.delete(follower)) return;
    if (options.key !== undefined) {
      const set = this.byKey.get(options.key);
      set?.delete(follower);
      if (set?.size === 0) this.byKey.delete(options.key);
    } else {
      this.byPrefix.delete(follower);
    }
    if (this.followers.size === 0) this.signal.off(this.onWrite);
    this.wake?.();
  }

  private async run(): Promise<void> {
    try {
      while (this.followers.size > 0 && !this.log.isClosed()) {
        this.dirty = false;
        if (this.round()) {
          // A full page: read on, letting other work in between (a watch far behind reads many).
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        if (this.dirty) continue;
        const nap = wakeableDelay(this.signal.pollIntervalMs);
        this.wake = nap.wake;
        await nap.done;
        this.wake = undefined;
      }
      if (this.log.isClosed()) for (const f of [...this.followers]) f.queue.end();
    } catch (err) {
      for (const f of [...this.followers]) f.queue.fail(err);
    } finally {
      this.running = false;
      // A follower added while the loop was finishing found it still running.
      if (this.followers.size > 0 && !this.log.isClosed()) {
        this.running = true;
        void this.run();
      }
    }
  }

  /**
   * Reads a page for every follower; true when more is to be read at once. When the page from the
   * lowest follower's position is full, the followers already past it get a page of their own in the
   * same round: a watch far behind does not hold up those that are caught up.
   */
  private round(): boolean {
    // A follower whose consumer has a full backlog waiting is passed over, its cursor kept (backlogged in core).
    const first = this.serve([...this.followers].filter((f) => !backlogged(f.queue, this.onWrite)));
    if (!first.full) return false;
    if (first.ahead.length > 0) this.serve(first.ahead);
    return true;
  }

  /** One page from the lowest position of `group`, for the followers of `group` behind its end; `ahead`: the others. */
  private serve(group: Follower[]): { full: boolean; ahead: Follower[] } {
    let from: Cursor | undefined;
    for (const f of group) if (!from || precedes(f.cursor, from)) from = f.cursor;
    if (!from) return { full: false, ahead: [] };
    const { prunedBelow, rows } = this.log.readPage(from.rev, from.key, PAGE);
    const last = rows[rows.length - 1];
    const full = rows.length === PAGE && last !== undefined;
    // A full page ends somewhere in its last commit; a short one read every change of the snapshot, and commits are whole.
    const reached: Cursor = full ? { rev: last.revision, key: last.key } : { rev: last?.revision ?? from.rev, key: null };
    const served = new Set<Follower>();
    const ahead: Follower[] = [];
    for (const f of group) {
      if (!this.followers.has(f)) continue;
      if (!precedes(f.cursor, reached) && full) {
        ahead.push(f);
        continue;
      }
      // Pruning drops whole revisions (every row at or below prunedBelow). Between commits (key null) a follower
      // needs the revisions after its position; inside one it needs the rest of that revision: gone if pruned.
      const needed = f.cursor.key === null ? f.cursor.rev + 1 : f.cursor.rev;
      if (prunedBelow >= needed) f.queue.fail(new HistoryGoneError(needed - 1, prunedBelow + 1));
      else served.add(f);
    }
    for (const row of rows) {
      for (const f of this.targetsOf(row.key)) {
        if (!served.has(f) || f.queue.closed || !isAfter(row.revision, row.key, f.cursor)) continue;
        let event: WatchEvent;
        try {
          event = this.log.toEvent(row);
        } catch (err) {
          // A row this watch cannot read (a value its codec cannot decode) ends this watch alone,
          // after the commits before it, which it has read whole.
          if (row.revision !== f.heldRevision) f.release();
          served.delete(f);
          f.queue.fail(err);
          continue;
        }
        if (row.revision !== f.heldRevision) {
          f.release();
          f.heldRevision = row.revision;
        }
        f.held.push(event);
        f.cursor = { rev: row.revision, key: row.key };
      }
    }
    for (const f of served) {
      if (!full || f.heldRevision < reached.rev) f.release();
      if (precedes(f.cursor, reached)) f.cursor = reached;
    }
    return { full, ahead };
  }

  private *targetsOf(key: string): Iterable<Follower> {
    const exact = this.byKey.get(key);
    if (exact) yield* exact;
    for (const [f, prefix] of this.byPrefix) if (key.startsWith(prefix)) yield f;
  }
}
