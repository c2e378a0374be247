import { BackendError, ClosedError, ConflictError, isAmbiguous, OutcomeUnknownError, TooLargeError, ValidationError } from './errors.js';
import { DataLostError } from './feature-errors.js';
import { answer, answeredMidway, answerUnaffected, compose, Composition, valueRules, type Attempt, type ValueRules } from './compose.js';
import { lookForOwnWrite, type OwnWriteVerdict } from './own-write.js';
import { forgetOwnWrite, keepOwnWrite, missedOwnWrite, takeOwnWrite, takeWrittenBytes, wantWrittenBytes } from './own-writes.js';
import { AttemptEnd, type MutatingAttempt } from './nested.js';
import { backoffDelay, UPDATE_DEFAULTS } from './retry.js';
import { isTombstone, type Entry, type Mutation, type PutOptions, type StoredRecord, type UpdateOptions } from './types.js';
import { answerBy, sleep, type StopSignal } from './waiting.js';
import { abortWhenAllGone, Caller, waitOn } from './caller.js';
import { IN_WRITE_DECLINED, type LoopPolicy, type UpdatableStore } from './update-types.js';

/**
 * The one attempt loop of update() (docs/semantics.md, "update()"): read
 * (tombstones included), let compose.ts apply the mutations it carries to a
 * private copy, write guarded by what was read; on conflict or transient
 * fault back off and start over from the read. A write whose acknowledgement
 * was lost is looked for by its writer token before anything is applied
 * again; when its fate cannot be established its callers are told so
 * (OutcomeUnknownError) instead of risking a second application.
 *
 * A loop carries one caller (runUpdate) or the callers the combiner gathered
 * for one key (combine.ts); either way:
 * - every caller settles by its own deadline, signal and attempt budget, even
 *   while another caller's mutation hangs or a store call is in flight; the
 *   loop goes on without it, and never writes a mutation whose caller has
 *   been answered;
 * - every attempt writes with a token of its own, so after lost
 *   acknowledgements the attempt that committed settles the callers it
 *   carried, with that attempt's values and errors;
 * - a caller whose mutation may have committed is never run again: if the
 *   outcome cannot be established it gets OutcomeUnknownError.
 */

export { IN_WRITE_DECLINED, type InWriteDecision, type LoopPolicy, type UpdatableStore } from './update-types.js';

export function runUpdate<T>(store: UpdatableStore, key: string, fn: Mutation<T>, opts: UpdateOptions<T> = {}): Promise<Entry<T> | null> {
  return new Promise((resolve, reject) => {
    const caller = new Caller(key, fn as Mutation<unknown>, opts as UpdateOptions<unknown>, resolve as (e: Entry<unknown> | null) => void, reject);
    if (caller.settled) return;
    const policy: LoopPolicy = { retry: opts.retry ?? UPDATE_DEFAULTS.retry };
    if (opts.ttlMs !== undefined) policy.ttlMs = opts.ttlMs;
    void new AttemptLoop(store, key, [caller], policy).run();
  });
}

export class AttemptLoop {
  /** Attempts whose acknowledgement was lost and whose fate is not settled yet. */
  private suspects: Attempt<Caller>[] = [];
  private lastError: unknown;
  private previousDelay = 0;
  /**
   * After a combined write was refused for good while some of its callers may
   * have committed earlier: one caller per attempt, so that the refusal is
   * the doing of the caller that gets it, until a write commits.
   */
  private singleFile = false;
  /** The last error of a write (not of a read): a refusal for good of what one attempt wrote. */
  private refusedWrite: unknown;
  /** Combined callers' values that a later one's may replace are checked as the write would check them. */
  private readonly rules: ValueRules;
  private readonly ended = new AttemptEnd();
  /** Whether this loop's first attempt has begun: only it may start from this store object's own last write. */
  private begun = false;
  private guessed: Attempt<Caller> | undefined;
  /** What an update() of the key started inside one of this loop's mutations waits for: its end (nested.ts). */
  private readonly running: MutatingAttempt;

