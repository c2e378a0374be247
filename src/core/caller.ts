import { AbortedError, InvalidArgumentError, OutcomeUnknownError, RetryExhaustedError } from './errors.js';
import type { Attempt, Carried } from './compose.js';
import { UPDATE_DEFAULTS } from './retry.js';
import type { Entry, Mutation, UpdateOptions } from './types.js';
import { MAX_TIMER_MS, noAnswer, StopWhen, type StopSignal } from './waiting.js';
import { assertSignal } from './keys.js';

/** One update() call waiting for its answer; the attempt loops of update.ts and combine.ts answer it. */
export class Caller implements Carried {
  settled = false;
  attempts = 0;
  lastError: unknown;
  readonly deadline: number;
  /** Attempts carrying this caller's mutation whose write may have committed. */
  readonly exposedIn = new Set<Attempt>();
  /** The store call the caller's attempt waits for: if its deadline or signal comes first, that call gave no answer. */
  waitingOn: 'read' | 'write' | undefined;
  /** Fires once the caller has its answer. */
  readonly gone = new StopWhen();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private onAbort: (() => void) | undefined;

  constructor(
    readonly key: string,
    readonly fn: Mutation<unknown>,
    readonly opts: UpdateOptions<unknown>,
    private readonly onResolve: (entry: Entry<unknown> | null) => void,
    private readonly onReject: (err: unknown) => void,
    /** False: the deadline's timer waits for armDeadline() (a caller answered without waiting needs none). */
    armNow = true,
  ) {
    checkOptions(opts);
    const deadlineMs = opts.deadlineMs ?? UPDATE_DEFAULTS.deadlineMs;
    if (typeof deadlineMs !== 'number' || Number.isNaN(deadlineMs) || deadlineMs < 0) {
      throw new InvalidArgumentError(`update() deadlineMs must be a number of milliseconds, 0 or more (Infinity: none); got ${String(deadlineMs)}`);
    }
    this.deadline = Date.now() + deadlineMs;
    if (armNow) this.armDeadline();
    if (opts.signal?.aborted) this.giveUp('aborted');
    else if (opts.signal) opts.signal.addEventListener('abort', (this.onAbort = () => this.giveUp('aborted')), { once: true });
  }

  /** Starts the deadline's timer: from here on the caller may wait. */
  armDeadline(): void {
    if (this.settled || this.timer !== undefined) return;
    const remainingMs = Math.max(0, this.deadline - Date.now());
    // setTimeout fires at once past 2^31 - 1 ms (~24.8 days): a deadline further off than that is none.
    if (remainingMs <= MAX_TIMER_MS) this.timer = setTimeout(() => this.giveUp('deadline'), remainingMs);
  }

  get maxAttempts(): number {
    return this.opts.maxAttempts ?? UPDATE_DEFAULTS.maxAttempts;
  }

  resolve(entry: Entry<unknown> | null): void {
    if (this.finish()) this.onResolve(entry);
  }

  reject(err: unknown): void {
    if (this.finish()) this.onReject(err);
  }

  /** A final error; if a write carrying this mutation may have committed, the honest answer is "unknown". */
  fail(err: unknown): void {
    // A DataLostError too (DESIGN §4.7): the store lost acknowledged writes, and whether this caller's own
    // write is among them or landed cannot be told — told as a plain DataLostError, a caller that writes
    // again applies it twice when it had landed. The loss is the cause, which may be this process's only report of it.
    if (this.exposedIn.size > 0 && !OutcomeUnknownError.is(err)) this.reject(new OutcomeUnknownError(this.key, undefined, { cause: err }));
    else this.reject(err);
  }

  giveUp(reason: 'attempts' | 'deadline' | 'aborted'): void {
    const cause = this.waitingOn ? noAnswer(this.waitingOn === 'write')
      : this.lastError ?? (reason === 'aborted' ? new AbortedError(this.opts.signal?.reason) : undefined);
    this.fail(new RetryExhaustedError(this.key, this.attempts, cause, reason));
  }

  /** Hands the caller to a loop of its own, which answers it from here on. */
  runAlone(loop: (remainingMs: number) => Promise<Entry<unknown> | null>): void {
    const remainingMs = Math.max(0, this.deadline - Date.now());
    if (this.finish()) loop(remainingMs).then(this.onResolve, this.onReject);
  }

  private finish(): boolean {
    if (this.settled) return false;
    this.settled = true;
    clearTimeout(this.timer);
    if (this.onAbort) this.opts.signal?.removeEventListener('abort', this.onAbort);
    this.gone.fire();
    return true;
  }
}

/**
 * update()'s options, before anything is read: a wrong type would otherwise
 * fail later as a plain TypeError (a signal, a schema), or turn a bound off
 * without a word (maxAttempts NaN).
 */
function checkOptions(opts: UpdateOptions<unknown>): void {
  const { maxAttempts, schema, retry } = opts;
  if (maxAttempts !== undefined && (typeof maxAttempts !== 'number' || Number.isNaN(maxAttempts))) {
    throw new InvalidArgumentError(`update() maxAttempts must be a number (Infinity: no bound); got ${String(maxAttempts)}`);
  }
  assertSignal(opts.signal, 'update()');
  if (schema !== undefined && typeof (schema as { '~standard'?: { validate?: unknown } } | null)?.['~standard']?.validate !== 'function') {
    throw new InvalidArgumentError('update() schema must be a Standard Schema validator (with ~standard.validate)');
  }
  if (retry !== undefined && typeof (retry as { delay?: unknown } | null)?.delay !== 'function') {
    throw new InvalidArgumentError('update() retry must be a retry policy (with delay(attempt, previousDelay)), such as exponentialJitter()');
  }
  for (const name of ['validate', 'onRetry'] as const) {
    if (opts[name] !== undefined && typeof opts[name] !== 'function') throw new InvalidArgumentError(`update() ${name} must be a function`);
  }
  if (opts.combine !== undefined && typeof opts.combine !== 'boolean') throw new InvalidArgumentError('update() combine must be true or false');
}

/** What the callers of an attempt wait for: a store call that has not answered when their deadline or signal comes gave no answer. */
export function waitOn(callers: Caller[], call: 'read' | 'write' | undefined): void {
  for (const c of callers) c.waitingOn = call;
}

const nothingToRelease = () => undefined;

/** A signal that fires once every one of `callers` has its answer, so nothing waits on their behalf. */
export function abortWhenAllGone(callers: Caller[]): { signal: StopSignal; release: () => void } {
  if (callers.length === 1) return { signal: (callers[0] as Caller).gone, release: nothingToRelease };
  const stop = new StopWhen();
  let waitingFor = callers.length;
  const oneGone = () => {
    if (--waitingFor === 0) stop.fire();
  };
  for (const c of callers) {
    if (c.settled) oneGone();
    else c.gone.addEventListener('abort', oneGone);
  }
  return { signal: stop, release: () => { for (const c of callers) c.gone.removeEventListener('abort', oneGone); } };
}
