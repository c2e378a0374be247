/**
 * Linearizability checker in the porcupine family: the Wing–Gong search over
 * a linked list of call/return entries, with Lowe's memoisation of
 * (linearised set, model state), run per partition (per key).
 *
 * Unknown outcomes follow porcupine: such an operation gets return time
 * +infinity and output `undefined`, and the model must accept any output for
 * it. "Never took effect" needs no special case: with an infinite return the
 * operation can always be linearised after everything else.
 */
import type { Operation } from './history.js';

export type CheckResult = 'ok' | 'illegal' | 'unknown';

export interface Model<S, I, O> {
  name: string;
  /** Splits a history into independent sub-histories (e.g. per key). */
  partition?(ops: Operation<I, O>[]): Operation<I, O>[][];
  /** Key of an operation: names partitions in reports, and partitions by key when `partition` is absent. */
  keyOf?(input: I): string;
  init(): S;
  /** `output === undefined` means the outcome is unknown: accept any result. */
  step(state: S, input: I, output: O | undefined): [boolean, S];
  /** Defaults to equality of `hash`. If given, equal states must still hash alike. */
  equal?(a: S, b: S): boolean;
  hash(state: S): string;
  describeOperation?(input: I, output: O | undefined): string;
  describeState?(state: S): string;
}

export interface CheckOptions {
  /** Overall time bound; past it the answer is `unknown` unless a violation was already found. */
  timeoutMs?: number;
  /** How many operations of the longest prefix to print. Default 8. */
  contextOps?: number;
}

export interface CounterExample<I, O> {
  key: string;
  /** The longest linearisable prefix found, in linearisation order. */
  prefix: Operation<I, O>[];
  /** The operation that could not be placed after that prefix (before its return). */
  blocked: Operation<I, O>;
  /** The model state after the prefix, described. */
  state: string;
  text: string;
}

export interface CheckReport<I, O> {
  result: CheckResult;
  model: string;
  operations: number;
  partitions: number;
  elapsedMs: number;
  counterExample?: CounterExample<I, O>;
  /** Partitions whose search was cut off by the time bound. */
  timedOut: string[];
}

export function checkOperations<S, I, O>(model: Model<S, I, O>, history: readonly Operation<I, O>[], options: CheckOptions = {}): CheckReport<I, O> {
  const started = performance.now();
  const deadline = options.timeoutMs ? started + options.timeoutMs : Infinity;
  const ops = normalise(history);
  const parts = partitionOps(model, ops);
  // Small partitions first: with one thread and one deadline, this finds a
  // violation in a small key before a huge key can eat the whole budget.
  const order = parts.map((p, i) => ({ p, i })).sort((a, b) => a.p.length - b.p.length);
  const timedOut: string[] = [];
  const report = (result: CheckResult, counterExample?: CounterExample<I, O>): CheckReport<I, O> => ({
    result,
    model: model.name,
    operations: ops.length,
    partitions: parts.length,
    elapsedMs: performance.now() - started,
    timedOut,
    ...(counterExample ? { counterExample } : {}),
  });
  for (const { p, i } of order) {
    const key = partitionName(model, p, i, parts.length);
    const r = checkPartition(model, p, deadline);
    if (r.result === 'unknown') timedOut.push(key);
    else if (r.result === 'illegal') return report('illegal', counterExample(model, key, p, r, options.contextOps ?? 8));
  }
  return report(timedOut.length > 0 ? 'unknown' : 'ok');
}

/** Drops uninformative failures and gives unknown outcomes an infinite return. */
function normalise<I, O>(history: readonly Operation<I, O>[]): Operation<I, O>[] {
  const out: Operation<I, O>[] = [];
  for (const op of history) {
    if (op.status === 'fail' && op.output === undefined) continue;
    if (op.status === 'unknown') out.push({ ...op, output: undefined, return: Infinity });
    else {
      if (!(op.return >= op.call)) throw new Error(`checker: operation returns (${op.return}) before its call (${op.call})`);
      out.push(op);
    }
  }
  return out;
}

function partitionOps<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[]): Operation<I, O>[][] {
  if (model.partition) return model.partition(ops).filter((p) => p.length > 0);
  const keyOf = model.keyOf;
  if (!keyOf) return ops.length > 0 ? [ops] : [];
  const byKey = new Map<string, Operation<I, O>[]>();
  for (const op of ops) {
    const k = keyOf(op.input);
    const list = byKey.get(k);
    if (list) list.push(op);
    else byKey.set(k, [op]);
  }
  return [...byKey.values()];
}