  constructor(
    private readonly store: UpdatableStore,
    private readonly key: string,
    private readonly callers: Caller[],
    private readonly policy: LoopPolicy,
    /** Called when the loop waits for a mutation, and when it ends: callers arriving then need not wait for it (combine.ts). */
    private readonly released: () => void = () => undefined,
  ) {
    this.rules = valueRules(store, key, callers.length > 1);
    this.running = { owner: store, key, end: () => this.ended.get() };
  }

  private get pending(): Caller[] {
    // A lone caller (most update()s) is read, never copied: nobody changes the array it gets.
    if (this.callers.length === 1) return (this.callers[0] as Caller).settled ? [] : this.callers;
    return this.callers.filter((c) => !c.settled);
  }

  /**
   * Never rejects: whatever goes wrong is delivered to the callers. Attempt 1
   * may have run already (update-now.ts): `begun`, its read and mutations ran
   * and one of them waits, the loop goes on from there; `failed`, its write
   * met a conflict (or a passing fault), the loop backs off and tries again.
   */
  async run(begun?: Composition<Caller>, failed?: unknown): Promise<void> {
    try {
      if (failed !== undefined) await this.afterRetryable(failed);
      await this.loop(begun);
    } catch (err) {
      for (const c of this.callers) c.fail(err);
    } finally {
      this.released();
      this.ended.done();
    }
  }

  private async loop(begun: Composition<Caller> | undefined): Promise<void> {
    for (;;) {
      if (this.store.closedSignal?.aborted) {
        const closed = new ClosedError(this.store.backend, { cause: this.lastError });
        for (const c of this.pending) c.fail(closed);
        return;
      }
      // maxAttempts 0 or less: answered before any attempt (as it always was).
      if (begun === undefined) for (const c of this.pending) if (c.attempts >= c.maxAttempts) c.giveUp('attempts');
      const pending = this.singleFile ? this.pending.slice(0, 1) : this.pending;
      if (pending.length === 0) return;
      const composing = begun;
      begun = undefined;
      if (composing === undefined) for (const c of pending) c.attempts++;
      const everyoneGone = abortWhenAllGone(pending);
      try {
        const done = composing === undefined ? await this.attempt(pending, everyoneGone.signal) : await this.write(await composing.finish(this.released), pending, everyoneGone.signal);
        // Done with those tried; one at a time (singleFile), the others are still waiting.
        if (done && this.pending.length === 0) return;
        continue;
      } catch (err) {
        if (!ConflictError.is(err) && !(BackendError.is(err) && err.transient)) {
          if (this.failForGood(err, pending)) continue;
          return;
        }
        this.lastError = err;
      } finally {
        everyoneGone.release();
        waitOn(pending, undefined);
      }
      await this.afterRetryable(this.lastError);
    }
  }

  /** A conflict or a passing fault: callers out of attempts are told, the others wait out the backoff. */
  private async afterRetryable(err: unknown): Promise<void> {
    this.lastError = err;
    for (const c of this.pending) {
      c.lastError = err;
      if (c.attempts >= c.maxAttempts) c.giveUp('attempts');
    }
    await this.backOff();
  }

  /** True when every caller that was pending has its answer; false to start over at once. */
  private async attempt(pending: Caller[], stop: StopSignal): Promise<boolean> {
    // Store calls are cut only when every caller has its answer (`stop`): each caller's own
    // deadline and signal answer that caller alone, as it would be answered alone, so the
    // last of them is the last deadline, and no timer of the call's own is needed.
    if (this.store.updateInWrite && this.suspects.length === 0) {
      const done = await this.attemptInWrite(pending, stop);
      if (done !== IN_WRITE_DECLINED) return done;
    }
    // An async mutation is not run on a guess: a miss would run it twice, one run after the other.
    const own = !this.begun && this.suspects.length === 0 && !pending.some(isAsync) ? takeOwnWrite(this.store, this.key) : undefined;
    this.begun = true;
    if (own !== undefined) {
      const done = await this.attemptOnOwnWrite(own, pending, stop);
      if (done !== undefined) return done;
    }
    waitOn(pending, 'read');
    const read = await answerBy(this.store.getRecord(this.key), NO_DEADLINE, stop, false);
    if (this.suspects.length > 0 && (await this.resolveSuspects(read, stop))) return true;
    waitOn(pending, undefined);
    if (this.pending.length === 0) return true;
    return this.write(await compose(this.key, read, pending, this.rules, this.released, this.running), pending, stop);
  }

