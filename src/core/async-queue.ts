
/**
 * An unbounded push queue exposed as an async iterator: backends push
 * watch events from callbacks; the consumer pulls. `fail` ends it with an
 * error, `end` ends it cleanly, and the iterator's `return` runs `onClose`.
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  // Items are taken from `head` on: Array#shift() moves every item left, which made a backlog of n
  // events cost O(n²) to drain (a watch from revision 0 over 1,000,000 changes: ~800 s; now ~1 s).
  private items: Array<T | undefined> = [];
  private head = 0;
  private waiting: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined;
  private done = false;
  private error: unknown;
  private closers: Array<() => void> = [];
  private drained: { level: number; fn: () => void } | undefined;

  constructor(signal?: AbortSignal) {
    if (signal) {
      if (signal.aborted) this.done = true;
      const onAbort = () => this.end();
      signal.addEventListener('abort', onAbort, { once: true });
      this.closers.push(() => signal.removeEventListener('abort', onAbort));
    }
  }

  onClose(fn: () => void): void {
    if (this.done) fn();
    else this.closers.push(fn);
  }

  get closed(): boolean {
    return this.done;
  }

  /** Items pushed and not yet taken by the consumer. */
  get backlog(): number {
    return this.items.length - this.head;
  }

  /**
   * Calls `fn` once, when the consumer has taken the backlog down to `level`
   * (at once if it is there already): a producer that stopped pushing to a
   * slow consumer learns when to go on (or that the queue closed: then too).
   * A later call replaces an earlier one.
   */
  whenDrainedTo(level: number, fn: () => void): void {
    if (this.backlog <= level) {
      this.drained = undefined;
      fn();
      return;
    }
    this.drained = { level, fn };
  }

  push(item: T): void {
    if (this.done) return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w.resolve({ value: item, done: false });
    } else {
      this.items.push(item);
    }
  }

  fail(error: unknown): void {
    if (this.done) return;
    this.error = error;
    this.finish();
  }

  end(): void {
    if (!this.done) this.finish();
  }

  private finish(): void {
    this.done = true;
    // A producer waiting for the consumer to catch up learns that it never will.
    const drained = this.drained;
    this.drained = undefined;
    drained?.fn();
    const closers = this.closers;
    this.closers = [];
    for (const c of closers) c();
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      if (this.error !== undefined && this.items.length === this.head) w.reject(this.error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.head < this.items.length) {
      const value = this.items[this.head] as T;
      this.items[this.head++] = undefined;
      // Drop the taken slots once they are most of the array: amortised O(1) per item.
      if (this.head === this.items.length) {
        this.items = [];
        this.head = 0;
      } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      const drained = this.drained;
      if (drained && this.backlog <= drained.level) {
        this.drained = undefined;
        drained.fn();
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.done) {
      if (this.error !== undefined) {
        const e = this.error;
        this.error = undefined;
        return Promise.reject(e);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.items = [];
    this.head = 0;
    this.error = undefined;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/**
 * Back-pressure for watch hubs that read a change log by cursor: a watcher
 * whose consumer has WATCH_BACKLOG_LIMIT events waiting is passed over (its
 * cursor kept) until the consumer has taken it down to WATCH_BACKLOG_RESUME.
 * A consumer that does not read costs at most the limit plus one page, not
 * the whole backlog; one that falls behind the log's pruning meanwhile gets
 * HistoryGoneError when it reads on, as any watch that far behind does.
 */
export const WATCH_BACKLOG_LIMIT = 1000;
export const WATCH_BACKLOG_RESUME = 500;

/** Resolves at once, or — when `queue` holds WATCH_BACKLOG_LIMIT events — once its consumer has taken it down to WATCH_BACKLOG_RESUME or it closed. */
export function roomIn<T>(queue: AsyncQueue<T>): Promise<void> | undefined {
  if (queue.backlog < WATCH_BACKLOG_LIMIT || queue.closed) return undefined;
  return new Promise((resolve) => queue.whenDrainedTo(WATCH_BACKLOG_RESUME, resolve));
}

/** Whether a hub passes over `queue`'s watcher this round; if so, `wake` is called once its consumer has caught up. */
export function backlogged<T>(queue: AsyncQueue<T>, wake: () => void): boolean {
  if (queue.backlog < WATCH_BACKLOG_LIMIT) return false;
  queue.whenDrainedTo(WATCH_BACKLOG_RESUME, wake);
  return true;
}

