/**
 * Model-based testing (DESIGN §12): random operation sequences run against a
 * backend and against the in-memory reference store side by side; every
 * answer must agree, and fast-check shrinks a disagreement to a minimal
 * sequence. Revisions are opaque across backends, so they are compared by
 * the write that produced them (a label per committed write), never by number.
 *
 * What a run covers: puts with every condition (none, ifAbsent, ifRevision of
 * the current or an older revision, ifValue) and TTLs, deletes, atomic
 * commits (checks, sets, deletes; failures must name every failed check),
 * commits that write nothing, gets, lists, history, watches from any
 * revision a caller was told (every later change, in order, commits whole —
 * or HistoryGoneError, never a part), watches "from now" racing a write,
 * close with a write in flight (every call settles), and reopening.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ConflictError, HistoryGoneError, isTombstone, RevkitError, type Entry, type Store, type StoredRecord, type WatchEvent,
} from '../../src/core/index.js';
import { MemoryStore } from '../../src/memory/index.js';

export interface Subject {
  store: Store;
  /** Closes nothing itself: opens the same data again after `store` was closed. Without it, no reopen or close ops run. */
  reopen?: () => Promise<Store>;
  /** Removes what the subject created (tables, files, buckets); the store may already be closed. */
  cleanup(): Promise<void>;
}

export interface ModelRunOptions {
  runs: number;
  maxOps: number;
  seed?: number;
  /** Gives up on one watch or pending call after this long: a liveness bound, not a speed claim. */
  livenessMs?: number;
  log?: (line: string) => void;
}

const KEYS = ['a', 'b', 'c', 'd/x', 'd/y', 'd/z/1'] as const;
const PREFIXES = ['', 'd/', 'd/z/', 'a'] as const;
const TTL_MS = 3_600_000;

const value = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom('x', 'y', '', 'nul\u0000byte', 'é✓', '\u2028'),
  fc.boolean(),
  fc.constant(null),
  fc.record({ n: fc.integer({ min: 0, max: 2 }) }),
  fc.array(fc.integer({ min: 0, max: 1 }), { maxLength: 2 }),
);
const key = fc.constantFrom(...KEYS);
const cond = fc.oneof(
  { arbitrary: fc.constant({ kind: 'none' as const }), weight: 3 },
  { arbitrary: fc.constant({ kind: 'ifAbsent' as const }), weight: 2 },
  { arbitrary: fc.constant({ kind: 'ifCurrent' as const }), weight: 3 },
  { arbitrary: fc.nat(50).map((ref) => ({ kind: 'ifRevision' as const, ref })), weight: 2 },
  { arbitrary: value.map((v) => ({ kind: 'ifValue' as const, value: v })), weight: 2 },
);
type Cond = typeof cond extends fc.Arbitrary<infer C> ? C : never;
const check = fc.record({ key, mode: fc.constantFrom('current' as const, 'absent' as const, 'stale' as const), ref: fc.nat(50) });

const op = fc.oneof(
  { arbitrary: fc.record({ t: fc.constant('put' as const), key, value, cond, ttl: fc.boolean() }), weight: 8 },
  { arbitrary: fc.record({ t: fc.constant('delete' as const), key, cond }), weight: 3 },
  {
    arbitrary: fc.record({
      t: fc.constant('atomic' as const),
      checks: fc.array(check, { maxLength: 3 }),
      writes: fc.uniqueArray(fc.record({ key, value: fc.option(value, { nil: undefined }) }), { maxLength: 3, selector: (w) => w.key }),
    }),
    weight: 3,
  },
  { arbitrary: fc.record({ t: fc.constant('noop' as const), keys: fc.uniqueArray(key, { minLength: 1, maxLength: 2 }) }), weight: 2 },
  { arbitrary: fc.record({ t: fc.constant('get' as const), key }), weight: 2 },
  { arbitrary: fc.record({ t: fc.constant('list' as const), prefix: fc.constantFrom(...PREFIXES) }), weight: 1 },
  { arbitrary: fc.record({ t: fc.constant('history' as const), key }), weight: 1 },
  { arbitrary: fc.record({ t: fc.constant('watchFrom' as const), ref: fc.nat(50) }), weight: 3 },
  { arbitrary: fc.record({ t: fc.constant('watchNow' as const), key, value }), weight: 2 },
  { arbitrary: fc.record({ t: fc.constant('closeWhileWriting' as const), key, value }), weight: 1 },
  { arbitrary: fc.record({ t: fc.constant('reopen' as const) }), weight: 1 },
);
export type Op = typeof op extends fc.Arbitrary<infer O> ? O : never;

