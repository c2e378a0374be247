import { AbortedError, BackendError } from './errors.js';

/**
 * What answerBy() and sleep() need of a signal: an AbortSignal, or the
 * update loop's cheaper StopWhen (an AbortController per attempt was a tenth
 * of update()'s CPU at one writer).
 */
export interface StopSignal {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** The part of AbortSignal answerBy() and sleep() use, without EventTarget's cost. */
export class StopWhen implements StopSignal {
  aborted = false;
  // Made on the first listener: every update() has a StopWhen, most never get one.
  private listeners: Array<() => void> | undefined;

  addEventListener(_type: 'abort', listener: () => void): void {
    (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const i = this.listeners?.indexOf(listener) ?? -1;
    if (i >= 0) this.listeners?.splice(i, 1);
  }

  fire(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listeners = this.listeners;
    this.listeners = undefined;
    for (const listener of listeners ?? []) listener();
  }
}

/** setTimeout's longest delay: past it, Node fires after 1 ms. A deadline further off is treated as none. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** What a store call that did not answer by the deadline (or the signal) counts as: a transient fault, ambiguous for a write. */
export function noAnswer(write: boolean): BackendError {
  return new BackendError('the store gave no answer before the deadline', { transient: true, ambiguous: write });
}

/**
 * A store call that never answers (a connection stuck mid-reconnect) must not
 * hold update() past its deadline or its signal: past either, the call counts
 * as a transient fault — ambiguous for a write, which may still commit, and
 * is then recognised by its writer token — and the loop's own bounds end it.
 */
export function answerBy<R>(call: Promise<R>, deadline: number, signal: StopSignal | undefined, write: boolean, gaveNoAnswer?: unknown): Promise<R> {
  const failure = () => gaveNoAnswer ?? noAnswer(write);
  if (signal?.aborted) {
    call.catch(() => undefined);
    return Promise.reject(failure());
  }
  return new Promise<R>((resolve, reject) => {
    const giveUp = () => {
      cleanup();
      reject(failure());
    };
    const wait = Math.max(0, deadline - Date.now());
    const timer = wait <= MAX_TIMER_MS ? setTimeout(giveUp, wait) : undefined;
    signal?.addEventListener('abort', giveUp, { once: true });
    function cleanup() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', giveUp);
    }
    call.then(
      (value) => (cleanup(), resolve(value)),
      (err) => (cleanup(), reject(err)),
    );
  });
}

/** Waits `ms`; rejects with AbortedError when `signal` aborts; resolves early when `wake` fires. */
export function sleep(ms: number, signal?: StopSignal, wake?: StopSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError(signal.reason));
    if (wake?.aborted || (ms <= 0 && !signal)) return resolve();
    const timer = setTimeout(done, ms);
    function cleanup() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      wake?.removeEventListener('abort', done);
    }
    function done() {
      cleanup();
      resolve();
    }
    function onAbort() {
      cleanup();
      reject(new AbortedError(signal?.reason));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    wake?.addEventListener('abort', done, { once: true });
  });
}

/** Waits `ms`, or less if `wake()` is called first: a poller's nap that a write can cut short. */
export function wakeableDelay(ms: number): { done: Promise<void>; wake: () => void } {
  let wake!: () => void;
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(finish, ms);
    wake = finish;
    function finish() {
      clearTimeout(timer);
      resolve();
    }
  });
  return { done, wake };
}
