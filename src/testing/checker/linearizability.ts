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
import type { Model } from './model.js';
import { checkPartition, type CheckResult } from './wing-gong-search.js';
import { counterExample, type CounterExample } from './counter-example.js';

export interface CheckOptions {
  /** Overall time bound; past it the answer is `unknown` unless a violation was already found. */
  timeoutMs?: number;
  /** How many operations of the longest prefix to print. Default 8. */
  contextOps?: number;
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