  /**
   * The attempt on what this store object's last update() of the key wrote, without a read (own-writes.ts).
   * Kept only if every mutation produced a value and the write, guarded by that write's revision and token,
   * lands. A failure or a SKIP would be answered on a state no write proved current, and a refusal of the
   * value (too large, invalid) may be the stale state's doing: then nothing is answered, and the attempt
   * starts over from a read (undefined), its mutations run again. Any other error (a DataLostError owed, a
   * cut write that may land) is the store's answer, as after a read.
   */
  private async attemptOnOwnWrite(own: StoredRecord<unknown>, pending: Caller[], stop: StopSignal): Promise<boolean | undefined> {
    const attempt = await compose(this.key, own, pending, this.rules, this.released, this.running);
    if (attempt.written === undefined || attempt.failed.size > 0 || [...attempt.outcomes.values()].some((o) => o.kind !== 'value')) return undefined;
    const refused = this.refusedWrite;
    this.guessed = attempt;
    try {
      return await this.write(attempt, pending, stop, own.writer);
    } catch (err) {
      if (!ConflictError.is(err) && !TooLargeError.is(err) && !ValidationError.is(err)) throw err;
      this.refusedWrite = refused;
      if (ConflictError.is(err)) missedOwnWrite(this.store, this.key);
      return undefined;
    }
  }

  /**
   * The attempt inside the store's write transaction: read, the mutations that
   * return at once, and the write are one step. A mutation that waits cannot
   * run there: the transaction writes nothing, and the attempt goes on outside
   * it from the record it read, as an ordinary one (a guarded put).
   */
  private async attemptInWrite(pending: Caller[], stop: StopSignal): Promise<boolean | typeof IN_WRITE_DECLINED> {
    let composition: Composition<Caller> | undefined;
    let resumeOutside = false;
    let written: Attempt<Caller> | undefined;
    // Until the transaction runs nothing of theirs is written; one answered by then is left out of it.
    waitOn(pending, 'read');
    let entry: Entry<unknown> | null;
    try {
      entry = await answerBy((this.store.updateInWrite as NonNullable<UpdatableStore['updateInWrite']>)(this.key, (read) => {
        // The store answers now; a caller answered while its mutation runs is told why, not "no answer".
        waitOn(pending, undefined);
        composition = new Composition(this.key, read, pending, this.rules, this.running);
        const attempt = composition.attempt;
        resumeOutside = composition.runNow() !== undefined;
        if (resumeOutside || attempt.written === undefined) return undefined;
        // A mutation answered another caller of this attempt (aborting its signal): start over without it.
        answerUnaffected(attempt, mayStillLand);
        if (answeredMidway(attempt)) return undefined;
        written = attempt;
        for (const c of exposedBy(attempt)) c.exposedIn.add(attempt);
        waitOn(pending, 'write');
        return { value: attempt.written, writer: attempt.token };
      }, this.policy.ttlMs), NO_DEADLINE, stop, false);
    } catch (err) {
      if (err === IN_WRITE_DECLINED) return err;
      const tried = written as Attempt<Caller> | undefined;
      if (tried !== undefined) {
        if (isAmbiguous(err)) this.suspects.push(tried);
        else for (const c of tried.outcomes.keys()) c.exposedIn.delete(tried);
        this.refusedWrite = err;
      }
      // A mutation still running for this attempt: the next attempt does not call it again meanwhile.
      await (composition as Composition<Caller> | undefined)?.abandon();
      throw err;
    }
    waitOn(pending, undefined);
    if (composition === undefined) return this.pending.length === 0;
    if (written !== undefined) {
      this.settle(written, entry);
      return true;
    }
    // Nothing written: a mutation waits, or nobody changed the value (or a caller was answered meanwhile).
    return this.write(resumeOutside ? await composition.finish(this.released) : composition.attempt, pending, stop);
  }

