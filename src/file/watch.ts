import { watch as watchFs, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { EventEmitter } from 'node:events';
import { AsyncQueue, HistoryGoneError, WATCH_BACKLOG_LIMIT, firstAfterRevision, keyFilter, roomIn, type WatchEvent, type WatchOptions } from '../core/index.js';
import type { FileRecord, FileState } from './format.js';
import { wakeableDelay } from '../core/waiting.js';

/**
 * Wakes watchers when the file is replaced: by this process's commit, or
 * (through a folder watch) by another process's.
 */
export class FileChanges {
  private readonly listeners = new EventEmitter();
  private fsWatcher: FSWatcher | null = null;
  private watchers = 0;

  constructor(private readonly path: string, private readonly isClosed: () => boolean) {
    this.listeners.setMaxListeners(0);
  }

  emit(): void {
    this.listeners.emit('change');
  }

  on(listener: () => void): void {
    this.listeners.on('change', listener);
    this.watchFolder(+1);
  }

  off(listener: () => void): void {
    this.listeners.off('change', listener);
    this.watchFolder(-1);
  }

  close(): void {
    this.fsWatcher?.close();
    this.fsWatcher = null;
  }

  /** One folder watch per store while any watch() runs; polling covers file systems without events. */
  private watchFolder(delta: number): void {
    this.watchers += delta;
    if (this.watchers > 0 && this.fsWatcher === null && !this.isClosed()) {
      const name = basename(this.path);
      try {
        this.fsWatcher = watchFs(dirname(this.path), { persistent: false }, (_event, file) => {
          if (file === null || file === name) this.emit();
        });
        this.fsWatcher.on('error', () => {
          this.fsWatcher?.close();
          this.fsWatcher = null;
        });
      } catch {
        this.fsWatcher = null;
      }
    } else if (this.watchers === 0 && this.fsWatcher !== null) {
      this.fsWatcher.close();
      this.fsWatcher = null;
    }
  }
}

/** What a watch reads from the store. */
export interface ChangeLog {
  read(): FileState;
  toEvent<T>(change: FileRecord): WatchEvent<T>;
  isClosed(): boolean;
}

/** Follows the file's change log from options.fromRevision (default: the head), waking on `changes` or every pollIntervalMs; it stops reading while its consumer has WATCH_BACKLOG_LIMIT events waiting. */
export function followChanges<T>(log: ChangeLog, changes: FileChanges, options: WatchOptions, pollIntervalMs: number): AsyncIterable<WatchEvent<T>> {
  const matches = keyFilter(options);
  const queue = new AsyncQueue<WatchEvent<T>>(options.signal);
  let position: number;
  try {
    position = options.fromRevision ?? log.read().revision;
  } catch (err) {
    queue.fail(err);
    return queue;
  }
  let wake: (() => void) | undefined;
  const onChange = () => wake?.();
  changes.on(onChange);
  queue.onClose(() => {
    changes.off(onChange);
    wake?.();
  });
  const poll = async () => {
    while (!queue.closed && !log.isClosed()) {
      const state = log.read();
      if (position < state.prunedBelow && state.revision > position) throw new HistoryGoneError(position, state.prunedBelow + 1);
      // A consumer with a full backlog waiting: stop between two commits, read on from there once it has caught up.
      let through = position;
      let full = false;
      for (let i = firstAfterRevision(state.changes, position); i < state.changes.length; i++) {
        const c = state.changes[i] as FileRecord;
        if (c.revision !== through && queue.backlog >= WATCH_BACKLOG_LIMIT) {
          full = true;
          break;
        }
        through = c.revision;
        if (matches(c.key)) queue.push(log.toEvent<T>(c));
      }
      position = full ? through : Math.max(position, state.revision);
      const room = full ? roomIn(queue) : undefined;
      if (room) {
        // Until the consumer has caught up, or the store closes (then the watch ends after what it queued).
        await new Promise<void>((resolve) => {
          void room.then(resolve);
          wake = () => {
            if (log.isClosed()) resolve();
          };
        });
        wake = undefined;
        continue;
      }
      const nap = wakeableDelay(pollIntervalMs);
      wake = nap.wake;
      await nap.done;
      wake = undefined;
    }
    queue.end();
  };
  poll().catch((err) => queue.fail(err));
  return queue;
}
