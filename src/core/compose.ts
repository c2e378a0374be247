import { newWriterToken } from './own-write.js';
import { isTombstone, SKIP, type Entry, type Mutation, type StoredRecord, type UpdateOptions } from './types.js';
import { ValidationError } from './errors.js';
import { isThenable, validateNow } from './validate.js';
import { answerBy, type StopSignal } from './waiting.js';
import { enterMutation, leaveMutation, type MutatingAttempt } from './nested.js';

/**
 * What one attempt of update() writes, and what each caller it carries is
 * answered if that write commits (docs/semantics.md, "update()"). Concurrent
 * update()s of one key in one process share an attempt: each mutation is
 * applied in arrival order to the result of the one before, and the value
 * written is the last one; a lone caller is the case of one. The attempt
 * loop (update.ts) owns everything else: reads, retries, lost
 * acknowledgements, deadlines.
 */

/** What composing needs of a waiting caller. */
export interface Carried {
  readonly fn: Mutation<unknown>;
  readonly opts: UpdateOptions<unknown>;
  readonly settled: boolean;
  /** Fires when the caller has its answer, so nothing waits for it any longer. */
  readonly gone: StopSignal;
  resolve(entry: Entry<unknown> | null): void;
  reject(err: unknown): void;
}

export const GONE = Symbol('caller gone');

type Outcome =
  | { kind: 'value'; value: unknown }
  | { kind: 'skip'; seen: unknown; exists: boolean; unchanged: boolean };

/** What one attempt computed: who is answered how if its write commits. */
export interface Attempt<C extends Carried = Carried> {
  token: string;
  read: StoredRecord<unknown> | null;
  /** The revision its write is guarded by (0: must not exist). */
  base: number;
  outcomes: Map<C, Outcome>;
  failed: Map<C, unknown>;
  /** Of those, the ones whose mutation ran on the value read (no caller before them changed it): alone they fail the same. */
  failedOnRead: Set<C>;
  /** The value written: that of the last caller that changed it; undefined when nobody changed it. */
  written?: unknown;
  /** That caller: it is answered with the entry the write returns, the others with their own copies. */
  writtenBy?: C;
  /** How a value read or composed is copied for a caller (ValueRules.copy). */
  copy: ValueCopy;
  /** Set when a mutation returned a promise: the next update() of the key reads it (own-writes.ts). */
  waited?: true;
}

/**
 * Applies each caller's mutation in arrival order to the state read. A
 * mutation that throws or fails validation is left out of the value; a caller
 * answered meanwhile (deadline, abort) is passed over.
 */
export function compose<C extends Carried>(key: string, read: StoredRecord<unknown> | null, callers: C[], rules?: ValueRules, onWait?: () => void, running?: MutatingAttempt): Promise<Attempt<C>> {
  return new Composition(key, read, callers, rules, running).finish(onWait);
}

/** What the store says of values (UpdatableStore.checkValue, copyValue). */
export interface ValueRules {
  /** Throws what the store would refuse a value for (too large, unencodable), writing nothing; else the value as a write's caller gets it back. */
  check?: (value: unknown) => unknown;
  /** A private copy of a value, as the store's codec would give it back. */
  copy: ValueCopy;
}

export type ValueCopy = (value: unknown) => unknown;

/** A mutation that returned a promise: the composition goes on once it settles. */
export interface Waiting<C> {
  caller: C;
  result: Promise<unknown>;
}

/**
 * compose() in steps: runNow() applies the mutations that return at once and
 * stops at the first that waits, so a store can run a whole attempt of
 * synchronous mutations inside its write transaction (SQLite) and finish one
 * that waits outside it, without calling any mutation twice.
 */
export class Composition<C extends Carried> {
  readonly attempt: Attempt<C>;
  private next = 0;
  private value: unknown;
  private exists: boolean;
  private changed = false;
  private writer: C | undefined;
  /** The mutation runNow() stopped at, until finish() has waited for it. */
  private waiting: Waiting<C> | undefined;