/** One store under comparison, with the map from its revisions to the labels of the writes that made them. */
class Side {
  readonly labels = new Map<number, string>();
  maxRevision = 0;
  constructor(public store: Store, readonly name: string) {}

  committed(revision: number, label: string): void {
    const known = this.labels.get(revision);
    // One atomic commit gives all its writes one revision, and so one label.
    assert.ok(known === undefined || known === label, `${this.name}: revision ${revision} handed out for ${label} was already ${known}'s`);
    this.labels.set(revision, label);
    this.maxRevision = Math.max(this.maxRevision, revision);
  }

  label(revision: number): string {
    return this.labels.get(revision) ?? `unknown revision ${revision}`;
  }

  entry(e: StoredRecord | null): unknown {
    if (e === null) return null;
    if (isTombstone(e)) return { key: e.key, deleted: true, rev: this.label(e.revision) };
    const x = e as Entry;
    return { key: x.key, value: x.value, rev: this.label(x.revision), created: this.label(x.createdRevision), ttl: x.expiresAt !== undefined };
  }

  event(ev: WatchEvent): unknown {
    return ev.type === 'put'
      ? { type: 'put', key: ev.key, rev: this.label(ev.revision), value: ev.entry.value }
      : { type: 'delete', key: ev.key, rev: this.label(ev.revision) };
  }
}

/** A position a caller was told: a write's label, or the revision a write-nothing commit answered. */
interface Position {
  subject: number;
  model: number;
  what: string;
}

export async function compareWithModel(makeSubject: () => Promise<Subject>, options: ModelRunOptions): Promise<void> {
  let ran = 0;
  let ops = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: options.maxOps, size: 'max' }), async (sequence) => {
      const subject = await makeSubject();
      const model = new Side(new MemoryStore({ historyDepth: 10_000 }), 'model');
      const side = new Side(subject.store, subject.store.backend);
      try {
        await runSequence(subject, side, model, sequence, options.livenessMs ?? 15_000);
        ran++;
        ops += sequence.length;
      } finally {
        await side.store.close().catch(() => undefined);
        await model.store.close();
        await subject.cleanup();
      }
    }),
    { numRuns: options.runs, seed: options.seed, endOnFailure: false },
  );
  options.log?.(`${ran} sequences, ${ops} operations agreed with the model`);
}

