/**
 * Linear-time check of counters that only ever see `update(n => n + 1)`:
 * since every increment produces a new value, what callers are told must be
 * a permutation of 1..n with holes only where an outcome is unknown.
 *
 * - Each value is returned to at most one caller; two callers told the same
 *   value is one caller handed another's result (`shared-value`).
 * - A value above the number of increments that may have committed, or more
 *   holes below the highest value seen than increments with unknown outcome,
 *   is a mutation applied more than once (`applied-twice`) — or a caller
 *   told "failed" for an increment that committed.
 *
 * Necessary conditions only, like the revision chain; the API-level
 * linearizability search (apiKvModel) is the full check.
 */
import type { Operation } from './history.js';
import type { ApiKvInput, ApiKvOutput } from './api-model.js';

export type IncrementViolationKind = 'shared-value' | 'applied-twice';

export interface IncrementViolation {
  kind: IncrementViolationKind;
  key: string;
  detail: string;
}

export interface IncrementReport {
  ok: boolean;
  violations: IncrementViolation[];
  /** Keys checked: those whose only writes are increments. */
  keys: number;
  increments: number;
}

type ApiOp = Operation<ApiKvInput, ApiKvOutput>;

export function checkIncrements(history: readonly ApiOp[]): IncrementReport {
  const byKey = new Map<string, ApiOp[]>();
  const excluded = new Set<string>();
  for (const op of history) {
    const isIncrement = op.input.op === 'update' && op.input.mutation.kind === 'increment';
    if (op.input.op !== 'get' && !isIncrement) excluded.add(op.input.key);
    const list = byKey.get(op.input.key);
    if (list) list.push(op);
    else byKey.set(op.input.key, [op]);
  }
  const violations: IncrementViolation[] = [];
  let keys = 0;
  let increments = 0;
  for (const [key, ops] of byKey) {
    if (excluded.has(key) || !ops.some((o) => o.input.op === 'update')) continue;
    keys++;
    increments += ops.filter((o) => o.input.op === 'update').length;
    checkKey(key, ops, violations);
  }
  return { ok: violations.length === 0, violations, keys, increments };
}

const valueOf = (op: ApiOp): number | undefined => {
  const o = op.output;
  return op.status === 'ok' && o !== null && o !== undefined && 'value' in o && typeof o.value === 'number' ? o.value : undefined;
};

function checkKey(key: string, ops: ApiOp[], out: IncrementViolation[]): void {
  const updates = ops.filter((o) => o.input.op === 'update');
  const unknown = updates.filter((o) => o.status === 'unknown').length;
  const told = new Map<number, ApiOp[]>();
  for (const op of updates) {
    const v = valueOf(op);
    if (v === undefined) continue;
    const list = told.get(v);
    if (list) list.push(op);
    else told.set(v, [op]);
  }
  for (const [value, list] of told) {
    if (list.length > 1) out.push({ kind: 'shared-value', key, detail: `value ${value} was returned to ${list.length} update() callers: ${list.map((o) => String(o.clientId)).join(', ')}` });
  }
  const mayHaveCommitted = told.size + unknown;
  const seen = Math.max(0, ...told.keys(), ...ops.filter((o) => o.input.op === 'get').map((o) => valueOf(o) ?? 0));
  if (seen > mayHaveCommitted) {
    out.push({ kind: 'applied-twice', key, detail: `the counter reached ${seen}, but only ${told.size} increments succeeded and ${unknown} have an unknown outcome` });
    return;
  }
  const holes: number[] = [];
  for (let v = 1; v <= seen; v++) if (!told.has(v)) holes.push(v);
  if (holes.length > unknown) {
    out.push({ kind: 'applied-twice', key, detail: `no caller was told ${holes.slice(0, 8).join(', ')}${holes.length > 8 ? ', …' : ''} (${holes.length} values) though the counter reached ${seen}, and only ${unknown} increments have an unknown outcome: increments were applied more often than callers were told (twice, or one reported as failed)` });
  }
}
