// The ground truth a run's watches are checked against: which changes were committed.
import { deepEqual } from '../../core/equal.js';
import type { Operation } from './history.js';
import type { RecordedWatchEvent } from './watch-record.js';

export interface CommittedChange {
  key: string;
  revision: number;
  type: 'put' | 'delete';
  value?: unknown;
  /**
   * A lower bound of when the write that made it was invoked (the earliest
   * invocation of a write that can have made it); -Infinity when unknown.
   */
  invoked: number;
  /** The client of that write. */
  by?: string;
}

/** Names a committed change (or a delivered event) by key and revision. */
export const changeId = (key: string, revision: number) => `${revision}\u0000${key}`;

/** A write as the history recorded it (store-level and API-level puts and deletes). */
interface WriteInput {
  op: string;
  key: string;
  value?: unknown;
}

interface WriteOutput {
  ok?: boolean;
  revision?: number | null;
}

export interface HistoryRecordLike {
  key: string;
  revision: number;
  deleted?: true;
  value?: unknown;
}

export interface CommittedSet {
  changes: CommittedChange[];
  /** Keys every write to which has a known outcome: their committed changes are all known. */
  closedKeys: Set<string>;
}

/**
 * The committed changes of a run: what writes were acknowledged with, what
 * `history()` still shows at the end (for each, the earliest invocation of
 * a write that may have made it), and changes some watch delivered that an
 * unacknowledged write of exactly that value may have made.
 */
export function committedChanges(
  operations: readonly Operation<unknown, unknown>[],
  histories: ReadonlyMap<string, readonly HistoryRecordLike[]>,
  delivered: readonly RecordedWatchEvent[] = [],
): CommittedSet {
  const byId = new Map<string, CommittedChange>();
  const open = new Map<string, Operation<WriteInput, WriteOutput>[]>();
  const keys = new Set<string>();
  for (const raw of operations) {
    const op = raw as Operation<WriteInput, WriteOutput>;
    if (op.input.op !== 'put' && op.input.op !== 'delete') continue;
    keys.add(op.input.key);
    if (op.status === 'unknown') {
      const list = open.get(op.input.key);
      if (list) list.push(op);
      else open.set(op.input.key, [op]);
      continue;
    }
    const revision = op.status === 'ok' && op.output?.ok === true ? op.output.revision : undefined;
    if (typeof revision !== 'number') continue;
    const k = changeId(op.input.key, revision);
    const known = byId.get(k);
    if (known && op.call < known.invoked) Object.assign(known, { invoked: op.call, by: String(op.clientId) });
    else if (!known) byId.set(k, { key: op.input.key, revision, type: op.input.op, ...(op.input.op === 'put' ? { value: op.input.value } : {}), invoked: op.call, by: String(op.clientId) });
  }
  /** The earliest invocation among the unacknowledged writes that can have made this change; undefined: none can. */
  const origin = (c: { key: string; type: 'put' | 'delete'; value?: unknown }): number | undefined => {
    let earliest: number | undefined;
    for (const op of open.get(c.key) ?? []) {
      if (op.input.op !== c.type || (c.type === 'put' && !deepEqual(op.input.value, c.value))) continue;
      earliest = Math.min(earliest ?? Infinity, op.call);
    }
    return earliest;
  };
  for (const [key, records] of histories) {
    for (const r of records) {
      const k = changeId(key, r.revision);
      if (byId.has(k)) continue;
      const c = { key, revision: r.revision, type: r.deleted ? ('delete' as const) : ('put' as const), ...(r.deleted ? {} : { value: r.value }) };
      byId.set(k, { ...c, invoked: origin(c) ?? -Infinity });
    }
  }
  for (const e of delivered) {
    const k = changeId(e.key, e.revision);
    if (byId.has(k)) continue;
    const from = origin(e);
    if (from !== undefined) byId.set(k, { key: e.key, revision: e.revision, type: e.type, ...(e.type === 'put' ? { value: e.value } : {}), invoked: from });
  }
  const closedKeys = new Set([...keys].filter((k) => !open.has(k)));
  return { changes: [...byId.values()], closedKeys };
}
