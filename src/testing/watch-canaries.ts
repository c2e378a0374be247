/**
 * Canaries of the watch guarantees (DESIGN §3): every read and write passes
 * straight through, so operation histories stay linearizable — only what
 * watches deliver is wrong. `revkit check` must catch each from the watches
 * it records, checked against the committed writes.
 */
import { AsyncQueue, type Store, type WatchEvent, type WatchOptions } from '../core/index.js';
import { PassThroughStore } from './pass-through-store.js';

/**
 * The inner watch, each event passed through `keep` (false: dropped). The
 * caller's signal ends both; an inner error ends the outer watch with it.
 */
function filtered<T>(inner: Store, options: WatchOptions, keep: (event: WatchEvent<T>) => boolean): AsyncIterable<WatchEvent<T>> {
  const queue = new AsyncQueue<WatchEvent<T>>(options.signal);
  const stop = new AbortController();
  queue.onClose(() => stop.abort());
  const { signal: _signal, ...rest } = options;
  const source = inner.watch<T>({ ...rest, signal: stop.signal });
  void (async () => {
    try {
      for await (const event of source) {
        if (queue.closed) break;
        if (keep(event)) queue.push(event);
      }
      queue.end();
    } catch (err) {
      queue.fail(err);
    }
  })();
  return queue;
}

/**
 * Drops one change: the second commit each watch sees (all of its writes)
 * goes missing — what a reader that advances its position past an event it
 * failed to hand on, or a page boundary off by one, does.
 */
export class DroppedEventStore extends PassThroughStore {
  constructor(inner: Store) {
    super(inner, `dropped-event(${inner.backend})`);
  }

  override watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    let commits = 0;
    let current: number | undefined;
    return filtered<T>(this.inner, options, (event) => {
      if (event.revision !== current) [commits, current] = [commits + 1, event.revision];
      return commits !== 2;
    });
  }
}

/**
 * Splits commits: of the writes of one atomic commit (one revision), only
 * the first is delivered — what a watch that pages by revision and loses the
 * rest of a commit cut by the page boundary does.
 */
export class SplitCommitStore extends PassThroughStore {
  constructor(inner: Store) {
    super(inner, `split-commit(${inner.backend})`);
  }

  override watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    let current: number | undefined;
    return filtered<T>(this.inner, options, (event) => {
      const first = event.revision !== current;
      current = event.revision;
      return first;
    });
  }
}

/**
 * Starts "from now" late: watch() returns at once, but the subscription (and
 * so its start point) is made only when the caller first asks for an event
 * — the lazy `async function*` mistake. A write made right after watch()
 * returned, before the first next(), is never delivered.
 */
export class LateStartStore extends PassThroughStore {
  constructor(inner: Store) {
    super(inner, `late-start(${inner.backend})`);
  }

  override watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    if (options.fromRevision !== undefined) return this.inner.watch<T>(options);
    const inner = this.inner;
    return {
      [Symbol.asyncIterator]: () => {
        let iterator: AsyncIterator<WatchEvent<T>> | undefined;
        const started = () => (iterator ??= inner.watch<T>(options)[Symbol.asyncIterator]());
        return {
          next: () => started().next(),
          return: async () => (iterator?.return ? iterator.return() : { value: undefined, done: true as const }),
        };
      },
    };
  }
}

export type WatchCanaryKind = 'dropped-event' | 'split-commit' | 'late-start';
export const watchCanaryKinds: readonly WatchCanaryKind[] = ['dropped-event', 'split-commit', 'late-start'];

export function watchCanary(kind: WatchCanaryKind, inner: Store): Store {
  switch (kind) {
    case 'dropped-event': return new DroppedEventStore(inner);
    case 'split-commit': return new SplitCommitStore(inner);
    case 'late-start': return new LateStartStore(inner);
  }
}