  constructor(
    private readonly key: string,
    read: StoredRecord<unknown> | null,
    private readonly callers: C[],
    private readonly rules: ValueRules = { copy: privateCopy },
    /** The attempt the mutations run in: an update() of this key started inside one waits for its end (nested.ts). */
    private readonly running?: MutatingAttempt,
  ) {
    this.exists = read !== null && !isTombstone(read);
    this.value = this.exists ? (read as Entry<unknown>).value : undefined;
    this.attempt = { token: newWriterToken(), read, base: read?.revision ?? 0, outcomes: new Map(), failed: new Map(), failedOnRead: new Set(), copy: this.rules.copy };
  }

  /** Applies mutations until one waits (returned) or all are applied (undefined: `attempt` is complete). */
  runNow(): Waiting<C> | undefined {
    while (this.next < this.callers.length) {
      const c = this.callers[this.next++] as C;
      // Answered (deadline, abort) while an earlier mutation of this attempt ran: its own is not run.
      if (c.settled) continue;
      let result: unknown;
      const outer = enterMutation(this.running);
      try {
        result = mutate(this.key, c, this.exists ? this.rules.copy(this.value) : defaultOf(this.key, c.opts));
      } catch (err) {
        this.fail(c, err);
        continue;
      } finally {
        leaveMutation(outer);
      }
      if (isThenable(result)) {
        // Handled here too: if the attempt is given up before finish() waits for it, a rejection is not unhandled.
        (result as Promise<unknown>).catch(ignore);
        this.attempt.waited = true;
        return (this.waiting = { caller: c, result: result as Promise<unknown> });
      }
      this.took(c, result);
    }
    if (this.changed) {
      this.attempt.written = this.value;
      this.attempt.writtenBy = this.writer;
    }
    return undefined;
  }

  /**
   * Runs every mutation, waiting for those that wait; a waiting one is given up (GONE) once its caller
   * has its answer. `onWait` is called before each wait.
   */
  async finish(onWait?: () => void): Promise<Attempt<C>> {
    for (let waiting = this.waiting ?? this.runNow(); waiting !== undefined; waiting = this.runNow()) {
      this.waiting = undefined;
      onWait?.();
      try {
        this.took(waiting.caller, await answerBy(waiting.result, Infinity, waiting.caller.gone, false, GONE));
      } catch (err) {
        if (err !== GONE) this.fail(waiting.caller, err);
      }
    }
    return this.attempt;
  }

  /** The attempt is given up: resolves once the mutation runNow() stopped at (if any) has settled, or its caller is answered. */
  async abandon(): Promise<void> {
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting) await answerBy(waiting.result, Infinity, waiting.caller.gone, false, GONE).catch(ignore);
  }

  private fail(c: C, err: unknown): void {
    this.attempt.failed.set(c, err);
    if (!this.changed) this.attempt.failedOnRead.add(c);
  }

  private took(c: C, next: unknown): void {
    if (next === SKIP) {
      this.attempt.outcomes.set(c, { kind: 'skip', seen: this.value, exists: this.exists, unchanged: !this.changed });
      return;
    }
    // A value a later caller's may replace is checked now: alone, its caller would be refused, and
    // combining must not turn that into a success (nor let later mutations build on it). From here
    // on it is what the store would give back (a copy its caller alone holds, -0 read as 0…).
    if (this.rules.check !== undefined && this.next < this.callers.length) {
      try {
        next = this.rules.check(next);
      } catch (err) {
        this.fail(c, err);
        return;
      }
    }
    this.value = next;
    this.exists = true;
    this.changed = true;
    this.writer = c;
    this.attempt.outcomes.set(c, { kind: 'value', value: next });
  }
}

const ignore = (): void => undefined;

function mutate(key: string, c: Carried, current: unknown): unknown {
  const next = c.fn(current);
  if (isThenable(next)) return Promise.resolve(next).then((resolved) => checked(key, c, resolved));
  return checked(key, c, next);
}

