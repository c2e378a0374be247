/**
 * Linear-time (O(n log n)) revision-chain check for versioned-KV runs with
 * many writers, where the exponential linearizability search is hopeless.
 *
 * It checks necessary conditions only, each one a lost update or a stale
 * read when broken:
 * - at most one successful write per (key, expected revision);
 * - per key, successful writes have distinct revisions, and each successful
 *   `ifRevision` write is based on the revision of the write just before it
 *   in revision order (no forks, no writes based on a superseded revision);
 * - no read returns a revision older than one already acknowledged (by a
 *   write or read that returned) before the read was called; likewise no
 *   write gets a revision that is not newer than such an acknowledged one.
 */
import type { ClientId, Operation } from './history.js';
import type { VersionedKvInput, VersionedKvOutput } from './versioned-kv-model.js';

export interface ChainRead {
  type: 'read';
  key: string;
  /** Observed revision; `null` when the key read as absent. */
  revision: number | null;
  call: number;
  return: number;
  clientId?: ClientId;
}

export interface ChainWrite {
  type: 'write';
  key: string;
  op?: 'put' | 'delete';
  /** The `ifRevision` condition, when the write had one. */
  expectedRevision?: number;
  /** `unknown`: no answer (timeout, killed worker); it may or may not have committed. */
  outcome: 'ok' | 'conflict' | 'unknown';
  /** Revision produced by a successful write (absent for a delete that found nothing). */
  revision?: number;
  call: number;
  return: number;
  clientId?: ClientId;
}

export type ChainOp = ChainRead | ChainWrite;

export type ChainViolationKind = 'duplicate-success' | 'duplicate-revision' | 'fork' | 'broken-chain' | 'stale-read' | 'revision-regression';

export interface ChainViolation {
  kind: ChainViolationKind;
  key: string;
  detail: string;
}

export interface ChainReport {
  ok: boolean;
  violations: ChainViolation[];
  keys: number;
  reads: number;
  writes: number;
}

type Committed = ChainWrite & { revision: number };
const who = (op: ChainOp): string => `${op.type}${op.clientId !== undefined ? ` by client ${String(op.clientId)}` : ''} [${op.call}..${op.return}]`;

export function checkRevisionChain(ops: readonly ChainOp[]): ChainReport {
  const violations: ChainViolation[] = [];
  const byKey = new Map<string, ChainOp[]>();
  for (const op of ops) {
    const list = byKey.get(op.key);
    if (list) list.push(op);
    else byKey.set(op.key, [op]);
  }
  for (const [key, list] of byKey) {
    checkChain(key, list, violations);
    checkRealTime(key, list, violations);
  }
  return {
    ok: violations.length === 0,
    violations,
    keys: byKey.size,
    reads: ops.filter((o) => o.type === 'read').length,
    writes: ops.filter((o) => o.type === 'write').length,
  };
}

function checkChain(key: string, list: ChainOp[], out: ChainViolation[]): void {
  const writes = list.filter((o): o is ChainWrite => o.type === 'write');
  const committed = writes.filter((w): w is Committed => w.outcome === 'ok' && w.revision !== undefined);
  // A write with unknown outcome may have committed a revision nobody saw,
  // so a successor based on an unseen revision is only suspicious without one.
  const unseenPossible = writes.some((w) => w.outcome === 'unknown');

  const byBase = new Map<number, Committed[]>();
  for (const w of committed) {
    if (w.expectedRevision === undefined) continue;
    const list = byBase.get(w.expectedRevision);
    if (list) list.push(w);
    else byBase.set(w.expectedRevision, [w]);
  }
  for (const [base, ws] of byBase) {
    if (ws.length > 1) {
      out.push({ kind: 'duplicate-success', key, detail: `${ws.length} writes conditioned on revision ${base} all succeeded: ${ws.map((w) => `${who(w)} -> ${w.revision}`).join('; ')}` });
    }
  }

  committed.sort((a, b) => a.revision - b.revision);
  let prev: Committed | undefined;
  for (const w of committed) {
    if (prev && prev.revision === w.revision) {
      out.push({ kind: 'duplicate-revision', key, detail: `revision ${w.revision} was produced by two writes: ${who(prev)} and ${who(w)}` });
      continue;
    }
    const base = w.expectedRevision;
    if (base !== undefined) {
      if (base >= w.revision) {
        out.push({ kind: 'broken-chain', key, detail: `${who(w)} based on revision ${base} produced revision ${w.revision}, not a later one` });
      } else if (prev && base < prev.revision) {
        out.push({ kind: 'fork', key, detail: `${who(w)} based on revision ${base} succeeded with revision ${w.revision}, but ${who(prev)} had already moved the key to revision ${prev.revision}: the chain forks at ${base}` });
      } else if (prev && base > prev.revision && !unseenPossible) {
        out.push({ kind: 'broken-chain', key, detail: `${who(w)} is based on revision ${base}, which no recorded write produced (previous in chain: ${prev.revision})` });
      }
    }
    prev = w;
  }
}