function partitionName<S, I, O>(model: Model<S, I, O>, p: Operation<I, O>[], i: number, count: number): string {
  const first = p[0];
  if (model.keyOf && first) return model.keyOf(first.input);
  return count === 1 ? '(whole history)' : `partition ${i}`;
}

interface PartitionResult<S> {
  result: CheckResult;
  /** Indices (into the partition) of the longest linearisable prefix. */
  prefix: number[];
  blocked: number;
  state: S | undefined;
}

/** Deterministic 32-bit xorshift, so Zobrist keys (and runs) are reproducible. */
function zobristKeys(n: number, seed: number): Uint32Array {
  const keys = new Uint32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    keys[i] = x;
  }
  return keys;
}

function checkPartition<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[], deadline: number): PartitionResult<S> {
  const n = ops.length;
  // Entry 2k is op k's call, 2k+1 its return; sorted by time, calls before
  // returns at equal times (ties count as concurrent, the safe reading).
  const order = Array.from({ length: 2 * n }, (_, e) => e);
  const time = (e: number): number => (e & 1 ? ops[e >> 1]!.return : ops[e >> 1]!.call);
  order.sort((a, b) => time(a) - time(b) || (a & 1) - (b & 1) || a - b);
  const head = 2 * n;
  const next = new Int32Array(2 * n + 1).fill(-1);
  const prev = new Int32Array(2 * n + 1).fill(-1);
  let last = head;
  for (const e of order) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  const lift = (c: number): void => {
    const r = c + 1;
    next[prev[c]!] = next[c]!;
    prev[next[c]!] = prev[c]!; // a call always has its return after it
    next[prev[r]!] = next[r]!;
    if (next[r]! !== -1) prev[next[r]!] = prev[r]!;
  };
  const unlift = (c: number): void => {
    const r = c + 1;
    next[prev[r]!] = r;
    if (next[r]! !== -1) prev[next[r]!] = r;
    next[prev[c]!] = c;
    prev[next[c]!] = c;
  };

  // Linearised set as a bitset, plus an incrementally maintained 64-bit
  // Zobrist hash of it, so a cache key costs O(1) rather than O(n / 32).
  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const z1 = zobristKeys(n, 0x9e3779b9);
  const z2 = zobristKeys(n, 0x85ebca6b);
  let h1 = 0;
  let h2 = 0;
  const flip = (k: number): void => {
    bits[k >>> 5]! ^= 1 << (k & 31);
    h1 = (h1 ^ z1[k]!) >>> 0;
    h2 = (h2 ^ z2[k]!) >>> 0;
  };
  // Lowe's cache of visited (linearised set, state) configurations. State
  // hashes are interned to small ids so the cache needs no string keys.
  const stateIds = new Map<string, number>();
  const visited = new VisitedSet<S>(words, model.equal);
  const remember = (state: S): boolean => {
    const h = model.hash(state);
    let sid = stateIds.get(h);
    if (sid === undefined) stateIds.set(h, (sid = stateIds.size));
    return visited.add(h1, h2, sid, bits, state);
  };

  const calls: { entry: number; state: S }[] = [];
  let state = model.init();
  let best: PartitionResult<S> = { result: 'illegal', prefix: [], blocked: -1, state: undefined };
  let entry = next[head]!;
  let steps = 0;
  while (next[head]! !== -1) {
    if ((++steps & 1023) === 0 && performance.now() > deadline) return { ...best, result: 'unknown' };
    if ((entry & 1) === 0) {
      const op = ops[entry >> 1]!;
      const [ok, nextState] = model.step(state, op.input, op.output);
      if (ok) {
        flip(entry >> 1);
        if (remember(nextState)) {
          calls.push({ entry, state });
          state = nextState;
          lift(entry);
          entry = next[head]!;
          continue;
        }
        flip(entry >> 1);
      }
      entry = next[entry]!;
    } else {
      // A return whose operation is not linearised yet: nothing before it can
      // be placed next, so the current prefix is a dead end. Backtrack.
      if (calls.length > best.prefix.length || best.blocked < 0) {
        best = { result: 'illegal', prefix: calls.map((c) => c.entry >> 1), blocked: entry >> 1, state };
      }
      const top = calls.pop();
      if (!top) return best;
      state = top.state;
      flip(top.entry >> 1);
      unlift(top.entry);
      entry = next[top.entry]!;
    }
  }
  return { result: 'ok', prefix: calls.map((c) => c.entry >> 1), blocked: -1, state };
}

