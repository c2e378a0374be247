import { newWriterToken } from './own-write.js';
import { isTombstone, SKIP, type Entry, type Mutation, type StoredRecord, type UpdateOptions } from './types.js';
import { ValidationError } from './errors.js';
import { validateNow } from './validate.js';
import { answerBy, type StopSignal } from './waiting.js';

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
  /** The value written: that of the last caller that changed it; undefined when nobody changed it. */
  written?: unknown;
}

/**
 * Applies each caller's mutation in arrival order to the state read. A
 * mutation that throws or fails validation is left out of the value; a caller
 * answered meanwhile (deadline, abort) is passed over.
 */
export async function compose<C extends Carried>(key: string, read: StoredRecord<unknown> | null, callers: C[]): Promise<Attempt<C>> {
  const live = read !== null && !isTombstone(read);
  const attempt: Attempt<C> = { token: newWriterToken(), read, base: read?.revision ?? 0, outcomes: new Map(), failed: new Map() };
  let value: unknown = live ? (read as Entry<unknown>).value : undefined;
  let exists = live;
  let changed = false;
  for (const c of callers) {
    // Answered (deadline, abort) while an earlier mutation of this attempt ran: its own is not run.
    if (c.settled) continue;
    try {
      const result = mutate(key, c, exists ? privateCopy(value) : defaultOf(key, c.opts));
      // A mutation that returns at once is taken at once: only one that waits can outlive its
      // caller, and it is given up (GONE) as soon as the caller has its answer.
      const next = isThenable(result) ? await answerBy(result as Promise<unknown>, Infinity, c.gone, false, GONE) : result;
      if (next === SKIP) {
        attempt.outcomes.set(c, { kind: 'skip', seen: value, exists, unchanged: !changed });
        continue;
      }
      value = next;
      exists = true;
      changed = true;
      attempt.outcomes.set(c, { kind: 'value', value });
    } catch (err) {
      if (err !== GONE) attempt.failed.set(c, err);
    }
  }
  if (changed) attempt.written = value;
  return attempt;
}

function mutate(key: string, c: Carried, current: unknown): unknown {
  const next = c.fn(current);
  if (isThenable(next)) return Promise.resolve(next).then((resolved) => checked(key, c, resolved));
  return checked(key, c, next);
}

function checked(key: string, c: Carried, next: unknown): unknown {
  return next === SKIP ? SKIP : validateNow(key, next, c.opts);
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}


/**
 * Answers the callers of `attempt`: `entry` is its committed write (or, when
 * nothing was written, the record read, or null). Each caller gets the value
 * its own mutation produced (a SKIP caller: the value it saw) with the
 * revision of the commit; a failed mutation gets its error.
 */
export function answer(attempt: Attempt, entry: Entry<unknown> | null): void {
  const read = attempt.read !== null && !isTombstone(attempt.read) ? (attempt.read as Entry<unknown>) : null;
  for (const [c, outcome] of attempt.outcomes) {
    if (outcome.kind === 'value') {
      c.resolve(entry && outcome.value !== attempt.written ? { ...entry, value: outcome.value } : entry);
    } else if (outcome.unchanged) {
      c.resolve(read && { ...read, value: privateCopy(read.value) });
    } else {
      c.resolve(entry && outcome.exists ? { ...entry, value: privateCopy(outcome.seen) } : null);
    }
  }
  for (const [c, err] of attempt.failed) c.reject(err);
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
function privateCopy<V>(v: V): V {
  return v === null || typeof v !== 'object' ? v : structuredClone(v);
}
