import type { Operation } from './history.js';
import type { Model } from './model.js';
import type { PartitionResult } from './wing-gong-search.js';

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

export function counterExample<S, I, O>(model: Model<S, I, O>, key: string, ops: Operation<I, O>[], r: PartitionResult<S>, context: number): CounterExample<I, O> {
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
