import { answer, answeredMidway, answerUnaffected, Composition, valueRules } from './compose.js';
import { Caller } from './caller.js';
import { BackendError, ClosedError, ConflictError, isAmbiguous } from './errors.js';
import { AttemptEnd } from './nested.js';
import { AttemptLoop, type LoopPolicy, type UpdatableStore } from './update.js';
import type { ValueRules } from './compose.js';
import { UPDATE_DEFAULTS } from './retry.js';
import type { Entry, Mutation, PutOptions, StoredRecord, UpdateOptions } from './types.js';

/** What a store whose reads and writes of a key run synchronously, with nothing able to come between them (memory), offers update(). */
export interface AtOnce {
  /** getRecord(), at once: the key's record (tombstones included) with a private copy of its value. */
  read(key: string): StoredRecord<unknown> | null;
  /** put() of a checked key and condition, at once: throws what put() would reject with, writing nothing. */
  write(key: string, value: unknown, options: PutOptions): Entry<unknown>;
}

/**
 * update() on such a store: the callers of a key that arrive together (in
 * one turn of the event loop) are read, composed and written in one step
 * — no conflict is possible, so there is no loop, no deadline timer and no
 * store call to wait for. What that step cannot settle goes on in the
 * ordinary attempt loop (update.ts): a mutation that returns a promise (from
 * the read it was given: it is not called twice for one attempt), a
 * mutation that answered a neighbour, a combined write refused for good.
 */
export class UpdatesAtOnce {
  private readonly forming = new Map<string, Caller[]>();
  private readonly loneRules: ValueRules;
  /**
   * Gathering costs a turn of the microtask queue, which a lone writer pays
   * on every call (a fifth of its update()): after LONE_GROUPS groups of one
   * in a row callers run at once, and one in PROBE_EVERY gathers again to
   * see whether others come along.
   */
  private lonelyGroups = 0;
  private calls = 0;
  /** A step is running: its mutations run synchronously inside it. */
  private stepping = false;

  constructor(private readonly store: UpdatableStore, private readonly now: AtOnce) {
    this.loneRules = valueRules(store, '', false);
  }

  /** `combine`: the caller may share a write (WriteCombiner.canCombine); else it runs alone. */
  update<T>(key: string, fn: Mutation<T>, opts: UpdateOptions<T>, combine: boolean): Promise<Entry<T> | null> {
    return new Promise((resolve, reject) => {
      const caller = new Caller(key, fn as Mutation<unknown>, opts as UpdateOptions<unknown>, resolve as (e: Entry<unknown> | null) => void, reject, false);
      if (caller.settled) return;
      // Called from a mutation of a step under way (re-entrant): it runs once that step has written, as a
      // caller queued behind a running attempt does, not in the middle of it (which would conflict it, over and over).
      const atOnce = !this.stepping && (!combine || (!this.forming.has(key) && this.lonelyGroups >= LONE_GROUPS && ++this.calls % PROBE_EVERY !== 0));
      if (atOnce) return this.run(key, [caller], combine ? COMBINED : policyOf(opts as UpdateOptions<unknown>));
      if (!combine) return queueMicrotask(() => this.run(key, [caller], policyOf(opts as UpdateOptions<unknown>)));
      let gathering = this.forming.get(key);
      if (gathering === undefined) {
        const callers: Caller[] = [];
        gathering = callers;
        this.forming.set(key, callers);
        queueMicrotask(() => {
          this.forming.delete(key);
          this.lonelyGroups = callers.length === 1 ? this.lonelyGroups + 1 : 0;
          this.run(key, callers, COMBINED);
        });
      }
      gathering.push(caller);
    });
  }

  /** Never throws: whatever goes wrong is its callers' answer. */
  private run(key: string, callers: Caller[], policy: LoopPolicy): void {
    this.stepping = true;
    try {
      this.step(key, callers, policy);
    } catch (err) {
      for (const c of callers) c.fail(err);
    } finally {
      this.stepping = false;
    }
  }