/**
 * Open-addressing hash set of configurations in flat typed arrays: the hot
 * loop allocates nothing per entry. Entries are verified against the full
 * bitset (and state), so a hash collision costs time, never a wrong answer.
 */
class VisitedSet<S> {
  private table = new Int32Array(1 << 12).fill(-1);
  private count = 0;
  private meta = new Uint32Array(3 << 12); // h1, h2, state id per entry
  private arena: Uint32Array;
  private readonly states: S[] = [];

  constructor(
    private readonly words: number,
    private readonly equal: ((a: S, b: S) => boolean) | undefined,
  ) {
    this.arena = new Uint32Array(Math.max(1, words) << 12);
  }

  /** Adds the configuration; false if it was already there. */
  add(h1: number, h2: number, sid: number, bits: Uint32Array, state: S): boolean {
    const { words, equal } = this;
    let mask = this.table.length - 1;
    let slot = (h1 ^ Math.imul(sid, 0x9e3779b1)) & mask;
    for (let e = this.table[slot]!; e !== -1; slot = (slot + 1) & mask, e = this.table[slot]!) {
      if (this.meta[3 * e] !== h1 || this.meta[3 * e + 1] !== h2 || this.meta[3 * e + 2] !== sid) continue;
      let same = true;
      for (let w = 0, o = e * words; w < words && same; w++) same = this.arena[o + w] === bits[w];
      if (same && (!equal || equal(this.states[e]!, state))) return false;
    }
    const e = this.count++;
    if ((e + 1) * words > this.arena.length || 3 * (e + 1) > this.meta.length) this.grow();
    this.meta[3 * e] = h1;
    this.meta[3 * e + 1] = h2;
    this.meta[3 * e + 2] = sid;
    this.arena.set(bits, e * words);
    if (equal) this.states[e] = state;
    if (2 * this.count > this.table.length) {
      this.rehash();
      mask = this.table.length - 1;
      slot = (h1 ^ Math.imul(sid, 0x9e3779b1)) & mask;
      while (this.table[slot]! !== -1) slot = (slot + 1) & mask;
    }
    this.table[slot] = e;
    return true;
  }

  private grow(): void {
    const meta = new Uint32Array(this.meta.length * 2);
    meta.set(this.meta);
    this.meta = meta;
    const arena = new Uint32Array(this.arena.length * 2);
    arena.set(this.arena);
    this.arena = arena;
  }

  /** Doubles the table and reinserts all entries but the one being added. */
  private rehash(): void {
    this.table = new Int32Array(this.table.length * 2).fill(-1);
    const mask = this.table.length - 1;
    for (let e = 0; e < this.count - 1; e++) {
      let slot = (this.meta[3 * e]! ^ Math.imul(this.meta[3 * e + 2]!, 0x9e3779b1)) & mask;
      while (this.table[slot]! !== -1) slot = (slot + 1) & mask;
      this.table[slot] = e;
    }
  }
}

function counterExample<S, I, O>(model: Model<S, I, O>, key: string, ops: Operation<I, O>[], r: PartitionResult<S>, context: number): CounterExample<I, O> {
  const prefix = r.prefix.map((k) => ops[k]!);
  const blocked = ops[r.blocked]!;
  const state = r.state === undefined ? '?' : model.describeState ? model.describeState(r.state) : model.hash(r.state);
  const line = (op: Operation<I, O>): string => describeOp(model, op);
  const shown = prefix.slice(Math.max(0, prefix.length - context));
  const text = [
    `not linearizable (${model.name}) on key ${JSON.stringify(key)}`,
    `  longest linearizable prefix: ${prefix.length} of ${ops.length} operations` + (shown.length < prefix.length ? `, last ${shown.length}:` : ':'),
    ...(prefix.length > shown.length ? ['    …'] : []),
    ...shown.map((op) => `    ${line(op)}`),
    `  state after it: ${state}`,
    `  cannot be linearized after it: ${line(blocked)}`,
  ].join('\n');
  return { key, prefix, blocked, state, text };
}

export function describeOp<S, I, O>(model: Model<S, I, O>, op: Operation<I, O>): string {
  const what = model.describeOperation ? model.describeOperation(op.input, op.output) : `${JSON.stringify(op.input)} -> ${op.output === undefined ? '?' : JSON.stringify(op.output)}`;
  const t = (x: number): string => (Number.isFinite(x) ? String(Math.round(x * 1000) / 1000) : '∞');
  return `client ${String(op.clientId)} [${t(op.call)}..${t(op.return)}] ${what}${op.status === 'unknown' ? ' (outcome unknown)' : ''}`;
}

