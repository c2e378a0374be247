/**
 * The search of one partition: the Wing–Gong search over a linked list of
 * call/return entries, with Lowe's memoisation of (linearised set, model
 * state). See linearizability.ts for how unknown outcomes enter it.
 */
import type { Operation } from './history.js';
import type { Model } from './model.js';
import { VisitedSet } from './visited-set.js';

export type CheckResult = 'ok' | 'illegal' | 'unknown';

export interface PartitionResult<S> {
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

export function checkPartition<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[], deadline: number): PartitionResult<S> {
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
