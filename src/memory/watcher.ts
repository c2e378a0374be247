import { HistoryGoneError, WATCH_BACKLOG_LIMIT, WATCH_BACKLOG_RESUME, firstAfterRevision, type AsyncQueue, type WatchEvent } from '../core/index.js';

/** What a watcher reads from: the store's change log, oldest first, trimmed by whole commits. */
export interface ChangeLogView<S> {
  readonly changes: readonly WatchEvent<S>[];
  /** Every change at or below this revision is gone from `changes`; nothing above it is. */
  readonly trimmedThrough: number;
  /** Hands `queue` its own copy of a change; false (and the queue failed) when its value cannot be decoded. */
  deliver(queue: AsyncQueue<WatchEvent>, event: WatchEvent<S>): boolean;
}

/**
 * One watch() of a memory store. Live, it is handed each change as it
 * commits. When its consumer has WATCH_BACKLOG_LIMIT events waiting at the
 * start of a commit, it falls behind: it keeps the revision it has delivered
 * every change through and, once the consumer has taken the queue down to
 * WATCH_BACKLOG_RESUME, reads on from the change log — HistoryGoneError if
 * the log was trimmed past it — until it reaches the end and is live again.
 * Commits are whole: it pauses only between two of them.
 */
export class MemoryWatcher<S> {
  /** While behind: every change up to this revision has been delivered. */
  private behind: number | undefined;
  /** The revision of the last change offered or read (live: every one up to it handled). */
  private through: number;
  /** Only what commits after this revision is delivered: the head for a watch "from now", else its fromRevision. */
  private after: number;

  constructor(
    readonly matches: (key: string) => boolean,
    readonly queue: AsyncQueue<WatchEvent>,
    private readonly log: ChangeLogView<S>,
    /** The store's revision when watch() was called: a watch "from now" owes what commits after it. */
    head: number,
    /** How many changes the store had logged when watch() was called: one created while a change is handed out (a codec's hook) is not handed it again. */
    private readonly bornAt: number,
  ) {
    this.through = head;
    this.after = head;
  }

  /** Delivers what the log holds after `fromRevision`, then goes live (a revision not written yet: from it). */
  startFrom(fromRevision: number): void {
    this.after = fromRevision;
    this.behind = fromRevision;
    this.catchUp();
    this.through = Math.max(this.through, fromRevision);
  }

  /** A change just committed (after the ones before it); `logged`: how many changes the store has logged with it. */
  offer(event: WatchEvent<S>, logged: number): void {
    if (this.behind !== undefined || this.queue.closed || logged <= this.bornAt || event.revision <= this.after) return;
    if (event.revision !== this.through && this.queue.backlog >= WATCH_BACKLOG_LIMIT) {
      this.fallBehind(this.through);
      return;
    }
    this.through = event.revision;
    if (this.matches(event.key)) this.log.deliver(this.queue, event);
  }

  private fallBehind(through: number): void {
    this.behind = through;
    this.queue.whenDrainedTo(WATCH_BACKLOG_RESUME, () => this.catchUp());
  }

  private catchUp(): void {
    const from = this.behind;
    if (from === undefined || this.queue.closed) return;
    if (from < this.log.trimmedThrough) {
      this.queue.fail(new HistoryGoneError(from, this.log.trimmedThrough + 1));
      return;
    }
    const changes = this.log.changes;
    let through = from;
    for (let i = firstAfterRevision(changes, from); i < changes.length; i++) {
      const event = changes[i] as WatchEvent<S>;
      if (event.revision !== through && this.queue.backlog >= WATCH_BACKLOG_LIMIT) {
        this.fallBehind(through);
        return;
      }
      through = event.revision;
      if (this.matches(event.key) && !this.log.deliver(this.queue, event)) return;
    }
    this.behind = undefined;
    this.through = Math.max(this.through, through);
  }
}