/** Sort by time with a running maximum of acknowledged revisions. */
function checkRealTime(key: string, list: ChainOp[], out: ChainViolation[]): void {
  // A plain read returns null for a deleted key, so a null read after a live
  // revision is only a stale read when the key was never deleted in the run.
  const deletes = list.some((o) => o.type === 'write' && o.op === 'delete');
  type Ev = { time: number; ack: boolean; op: ChainOp; revision: number | null };
  const evs: Ev[] = [];
  for (const op of list) {
    const observed = op.type === 'read' ? op.revision : op.outcome === 'ok' ? (op.revision ?? null) : null;
    if (op.type === 'read' || observed !== null) evs.push({ time: op.call, ack: false, op, revision: observed });
    if (observed !== null && Number.isFinite(op.return)) evs.push({ time: op.return, ack: true, op, revision: observed });
  }
  // At equal times calls go first: an ack at the very instant of a call is
  // not "before" it.
  evs.sort((a, b) => a.time - b.time || Number(a.ack) - Number(b.ack));
  let max: Ev | undefined;
  for (const ev of evs) {
    if (ev.ack) {
      if (!max || (ev.revision ?? 0) > (max.revision ?? 0)) max = ev;
      continue;
    }
    if (!max) continue;
    const maxRev = max.revision ?? 0;
    const op = ev.op;
    if (op.type === 'read') {
      if (op.revision === null ? !deletes : op.revision < maxRev) {
        out.push({ kind: 'stale-read', key, detail: `${who(op)} returned ${op.revision === null ? 'absent' : `revision ${op.revision}`}, but revision ${maxRev} was acknowledged (${who(max.op)}) before it began` });
      }
    } else if (ev.revision !== null && ev.revision <= maxRev) {
      out.push({ kind: 'revision-regression', key, detail: `${who(op)} got revision ${ev.revision}, not newer than revision ${maxRev} acknowledged (${who(max.op)}) before it began` });
    }
  }
}

/**
 * Converts a recorded versioned-KV history (see `versionedKvModel`) into
 * chain operations. Gets with unknown outcome say nothing and are skipped,
 * as are writes that definitely did not take effect without an answer.
 */
export function chainOpsFromHistory(history: readonly Operation<VersionedKvInput, VersionedKvOutput>[]): ChainOp[] {
  const out: ChainOp[] = [];
  for (const h of history) {
    const base = { key: h.input.key, call: h.call, return: h.status === 'unknown' ? Infinity : h.return, clientId: h.clientId };
    const o = h.status === 'unknown' ? undefined : h.output;
    if (h.input.op === 'get') {
      if (o === undefined) continue;
      out.push({ type: 'read', ...base, revision: o !== null && 'revision' in o && !('ok' in o) ? o.revision : null });
      continue;
    }
    const cond = h.input.cond;
    const expected = cond && 'ifRevision' in cond ? { expectedRevision: cond.ifRevision } : {};
    const w = { type: 'write' as const, ...base, op: h.input.op, ...expected };
    if (o === undefined) {
      if (h.status === 'unknown') out.push({ ...w, outcome: 'unknown' });
    } else if (o !== null && 'ok' in o) {
      if (o.ok) out.push({ ...w, outcome: 'ok', ...(o.revision !== null ? { revision: o.revision } : {}) });
      else out.push({ ...w, outcome: 'conflict' });
    }
  }
  return out;
}