  private step(key: string, callers: Caller[], policy: LoopPolicy): void {
    const end = new AttemptEnd();
    let goesOn = false;
    try {
      goesOn = this.composeAndWrite(key, callers, policy, end);
    } finally {
      if (!goesOn) end.done();
    }
  }

  /** True when the attempt goes on in a loop, which settles `end` when it ends. */
  private composeAndWrite(key: string, callers: Caller[], policy: LoopPolicy, end: AttemptEnd): boolean {
    if (this.store.closedSignal?.aborted) {
      for (const c of callers) c.fail(new ClosedError(this.store.backend));
      return false;
    }
    // maxAttempts 0 or less: answered before any attempt, as the loop answers it.
    for (const c of callers) if (!c.settled && c.attempts >= c.maxAttempts) c.giveUp('attempts');
    const tried = callers.length === 1 ? callers : callers.filter((c) => !c.settled);
    if (tried.length === 0 || (tried[0] as Caller).settled) return false;
    for (const c of tried) c.attempts = 1;
    let composition: Composition<Caller>;
    try {
      const rules = tried.length > 1 ? valueRules(this.store, key, true) : this.loneRules;
      composition = new Composition(key, this.now.read(key), tried, rules, { owner: this.store, key, end: () => end.get() });
    } catch (err) {
      for (const c of tried) c.fail(err);
      return false;
    }
    if (composition.runNow() !== undefined) {
      // Mutations that wait come in bursts: the callers arriving next are gathered, not run one loop each.
      this.lonelyGroups = 0;
      return this.goOn(key, tried, policy, { begun: composition }, end);
    }
    const attempt = composition.attempt;
    answerUnaffected(attempt, nobodyWaits);
    // A mutation answered a neighbour whose value it carries (aborted its signal): start over without it, not counted.
    if (answeredMidway(attempt)) return this.goOn(key, tried, policy, { uncounted: true }, end);
    if (attempt.written === undefined) {
      answer(attempt, null);
      return false;
    }
    const guard: PutOptions = { writer: attempt.token, ifRevision: attempt.base };
    if (policy.ttlMs !== undefined) guard.ttlMs = policy.ttlMs;
    let entry: Entry<unknown>;
    try {
      entry = this.now.write(key, attempt.written, guard);
    } catch (err) {
      const carried = tried.filter((c) => !c.settled);
      // A conflict (a mutation wrote the key itself): attempt 1 failed as in the loop, which backs off and goes on.
      if (ConflictError.is(err) || (BackendError.is(err) && err.transient && !isAmbiguous(err))) return this.goOn(key, carried, policy, { failed: err }, end);
      // Whose doing a refusal of a combined value is, the loop tells (each caller alone, from a fresh read).
      if (carried.length > 1 && !isAmbiguous(err)) return this.goOn(key, carried, policy, { uncounted: true }, end);
      for (const c of carried) c.fail(err);
      return false;
    }
    answer(attempt, entry);
    return false;
  }

  /** The attempt loop takes over: from `begun` (attempt 1, a mutation waits), after attempt 1 `failed`, or anew (`uncounted`). */
  private goOn(key: string, callers: Caller[], policy: LoopPolicy, from: { begun: Composition<Caller> } | { failed: unknown } | { uncounted: true }, end: AttemptEnd): boolean {
    const pending = callers.filter((c) => !c.settled);
    for (const c of pending) {
      if ('uncounted' in from) c.attempts = 0;
      c.armDeadline();
    }
    if (pending.length === 0) return false;
    const loop = new AttemptLoop(this.store, key, pending, policy).run('begun' in from ? from.begun : undefined, 'failed' in from ? from.failed : undefined);
    void loop.then(() => end.done());
    return true;
  }
}

const LONE_GROUPS = 4;
const PROBE_EVERY = 32;
const COMBINED: LoopPolicy = { retry: UPDATE_DEFAULTS.retry };
const nobodyWaits = (): boolean => false;

function policyOf(opts: UpdateOptions<unknown>): LoopPolicy {
  const policy: LoopPolicy = { retry: opts.retry ?? UPDATE_DEFAULTS.retry };
  if (opts.ttlMs !== undefined) policy.ttlMs = opts.ttlMs;
  return policy;
}