  /** The write of a composed attempt, guarded by the revision it read (and by its writer, `ownWriter`, when it read nothing). */
  private async write(attempt: Attempt<Caller>, pending: Caller[], stop: StopSignal, ownWriter?: string): Promise<boolean> {
    const read = attempt.read;
    answerUnaffected(attempt, mayStillLand);
    // A caller answered while the mutations ran (deadline, abort) must not be written: start over
    // without it. That attempt was not the others' doing, and does not count as one of theirs.
    if (answeredMidway(attempt)) {
      for (const other of pending) if (!other.settled) other.attempts--;
      return false;
    }
    if (attempt.written === undefined) {
      // Nothing to write — unless an earlier write of ours may still land, the state read is final.
      // Told why: the caller's own mutation error if it had one (a bug in it is not hidden), else the store's.
      // Only a caller whose value such a write carries is unsure: one that SKIPped in it wrote nothing.
      const unsure = new Set(this.suspects.flatMap(exposedBy));
      for (const c of unsure) c.fail(new OutcomeUnknownError(this.key, undefined, { cause: attempt.failed.has(c) ? attempt.failed.get(c) : this.lastError }));
      this.settle(attempt, null);
      return true;
    }
    // Never written: ifRevision 0 (a tombstone fails it), so a cut create cannot land after a later delete.
    const guard: PutOptions = wantWrittenBytes(this.store, { writer: attempt.token, ifRevision: read?.revision ?? 0 });
    if (this.policy.ttlMs !== undefined) guard.ttlMs = this.policy.ttlMs;
    // A SKIP caller's answer (what it saw) holds whether or not this write lands: it is not exposed to it.
    for (const c of exposedBy(attempt)) c.exposedIn.add(attempt);
    let entry: Entry<unknown>;
    try {
      waitOn(pending, 'write');
      const put = ownWriter === undefined ? this.store.put(this.key, attempt.written, guard) : (this.store.putOnOwnWrite as NonNullable<UpdatableStore['putOnOwnWrite']>).call(this.store, this.key, attempt.written, guard, ownWriter);
      entry = await answerBy(put, NO_DEADLINE, stop, true);
    } catch (err) {
      if (isAmbiguous(err)) this.suspects.push(attempt);
      else for (const c of attempt.outcomes.keys()) c.exposedIn.delete(attempt);
      this.refusedWrite = err;
      throw err;
    }
    this.settle(attempt, entry);
    return true;
  }

  /**
   * After lost acknowledgements: did one of our writes commit? If so its
   * attempt answers its callers. Returns true when everyone is answered.
   */
  private async resolveSuspects(read: StoredRecord<unknown> | null, stop: StopSignal): Promise<boolean> {
    // Newest first, and every one looked at before any caller is told "unknown": when a later
    // attempt committed, no earlier one can have (its guard is behind it), whatever history
    // still reaches of the earlier one's base.
    const verdicts: Array<[Attempt<Caller>, OwnWriteVerdict<unknown>]> = [];
    for (const suspect of [...this.suspects].reverse()) {
      const verdict = await lookForOwnWrite(this.store, this.key, read, suspect.token, suspect.base, NO_DEADLINE, stop);
      if (verdict.state === 'committed') {
        this.settle(suspect, isTombstone(verdict.record) ? null : verdict.record);
        return this.pending.length === 0;
      }
      verdicts.push([suspect, verdict]);
    }
    for (const [suspect, verdict] of verdicts) {
      // 'pending': the write may still land, but it is guarded by the revision read again now,
      // so at most one of it and the next write can commit; the next re-read tells which.
      // A call that has answered, even with an error, proves nothing: the statement may still be
      // running on a server whose client went away, and land after we read.
      if (verdict.state === 'pending') continue;
      this.suspects = this.suspects.filter((a) => a !== suspect);
      for (const c of suspect.outcomes.keys()) c.exposedIn.delete(suspect);
      // A caller that SKIPped in it wrote nothing: it is not told 'unknown', its mutation runs again on the state read.
      if (verdict.state === 'unknown') for (const c of exposedBy(suspect)) c.reject(new OutcomeUnknownError(this.key, undefined, { cause: this.lastError }));
    }
    return false;
  }