async function runSequence(subject: Subject, s: Side, m: Side, ops: Op[], livenessMs: number): Promise<void> {
  const positions: Position[] = [];
  const atomicOk = s.store.capabilities.atomic;
  for (const [i, o] of ops.entries()) {
    const label = `#${i} ${o.t}`;
    const at = (what: unknown, sv: unknown, mv: unknown) => assert.deepEqual(sv, mv, `${label}: ${String(what)} differs from the model`);
    switch (o.t) {
      case 'put': {
        const ttl = o.ttl && s.store.capabilities.ttl;
        const [sr, mr] = await both(s, m, async (side) => {
          const c = await condition(side, o.key, o.cond, positions, side === s);
          return side.store.put(o.key, o.value, { ...c, ...(ttl ? { ttlMs: TTL_MS } : {}) });
        });
        settleWrite(s, sr, label);
        settleWrite(m, mr, label);
        at('put', outcome(s, sr), outcome(m, mr));
        if (sr.ok) positions.push({ subject: (sr.value as Entry).revision, model: (mr.value as Entry).revision, what: label });
        break;
      }
      case 'delete': {
        const [sr, mr] = await both(s, m, async (side) => side.store.delete(o.key, await condition(side, o.key, o.cond, positions, side === s)));
        if (sr.ok && sr.value !== null) s.committed(sr.value as number, label);
        if (mr.ok && mr.value !== null) m.committed(mr.value as number, label);
        at('delete', outcome(s, sr), outcome(m, mr));
        if (sr.ok && sr.value !== null) positions.push({ subject: sr.value as number, model: mr.value as number, what: label });
        break;
      }
      case 'atomic':
      case 'noop': {
        if (!atomicOk) break;
        const checks = o.t === 'noop' ? o.keys.map((k) => ({ key: k, mode: 'current' as const, ref: 0 })) : o.checks;
        const writes = o.t === 'noop' ? [] : o.writes;
        // A delete of a key with no live value writes nothing (as delete() does); a commit of only such deletes writes nothing.
        let writesSomething = false;
        for (const w of writes) if (w.value !== undefined || (await m.store.get(w.key)) !== null) writesSomething = true;
        const [sr, mr] = await both(s, m, async (side) => {
          const batch = side.store.atomic();
          for (const c of checks) batch.check(c.key, await checkRevision(side, c, positions, side === s));
          for (const w of writes) {
            if (w.value === undefined) batch.delete(w.key);
            else batch.set(w.key, w.value);
          }
          return batch.commit();
        });
        if (sr.ok && mr.ok) {
          const sRev = (sr.value as { revision: number }).revision;
          const mRev = (mr.value as { revision: number }).revision;
          if (writesSomething) {
            s.committed(sRev, label);
            m.committed(mRev, label);
          } else {
            // DESIGN §3: a commit that writes nothing answers a revision already committed, never the next one.
            assert.ok(sRev <= s.maxRevision, `${label}: a commit that wrote nothing answered revision ${sRev}, above every committed one (${s.maxRevision})`);
          }
          positions.push({ subject: sRev, model: mRev, what: label });
        }
        at(o.t, atomicOutcome(sr, writesSomething ? s : undefined), atomicOutcome(mr, writesSomething ? m : undefined));
        break;
      }
      case 'get': {
        const [sr, mr] = await both(s, m, (side) => side.store.get(o.key));
        at('get', outcome(s, sr), outcome(m, mr));
        break;
      }
      case 'list': {
        const [sr, mr] = await both(s, m, async (side) => (await side.store.list({ prefix: o.prefix, limit: 1000 })).entries);
        at('list', sr.ok ? (sr.value as Entry[]).map((e) => s.entry(e)) : errorOf(sr.error), mr.ok ? (mr.value as Entry[]).map((e) => m.entry(e)) : errorOf(mr.error));
        break;
      }
      case 'history': {
        const [sr, mr] = await both(s, m, (side) => side.store.history(o.key, { limit: 32 }));
        at('history', sr.ok ? (sr.value as StoredRecord[]).map((e) => s.entry(e)) : errorOf(sr.error), mr.ok ? (mr.value as StoredRecord[]).map((e) => m.entry(e)) : errorOf(mr.error));
        break;
      }
      case 'watchFrom': {
        const from = positions.length === 0 ? undefined : positions[o.ref % positions.length];
        if (from === undefined) break;
        const expected = await drain(m, from.model, undefined, livenessMs);
        assert.ok(Array.isArray(expected), `the model's watch from ${from.what} failed: ${String(expected)}`);
        const got = await drain(s, from.subject, expected.length, livenessMs);
        if (HistoryGoneError.is(got)) break; // honest: that history is gone (never a part of it)
        assert.ok(Array.isArray(got), `${label}: watch from ${from.what} (revision ${from.subject}): ${String(got)}`);
        at(`watch from ${from.what}`, byCommit(got), byCommit(expected));
        break;
      }
      case 'watchNow': {
        const [sr, mr] = await both(s, m, (side) => watchThenWrite(side, o.key, o.value, label, livenessMs));
        at('watch from now', sr.ok ? sr.value : errorOf(sr.error), mr.ok ? mr.value : errorOf(mr.error));
        break;
      }
      case 'closeWhileWriting': {
        if (!subject.reopen) break;
        const pending = s.store.put(o.key, o.value).then((e) => ({ ok: true as const, e }), (error: unknown) => ({ ok: false as const, error }));
        await s.store.close();
        const settled = await bounded(pending, livenessMs, `${label}: a put in flight when close() was called never settled`);
        s.store = await subject.reopen();
        let landed: Entry | undefined = settled.ok ? settled.e : undefined;
        if (!settled.ok) {
          assert.ok(RevkitError.is(settled.error), `${label}: a put cut by close() failed with ${String(settled.error)}, not a RevkitError`);
          const now = await s.store.getRecord(o.key);
          const fresh = now !== null && now.revision > s.maxRevision && !isTombstone(now);
          assert.ok(!fresh || (settled.error as { ambiguous?: unknown }).ambiguous === true, `${label}: a put answered ${String(settled.error)} (not ambiguous) was committed`);
          if (fresh) landed = now as Entry;
        }
        if (landed) {
          s.committed(landed.revision, label);
          const me = await m.store.put(o.key, o.value);
          m.committed(me.revision, label);
          positions.push({ subject: landed.revision, model: me.revision, what: label });
        }
        break;
      }
      case 'reopen': {
        if (!subject.reopen) break;
        await s.store.close();
        s.store = await subject.reopen();
        break;
      }
    }
  }
}

type Result = { ok: true; value: unknown } | { ok: false; error: unknown };

async function both<R>(s: Side, m: Side, run: (side: Side) => Promise<R>): Promise<[Result, Result]> {
  const attempt = (side: Side): Promise<Result> => run(side).then((value) => ({ ok: true, value }), (error: unknown) => ({ ok: false, error }));
  const sr = await attempt(s);
  const mr = await attempt(m);
  return [sr, mr];
}

function settleWrite(side: Side, r: Result, label: string): void {
  if (r.ok) side.committed((r.value as Entry).revision, label);
}