// ---------------------------------------------------------------------------
// Models

/** Canonical JSON (sorted object keys): equality and hashing of JSON values. */
export function canonicalJson(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return String(v);
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}
// Primitives compare with ===; only objects pay for canonical JSON.
const same = (a: unknown, b: unknown): boolean =>
  a === b || (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && canonicalJson(a) === canonicalJson(b));
const show = (v: unknown): string => (v === undefined ? '?' : JSON.stringify(v));

/** 1. A single compare-and-swap register; `null` is "never written". */
export type CasInput<V = unknown> = { op: 'read' } | { op: 'write'; value: V } | { op: 'cas'; from: V; to: V };
/** read → `{ value }`; write → `{ ok: true }`; cas → `{ ok }` (`ok: false`: the value was not `from`). */
export type CasOutput<V = unknown> = { value: V | null } | { ok: boolean };

export const casRegisterModel: Model<unknown, CasInput, CasOutput> = {
  name: 'cas-register',
  init: () => null,
  step(state, input, output) {
    switch (input.op) {
      case 'read':
        return [output === undefined || ('value' in output && same(output.value, state)), state];
      case 'write':
        return [true, input.value];
      case 'cas': {
        const matches = same(state, input.from);
        const next = matches ? input.to : state;
        return [output === undefined || ('ok' in output && output.ok === matches), next];
      }
    }
  },
  hash: canonicalJson,
  describeState: show,
  describeOperation(input, output) {
    if (input.op === 'read') return `read() -> ${output === undefined ? '?' : 'value' in output ? show(output.value) : show(output)}`;
    const res = output === undefined ? '?' : 'ok' in output ? (output.ok ? 'ok' : 'fail') : show(output);
    return input.op === 'write' ? `write(${show(input.value)}) -> ${res}` : `cas(${show(input.from)}, ${show(input.to)}) -> ${res}`;
  },
};

/**
 * 2. The revkit versioned key-value store (docs/semantics.md, "Keys, values, revisions" and "Operations"), one key per
 * partition. Produced by `revkit check` workers calling a Store; an `update`
 * is recorded as its final guarded `put`.
 */
export type KvCondition = { ifAbsent: true } | { ifRevision: number } | { ifValue: unknown };
export type VersionedKvInput =
  | { op: 'get'; key: string }
  | { op: 'put'; key: string; value: unknown; cond?: KvCondition }
  | { op: 'delete'; key: string; cond?: KvCondition };
/**
 * get → the live entry `{ value, revision }` or `null`;
 * put → `{ ok: true, revision }` (the new entry's revision);
 * delete → `{ ok: true, revision }` (the tombstone's) or `{ ok: true, revision: null }` (nothing there);
 * a ConflictError → `{ ok: false }`, with `actual` (the key's current revision, `null` if never written) when known.
 */
export type VersionedKvOutput = { value: unknown; revision: number } | null | { ok: true; revision: number | null } | { ok: false; actual?: number | null };

/**
 * Revisions are opaque increasing integers, so after a write with unknown
 * outcome the state only knows a lower bound (`exact: false`: current
 * revision ≥ `revision`), and after a conditional write whose condition we
 * cannot decide, not even the value (`known: false`). Later observations
 * pin the state again. Both only ever widen what is accepted: no false alarms.
 */
export interface VersionedKvState {
  known: boolean;
  live: boolean;
  value: unknown;
  /** Exact current revision (0 = never written), or a lower bound when `!exact`. */
  revision: number;
  exact: boolean;
}

type Verdict = 'yes' | 'no' | 'maybe';
function holds(s: VersionedKvState, cond: KvCondition | undefined): Verdict {
  if (!cond) return 'yes';
  if ('ifRevision' in cond) return s.exact ? (s.revision === cond.ifRevision ? 'yes' : 'no') : cond.ifRevision >= s.revision ? 'maybe' : 'no';
  if (!s.known) return 'maybe';
  if ('ifAbsent' in cond) return s.live ? 'no' : 'yes';
  return s.live && same(s.value, cond.ifValue) ? 'yes' : 'no';
}
/** What a condition that held tells us about a state where it was only 'maybe'. */
function assume(s: VersionedKvState, cond: KvCondition | undefined): VersionedKvState {
  if (!cond) return s;
  if ('ifRevision' in cond) return { ...s, revision: cond.ifRevision, exact: true };
  if ('ifAbsent' in cond) return { ...s, known: true, live: false, value: null };
  return { ...s, known: true, live: true, value: cond.ifValue };
}
const havoc = (s: VersionedKvState): VersionedKvState => ({ known: false, live: false, value: null, revision: s.revision, exact: false });
const revisionIs = (s: VersionedKvState, r: number): boolean => (s.exact ? s.revision === r : r >= s.revision);

