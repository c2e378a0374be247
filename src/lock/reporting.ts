/**
 * The store as a lock session uses it: every call answers exactly as the
 * store's own, and every failure is also shown to `note` — whether or not
 * the caller hears of it (a cleanup that retries, a call raced by an abort,
 * one of several awaited together). A store that lost acknowledged writes
 * may report it to one call only (Redis tells a process once): the session
 * must hear it wherever it lands, and so must every other session of this
 * process on the same store object, whose locks the loss may hold as well.
 */
import { lossIn, type AtomicBatch, type Store, type WatchEvent } from '../core/index.js';

type Note = (err: unknown) => void;

/** Per store object: the sessions that hear a loss any of them met, until they detach. */
const hearers = new WeakMap<Store, Set<Note>>();

export interface Reporting {
  store: Store;
  /** Stops hearing the losses other sessions meet; this session's own calls still reach `note`. */
  detach(): void;
}

export function reporting(store: Store, note: Note): Reporting {
  let others = hearers.get(store);
  if (!others) hearers.set(store, (others = new Set()));
  others.add(note);
  const heard = others;
  const tell: Note = (err) => {
    note(err);
    if (lossIn(err)) for (const other of heard) if (other !== note) other(err);
  };
  const proxied = new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (prop === 'watch') return reportingIterable(result as AsyncIterable<WatchEvent>, tell);
        if (prop === 'atomic') return reportingBatch(result as AtomicBatch, tell);
        return observed(result, tell);
      };
    },
  });
  return { store: proxied, detach: () => heard.delete(note) };
}

function observed<R>(result: R, note: Note): R {
  if (typeof (result as PromiseLike<unknown> | null)?.then === 'function') (result as PromiseLike<unknown>).then(undefined, note);
  return result;
}

function reportingIterable<T>(iterable: AsyncIterable<T>, note: Note): AsyncIterable<T> {
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

function reportingBatch(batch: AtomicBatch, note: Note): AtomicBatch {
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
