import { watch as watchFiles, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { EventEmitter } from 'node:events';
import { AsyncQueue, HistoryGoneError, keyFilter, type WatchEvent, type WatchOptions } from '../core/index.js';
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
  toEvent<T>(row: Row): WatchEvent<T>;
  isClosed(): boolean;
}

/** Follows the `changes` table from options.fromRevision (default: the head), page by page, waking on `signal`. */
export function followChanges<T>(log: ChangeLog, signal: WriteSignal, options: WatchOptions): AsyncIterable<WatchEvent<T>> {
  const matches = keyFilter(options);
  const queue = new AsyncQueue<WatchEvent<T>>(options.signal);
  let position = options.fromRevision ?? log.head();
  let wake: (() => void) | undefined;
  // A change signalled while reading must not wait for the next safety poll.
  let dirty = false;
  const onWrite = () => {
    dirty = true;
    wake?.();
  };
  signal.on(onWrite);
  queue.onClose(() => {
    signal.off(onWrite);
    wake?.();
  });
  // The position is (revision, key): an atomic commit's rows share one revision and may
  // straddle a page boundary, so paging by revision alone would skip the rest of it.
  // positionKey null: every change up to `position` has been read (between commits).
  let positionKey: string | null = null;
  // The events of the newest revision of a full page wait for the rest of their commit: a commit's
  // writes are pushed together, and none of them if its rest was pruned before it was read.
  let held: WatchEvent<T>[] = [];
  let heldRevision = -1;
  const release = () => {
    for (const event of held) queue.push(event);
    held = [];
  };
  const poll = async () => {
    while (!queue.closed && !log.isClosed()) {
      dirty = false;
      const { prunedBelow, rows } = log.readPage(position, positionKey, PAGE);
      // Pruning drops whole revisions (every row at or below prunedBelow). Between commits (positionKey null) the
      // watch needs the revisions after `position`; inside one (a page ended in the middle of an atomic commit)
      // it needs the rest of `position` itself: gone if that revision was pruned, never delivered in part.
      const needed = positionKey === null ? position + 1 : position;
      if (prunedBelow >= needed) throw new HistoryGoneError(needed - 1, prunedBelow + 1);
      for (const row of rows) {
        if (row.revision !== heldRevision) {
          release();
          heldRevision = row.revision;
        }
        position = row.revision;
        positionKey = row.key;
        if (matches(row.key)) held.push(log.toEvent<T>(row));
      }
      if (rows.length === PAGE) continue;
      // A short page read every change of the snapshot, and commits are whole: the last one is complete.
      release();
      positionKey = null;
      if (dirty) continue;
      const nap = wakeableDelay(signal.pollIntervalMs);
      wake = nap.wake;
      await nap.done;
      wake = undefined;
    }
    queue.end();
  };
  poll().catch((err) => queue.fail(err));
  return queue;
}