function writeStep(s: VersionedKvState, input: Exclude<VersionedKvInput, { op: 'get' }>, output: VersionedKvOutput | undefined): [boolean, VersionedKvState] {
  const isPut = input.op === 'put';
  const after = (rev: number, exact: boolean): VersionedKvState =>
    isPut ? { known: true, live: true, value: input.value, revision: rev, exact } : { known: true, live: false, value: null, revision: rev, exact };
  if (output === undefined) {
    const v = holds(s, input.cond);
    if (v === 'no') return [true, s];
    if (v === 'maybe') return [true, havoc(s)];
    if (isPut || !s.known || s.live) return [true, after(s.revision + 1, false)];
    return [true, s]; // delete of nothing writes nothing
  }
  if (output === null || !('ok' in output)) return [false, s];
  if (!output.ok) {
    let st = s;
    if (output.actual !== undefined) {
      const actual = output.actual ?? 0;
      if (!revisionIs(st, actual)) return [false, s];
      st = { ...st, revision: actual, exact: true };
    }
    return [holds(st, input.cond) !== 'yes', st];
  }
  if (holds(s, input.cond) === 'no') return [false, s];
  const st = assume(s, input.cond);
  if (output.revision === null) {
    // Only a delete finding nothing there may report no revision.
    return [!isPut && !(st.known && st.live), { ...st, known: true, live: false, value: null }];
  }
  if (!isPut && st.known && !st.live) return [false, s];
  return [output.revision > st.revision, after(output.revision, true)];
}

export const versionedKvModel: Model<VersionedKvState, VersionedKvInput, VersionedKvOutput> = {
  name: 'versioned-kv',
  keyOf: (input) => input.key,
  init: () => ({ known: true, live: false, value: null, revision: 0, exact: true }),
  step(s, input, output) {
    if (input.op !== 'get') return writeStep(s, input, output);
    if (output === undefined) return [true, s];
    if (output !== null && !('value' in output && 'revision' in output)) return [false, s];
    if (output === null) return [!(s.known && s.live), { ...s, known: true, live: false, value: null }];
    const ok = (!s.known || (s.live && same(s.value, output.value))) && revisionIs(s, output.revision);
    return [ok, { known: true, live: true, value: output.value, revision: output.revision, exact: true }];
  },
  hash: (s) => `${s.known ? 'k' : '?'}${s.live ? 'l' : 'd'}${s.exact ? '=' : '>='}${s.revision}:${s.known && s.live ? canonicalJson(s.value) : ''}`,
  describeState: (s) =>
    `${s.known ? (s.live ? show(s.value) : 'absent') : 'value unknown'} at revision ${s.exact ? '' : '≥ '}${s.revision}`,
  describeOperation(input, output) {
    const c = input.op === 'get' || !input.cond ? '' : ', ' + canonicalJson(input.cond);
    const call = input.op === 'put' ? `put(${show(input.key)}, ${show(input.value)}${c})` : `${input.op}(${show(input.key)}${c})`;
    if (output === undefined) return `${call} -> ?`;
    if (output === null) return `${call} -> null`;
    if ('ok' in output) return `${call} -> ${output.ok ? `ok, revision ${String(output.revision)}` : `conflict${output.actual !== undefined ? ` (actual ${String(output.actual)})` : ''}`}`;
    return `${call} -> ${show(output.value)} at revision ${output.revision}`;
  },
};

/** 3. Porcupine's string key-value store (get / put / append), one key per partition. */
export type StringKvInput = { op: 'get'; key: string } | { op: 'put'; key: string; value: string } | { op: 'append'; key: string; value: string };
/** get → `{ value }` (missing key reads as ""); put and append → `{}`. */
export type StringKvOutput = { value?: string };

export const stringKvModel: Model<string, StringKvInput, StringKvOutput> = {
  name: 'string-kv',
  keyOf: (input) => input.key,
  init: () => '',
  step(state, input, output) {
    if (input.op === 'get') return [output === undefined || output.value === state, state];
    return [true, input.op === 'put' ? input.value : state + input.value];
  },
  hash: (s) => s,
  describeState: show,
  describeOperation(input, output) {
    if (input.op === 'get') return `get(${show(input.key)}) -> ${show(output?.value)}`;
    return `${input.op}(${show(input.key)}, ${show(input.value)})`;
  },
};