function checked(key: string, c: Carried, next: unknown): unknown {
  return next === SKIP ? SKIP : validateNow(key, next, c.opts);
}

/**
 * Answers the callers of `attempt`: `entry` is its committed write (or, when
 * nothing was written, the record read, or null). Each caller gets the value
 * its own mutation produced (a SKIP caller: the value it saw) with the
 * revision of the commit; a failed mutation gets its error.
 */
export function answer(attempt: Attempt, entry: Entry<unknown> | null): void {
  for (const [c, outcome] of attempt.outcomes) {
    if (c.settled) continue;
    if (outcome.kind === 'value') {
      c.resolve(entry && c !== attempt.writtenBy ? { ...entry, value: outcome.value } : entry);
    } else if (outcome.unchanged) {
      c.resolve(entryRead(attempt));
    } else {
      c.resolve(entry && outcome.exists ? { ...entry, value: attempt.copy(outcome.seen) } : null);
    }
  }
  for (const [c, err] of attempt.failed) c.reject(err);
}

/**
 * Answers now the callers of `attempt` whose answer its write cannot change, as they would be
 * answered alone: those whose mutation ran on the value read (no caller before them changed it) and
 * failed (nothing of it is written: its error) or SKIPped (the entry read). Carried on to the write,
 * a neighbour's conflict would run their mutation again, and a neighbour's failure would become
 * theirs. One that saw a neighbour's value waits: should that value not be written, it runs again.
 * `waits`: a caller an earlier write of whose may still land; the write that settles that answers it.
 */
export function answerUnaffected<C extends Carried>(attempt: Attempt<C>, waits: (c: C) => boolean): void {
  for (const c of attempt.failedOnRead) if (!waits(c)) c.reject(attempt.failed.get(c));
  for (const [c, outcome] of attempt.outcomes) if (outcome.kind === 'skip' && outcome.unchanged && !c.settled && !waits(c)) c.resolve(entryRead(attempt));
}

/**
 * A caller whose value the attempt carries was answered while later mutations
 * ran (its deadline or signal): the attempt must not be written. (One that
 * failed or SKIPped added nothing that later callers built on.)
 */
export function answeredMidway(attempt: Attempt): boolean {
  for (const [c, outcome] of attempt.outcomes) if (outcome.kind === 'value' && c.settled) return true;
  return false;
}

/** What a SKIP caller that saw the value read is answered: a copy of the entry read, or null. */
function entryRead(attempt: Attempt): Entry<unknown> | null {
  const read = attempt.read !== null && !isTombstone(attempt.read) ? (attempt.read as Entry<unknown>) : null;
  return read && { ...read, value: attempt.copy(read.value) };
}

function defaultOf(key: string, opts: UpdateOptions<unknown>): unknown {
  const d = opts.default;
  if (typeof d === 'function') return (d as () => unknown)();
  try {
    return privateCopy(d);
  } catch (err) {
    // structuredClone refuses functions, symbols, WeakMaps…: no value revkit stores holds one.
    throw new ValidationError([{ message: `the default cannot be copied for the mutation: ${(err as Error)?.message ?? String(err)}` }], key);
  }
}

/** A copy no other caller shares: a primitive is its own (nothing can change it in place). */
export function privateCopy<V>(v: V): V {
  return v === null || typeof v !== 'object' ? v : structuredClone(v);
}

/** How a store's values are copied for its callers and, when callers are combined, checked (UpdatableStore.checkValue, copyValue). */
export function valueRules(store: { checkValue?(value: unknown, key: string): unknown; copyValue?(value: unknown): unknown }, key: string, combined: boolean): ValueRules {
  const copy = store.copyValue ? (value: unknown) => (store.copyValue as (v: unknown) => unknown).call(store, value) : privateCopy;
  return combined && store.checkValue ? { copy, check: (value) => (store.checkValue as (v: unknown, k: string) => unknown).call(store, value, key) } : { copy };
}