function outcome(side: Side, r: Result): unknown {
  if (!r.ok) return errorOf(r.error);
  if (r.value === null || typeof r.value !== 'object') return r.value === null ? null : side.label(r.value as number);
  return side.entry(r.value as StoredRecord);
}

function atomicOutcome(r: Result, side: Side | undefined): unknown {
  if (r.ok) return side ? { ok: side.label((r.value as { revision: number }).revision) } : { ok: 'nothing written' };
  if (ConflictError.is(r.error)) return { conflict: r.error.checks.map((c) => c.key).sort() };
  return errorOf(r.error);
}

function errorOf(err: unknown): unknown {
  return { error: RevkitError.is(err) ? err.code : `not a RevkitError: ${String(err)}` };
}

/** The condition `c` asks for, in this side's own revisions. */
async function condition(side: Side, k: string, c: Cond, positions: Position[], isSubject: boolean): Promise<Record<string, unknown>> {
  switch (c.kind) {
    case 'none':
      return {};
    case 'ifAbsent':
      return { ifAbsent: true };
    case 'ifValue':
      return { ifValue: c.value };
    case 'ifCurrent': {
      const now = await side.store.getRecord(k);
      return now === null ? { ifAbsent: true } : { ifRevision: now.revision };
    }
    case 'ifRevision': {
      const p = positions[c.ref % Math.max(1, positions.length)];
      return p === undefined ? { ifAbsent: true } : { ifRevision: isSubject ? p.subject : p.model };
    }
  }
}

async function checkRevision(side: Side, c: { key: string; mode: 'current' | 'absent' | 'stale'; ref: number }, positions: Position[], isSubject: boolean): Promise<number | null> {
  if (c.mode === 'absent') return null;
  if (c.mode === 'current') return (await side.store.getRecord(c.key))?.revision ?? null;
  const p = positions[c.ref % Math.max(1, positions.length)];
  return p === undefined ? null : isSubject ? p.subject : p.model;
}

/** Every change after `from` (`count` of them for the subject; for the model, all it has now), or the error the watch ended with. */
async function drain(side: Side, from: number, count: number | undefined, livenessMs: number): Promise<unknown[] | unknown> {
  const target = count ?? (await countModelEvents(side, from));
  if (target === 0) return [];
  const controller = new AbortController();
  const events: unknown[] = [];
  try {
    const iterator = side.store.watch({ prefix: '', fromRevision: from, signal: controller.signal })[Symbol.asyncIterator]();
    while (events.length < target) {
      const next = await bounded(iterator.next(), livenessMs, `watch from ${from} delivered ${events.length} of ${target} changes`);
      if (next.done) return new Error(`watch from ${from} ended after ${events.length} of ${target} changes`);
      events.push(side.event(next.value));
    }
    return events;
  } catch (err) {
    return err;
  } finally {
    controller.abort();
  }
}

/** The model's changes after `from`: its change log is complete, so its history says how many. */
async function countModelEvents(side: Side, from: number): Promise<number> {
  let n = 0;
  for (const k of KEYS) n += (await side.store.history(k, { limit: 10_000 })).filter((r) => r.revision > from).length;
  return n;
}

/** Events of one commit may come in any key order; commits must come in order. */
function byCommit(events: unknown[]): unknown[] {
  const out: unknown[] = [];
  let group: Array<{ rev: string; key: string }> = [];
  const flush = () => {
    out.push(...group.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)));
    group = [];
  };
  for (const e of events as Array<{ rev: string; key: string }>) {
    if (group.length > 0 && group[0]?.rev !== e.rev) flush();
    group.push(e);
  }
  flush();
  return out;
}

/** Starts a watch from now, writes right after watch() returned: the watch must deliver that write first. */
async function watchThenWrite(side: Side, k: string, v: unknown, label: string, livenessMs: number): Promise<unknown> {
  const controller = new AbortController();
  try {
    const iterator = side.store.watch({ prefix: '', signal: controller.signal })[Symbol.asyncIterator]();
    const entry = await side.store.put(k, v);
    side.committed(entry.revision, label);
    // A watch "from now" may also deliver writes made shortly before watch() (its start reaches back on the
    // server's clock, DESIGN §3): those come first, in order; the write made after it must follow.
    for (;;) {
      const next = await bounded(iterator.next(), livenessMs, `${label}: a write made right after watch() returned was never delivered`);
      if (next.done) return 'watch ended';
      if (next.value.revision < entry.revision) continue;
      return side.event(next.value);
    }
  } finally {
    controller.abort();
  }
}

function bounded<R>(promise: Promise<R>, ms: number, what: string): Promise<R> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(what)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