  private settle(attempt: Attempt<Caller>, entry: Entry<unknown> | null): void {
    // Whatever committed now, no other attempt of this loop ever can: their guards are behind it.
    for (const c of this.callers) c.exposedIn.clear();
    this.suspects = [];
    this.singleFile = false;
    if (entry !== null && attempt.written !== undefined) this.keep(attempt, entry);
    answer(attempt, entry);
  }

  /** What the next update() may start from (own-writes.ts): a write whose mutations returned at once (an async one run twice doubles the wait). */
  private keep(attempt: Attempt<Caller>, entry: Entry<unknown>): void {
    const bytes = takeWrittenBytes(entry);
    if (bytes !== undefined && attempt.waited === undefined && this.store.putOnOwnWrite !== undefined) keepOwnWrite(this.store, this.key, entry, attempt.token, bytes, attempt === this.guessed);
    else forgetOwnWrite(this.store, this.key);
  }

  /**
   * The write of `tried` was refused for good (too large, an unencodable
   * value). A caller tried alone gets that verdict (OutcomeUnknownError if an
   * earlier write of its may still land). Of several, each whose mutation
   * cannot have committed runs alone and gets its own verdict; those whose
   * earlier write may still land stay, one per attempt from now on — the
   * refusal may be a neighbour's doing, and only this loop knows the tokens
   * that tell whether their earlier write landed. True when callers stay.
   */
  private failForGood(err: unknown, tried: Caller[]): boolean {
    if (tried.length === 1) {
      tried[0]?.fail(err);
      return this.pending.length > 0;
    }
    // The store lost acknowledged writes: what every caller read may be gone, and a caller run again
    // alone would meet a store that told this process once and now answers — everyone is told.
    if (DataLostError.is(err)) {
      for (const c of tried) c.fail(err);
      return this.pending.length > 0;
    }
    // A read that fails for good says nothing about anyone's value: everyone gets it.
    const ofTheValue = err === this.refusedWrite;
    for (const c of tried) {
      if (c.exposedIn.size > 0) {
        if (!ofTheValue) c.fail(err);
        continue;
      }
      const maxAttempts = Math.max(1, c.maxAttempts - c.attempts + 1);
      c.runAlone((deadlineMs) => runUpdate(this.store, this.key, c.fn, { ...c.opts, deadlineMs, maxAttempts }));
    }
    this.singleFile = true;
    return this.pending.length > 0;
  }

  private async backOff(): Promise<void> {
    const pending = this.pending;
    if (pending.length === 0) return;
    const delay = backoffDelay(this.lastError, pending[0]?.attempts ?? 1, this.previousDelay, this.policy.retry);
    this.previousDelay = delay;
    for (const c of pending) {
      try {
        c.opts.onRetry?.({ key: this.key, attempt: c.attempts, error: this.lastError, delayMs: delay });
      } catch {
        // A metrics hook must not break the update.
      }
    }
    const untilSoonest = Math.min(...pending.map((c) => c.deadline)) - Date.now();
    const everyoneGone = abortWhenAllGone(pending);
    await sleep(Math.max(0, Math.min(delay, untilSoonest)), everyoneGone.signal, this.store.closedSignal).catch(() => undefined);
    everyoneGone.release();
  }
}

const mayStillLand = (c: Caller): boolean => c.exposedIn.size > 0;
const isAsync = (c: Caller): boolean => c.fn instanceof ASYNC_FUNCTION;

/** The callers whose value the write of `attempt` carries: if it may have committed, so may their mutation. */
function exposedBy(attempt: Attempt<Caller>): Caller[] {
  const exposed: Caller[] = [];
  for (const [c, outcome] of attempt.outcomes) if (outcome.kind === 'value') exposed.push(c);
  return exposed;
}

/** The loop's store calls end by the callers' own deadlines (see attempt()), not by one of theirs. */
const NO_DEADLINE = Infinity;
const ASYNC_FUNCTION = (async () => undefined).constructor;

