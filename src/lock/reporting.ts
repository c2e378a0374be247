/**
 * The store as a lock session uses it: every call answers exactly as the
 * store's own, and every failure is also shown to `note` — whether or not
 * the caller hears of it (a cleanup that retries, a call raced by an abort,
 * one of several awaited together). A store that lost acknowledged writes
 * may report it to one call only (Redis tells a process once): the session
 * must hear it wherever it lands.
 */
import type { AtomicBatch, Store, WatchEvent } from '../core/index.js';

export function reporting(store: Store, note: (err: unknown) => void): Store {
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (prop === 'watch') return reportingIterable(result as AsyncIterable<WatchEvent>, note);
        if (prop === 'atomic') return reportingBatch(result as AtomicBatch, note);
        return observed(result, note);
      };
    },
  });
}

function observed<R>(result: R, note: (err: unknown) => void): R {
  if (typeof (result as PromiseLike<unknown> | null)?.then === 'function') (result as PromiseLike<unknown>).then(undefined, note);
  return result;
}

function reportingIterable<T>(iterable: AsyncIterable<T>, note: (err: unknown) => void): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = iterable[Symbol.asyncIterator]();
      return {
        next: () => observed(it.next(), note),
        return: (value?: unknown) => (it.return ? observed(it.return(value), note) : Promise.resolve({ done: true as const, value: undefined })),
      };
    },
  };
}

function reportingBatch(batch: AtomicBatch, note: (err: unknown) => void): AtomicBatch {
  const proxy: AtomicBatch = new Proxy(batch, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        return result === target ? proxy : observed(result, note);
      };
    },
  });
  return proxy;
}
