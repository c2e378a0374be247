import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  HistoryRecorder, casRegisterModel, chainOpsFromHistory, checkOperations, checkRevisionChain, eventToLine,
  operationsFromEvents, operationsFromNDJSON, operationsToNDJSON, parseHistory, parseJepsenEtcdLog, parseKvEdn,
  stringKvModel, versionedKvModel, apiKvModel, checkIncrements,
  type ApiKvInput, type ApiKvOutput, type CasInput, type CasOutput, type ChainOp, type KvCondition, type Operation, type StringKvInput, type StringKvOutput,
  type VersionedKvInput, type VersionedKvOutput,
} from '../src/testing/checker/index.js';
import { memoryStore } from '../src/memory/index.js';
import { canary } from '../src/testing/canary.js';
import type { Store } from '../src/core/index.js';

const histories = new URL('./fixtures/histories/', import.meta.url);
const read = (rel: string): string => readFileSync(new URL(rel, histories), 'utf8');
const TIMEOUT_MS = 10_000;

describe('reference histories', () => {
  const expected = read('jepsen-etcd/expected.tsv').trim().split('\n').slice(1).map((l) => l.split('\t') as [string, string]);

  it('has the 102 expected etcd answers', () => {
    expect(expected).toHaveLength(102);
  });

  for (const [file, linearizable] of expected) {
    it(`jepsen etcd ${file} is ${linearizable === 'true' ? 'linearizable' : 'not linearizable'}`, () => {
      const ops = parseJepsenEtcdLog(read(`jepsen-etcd/${file}`), file);
      expect(ops.length).toBeGreaterThan(0);
      const report = checkOperations(casRegisterModel, ops, { timeoutMs: TIMEOUT_MS });
      expect(report.result).toBe(linearizable === 'true' ? 'ok' : 'illegal');
      expect(report.elapsedMs).toBeLessThan(TIMEOUT_MS);
    });
  }

  it('etcd_095.log, which has no expected answer (its cluster never started), is empty', () => {
    expect(read('jepsen-etcd/etcd_095.log').trim()).toBe('');
    expect(expected.some(([f]) => f === 'etcd_095.log')).toBe(false);
  });

  for (const file of readdirSync(new URL('porcupine-kv/', histories)).sort()) {
    const ok = file.endsWith('-ok.txt');
    it(`porcupine kv ${file} is ${ok ? 'linearizable' : 'not linearizable'}`, () => {
      const ops = parseKvEdn(read(`porcupine-kv/${file}`), file);
      const report = checkOperations(stringKvModel, ops, { timeoutMs: TIMEOUT_MS });
      expect(report.result).toBe(ok ? 'ok' : 'illegal');
      expect(report.partitions).toBeGreaterThan(1);
      expect(report.elapsedMs).toBeLessThan(TIMEOUT_MS);
    });
  }

  it('explains a failure with the key, the longest prefix and the operation that cannot be placed', () => {
    const report = checkOperations(stringKvModel, parseKvEdn(read('porcupine-kv/c10-bad.txt')), { timeoutMs: TIMEOUT_MS });
    const ce = report.counterExample!;
    expect(ce.key).toMatch(/^\d+$/);
    expect(ce.prefix.length).toBeGreaterThan(0);
    expect(ce.text).toContain(`on key "${ce.key}"`);
    expect(ce.text).toContain('cannot be linearized after it: ');
    expect(ce.blocked.input.key).toBe(ce.key);
  });
});

/** Builds operations from compact tuples: [client, input, output, call, return]; return Infinity = unknown. */
function ops<I, O>(rows: [number, I, O | undefined, number, number, ('ok' | 'fail')?][]): Operation<I, O>[] {
  return rows.map(([clientId, input, output, call, ret, status]) => ({
    clientId, input, output, call, return: ret, status: ret === Infinity ? 'unknown' : (status ?? 'ok'),
  }));
}
const check = <S, I, O>(model: Parameters<typeof checkOperations<S, I, O>>[0], h: Operation<I, O>[]) => checkOperations(model, h, { timeoutMs: TIMEOUT_MS }).result;

describe('CAS register model', () => {
  type Row = [number, CasInput, CasOutput | undefined, number, number, ('ok' | 'fail')?];
  const w = (v: number): CasInput => ({ op: 'write', value: v });
  const r: CasInput = { op: 'read' };
  const cas = (from: number, to: number): CasInput => ({ op: 'cas', from, to });

  it('accepts a read overlapping a write seeing either value (6.824 quiz example)', () => {
    expect(check(casRegisterModel, ops<CasInput, CasOutput>([[0, w(100), { ok: true }, 0, 100], [1, r, { value: 100 }, 25, 75], [2, r, { value: null }, 30, 60]]))).toBe('ok');
  });

  it('rejects a read of the old value after another read saw the new one', () => {
    expect(check(casRegisterModel, ops<CasInput, CasOutput>([[0, w(200), { ok: true }, 0, 100], [1, r, { value: 200 }, 10, 30], [2, r, { value: null }, 40, 90]]))).toBe('illegal');
  });

  it('checks both outcomes of a cas', () => {
    const base: Row[] = [[0, w(1), { ok: true }, 0, 1]];
    expect(check(casRegisterModel, ops([...base, [1, cas(1, 2), { ok: true }, 2, 3], [1, r, { value: 2 }, 4, 5]]))).toBe('ok');
    expect(check(casRegisterModel, ops([...base, [1, cas(5, 2), { ok: false }, 2, 3, 'fail'], [1, r, { value: 1 }, 4, 5]]))).toBe('ok');
    expect(check(casRegisterModel, ops([...base, [1, cas(1, 2), { ok: false }, 2, 3, 'fail']]))).toBe('illegal');
    expect(check(casRegisterModel, ops([...base, [1, cas(5, 2), { ok: true }, 2, 3]]))).toBe('illegal');
    // Two cas from the same value cannot both succeed.
    expect(check(casRegisterModel, ops([...base, [1, cas(1, 2), { ok: true }, 2, 5], [2, cas(1, 3), { ok: true }, 2, 5]]))).toBe('illegal');
  });

  it('lets an unknown-outcome write take effect later, or never', () => {
    const unknownWrite: Row = [1, w(7), undefined, 2, Infinity];
    const base: Row[] = [[0, w(1), { ok: true }, 0, 1], unknownWrite];
    expect(check(casRegisterModel, ops([...base, [2, r, { value: 7 }, 50, 51]]))).toBe('ok'); // took effect
    expect(check(casRegisterModel, ops([...base, [2, r, { value: 1 }, 50, 51]]))).toBe('ok'); // not (yet)
    expect(check(casRegisterModel, ops([...base, [2, r, { value: 7 }, 50, 51], [2, r, { value: 1 }, 52, 53]]))).toBe('illegal');
    // It cannot take effect before it was called.
    expect(check(casRegisterModel, ops<CasInput, CasOutput>([[0, w(1), { ok: true }, 0, 1], [2, r, { value: 7 }, 2, 3], [1, w(7), undefined, 4, Infinity]]))).toBe('illegal');
  });

  it('drops a failure without observation (it did not take effect)', () => {
    expect(check(casRegisterModel, ops<CasInput, CasOutput>([[0, w(1), undefined, 0, 1, 'fail'], [1, r, { value: null }, 2, 3]]))).toBe('ok');
  });

  it('answers unknown when the time bound runs out', () => {
    // 24 concurrent writes and then a read of a value never written: proving
    // this illegal means trying every order of the writes.
    const rows: Row[] = Array.from({ length: 24 }, (_, i): Row => [i, w(i), { ok: true }, 0, 100]);
    rows.push([99, r, { value: 999 }, 200, 201]);
    expect(checkOperations(casRegisterModel, ops(rows), { timeoutMs: 50 }).result).toBe('unknown');
  });
});

describe('versioned KV model', () => {
  type I = VersionedKvInput;
  type O = VersionedKvOutput;
  const get = (key = 'k'): I => ({ op: 'get', key });
  const put = (value: unknown, cond?: KvCondition, key = 'k'): I => ({ op: 'put', key, value, ...(cond ? { cond } : {}) });
  const del = (key = 'k'): I => ({ op: 'delete', key });
  const okRev = (revision: number | null): O => ({ ok: true, revision });
  const conflict: O = { ok: false };

  it('accepts a clean read-modify-write chain with a conflict', () => {
    const h = ops<I, O>([
      [0, put(1), okRev(3), 0, 1],
      [1, get(), { value: 1, revision: 3 }, 2, 3],
      [2, get(), { value: 1, revision: 3 }, 2, 3],
      [1, put(2, { ifRevision: 3 }), okRev(7), 4, 6],
      [2, put(5, { ifRevision: 3 }), conflict, 4, 6, 'fail'],
      [2, get(), { value: 2, revision: 7 }, 7, 8],
      [0, del(), okRev(9), 9, 10],
      [1, get(), null, 11, 12],
      [1, put(3, { ifAbsent: true }), okRev(12), 13, 14],
      [2, put(4, { ifValue: 3 }), okRev(13), 15, 16],
    ]);
    expect(check(versionedKvModel, h)).toBe('ok');
  });

  it('catches a lost update: two writes guarded by one revision both succeed', () => {
    const h = ops<I, O>([
      [0, put(1), okRev(1), 0, 1],
      [1, put(2, { ifRevision: 1 }), okRev(2), 2, 5],
      [2, put(3, { ifRevision: 1 }), okRev(3), 2, 5],
    ]);
    const report = checkOperations(versionedKvModel, h, { timeoutMs: TIMEOUT_MS });
    expect(report.result).toBe('illegal');
    expect(report.counterExample?.text).toContain('ifRevision');
  });

  it('catches a stale read, a non-increasing revision and a wrong conflict', () => {
    const base = ops<I, O>([[0, put(1), okRev(5), 0, 1], [0, put(2), okRev(6), 2, 3]]);
    expect(check(versionedKvModel, [...base, ...ops<I, O>([[1, get(), { value: 1, revision: 5 }, 4, 5]])])).toBe('illegal');
    expect(check(versionedKvModel, [...base, ...ops<I, O>([[1, put(3), okRev(6), 4, 5]])])).toBe('illegal');
    expect(check(versionedKvModel, [...base, ...ops<I, O>([[1, put(3, { ifRevision: 6 }), conflict, 4, 5, 'fail']])])).toBe('illegal');
    expect(check(versionedKvModel, [...base, ...ops<I, O>([[1, put(3, { ifRevision: 5 }), { ok: false, actual: 5 }, 4, 5, 'fail']])])).toBe('illegal');
    expect(check(versionedKvModel, [...base, ...ops<I, O>([[1, put(3, { ifRevision: 5 }), { ok: false, actual: 6 }, 4, 5, 'fail']])])).toBe('ok');
    expect(check(versionedKvModel, [...base, ...ops<I, O>([[1, del(), okRev(7), 4, 5], [1, get(), { value: 2, revision: 6 }, 6, 7]])])).toBe('illegal');
  });

  it('handles writes with unknown outcome, whose revision nobody saw', () => {
    const base = ops<I, O>([[0, put(1), okRev(5), 0, 1], [1, put(2), undefined, 2, Infinity]]);
    // It took effect: later readers see its value at some revision above 5, and can build on it.
    expect(check(versionedKvModel, [...base, ...ops<I, O>([[2, get(), { value: 2, revision: 8 }, 3, 4], [2, put(3, { ifRevision: 8 }), okRev(9), 5, 6]])])).toBe('ok');
    // It did not (yet): old value and revision.
    expect(check(versionedKvModel, [...base, ...ops<I, O>([[2, get(), { value: 1, revision: 5 }, 3, 4]])])).toBe('ok');
    // A guarded write on an unseen revision above 5 may be based on it.
    expect(check(versionedKvModel, [...base, ...ops<I, O>([[2, put(3, { ifRevision: 6 }), okRev(10), 3, 4]])])).toBe('ok');
    // But not its value at the old revision.
    expect(check(versionedKvModel, [...base, ...ops<I, O>([[2, get(), { value: 2, revision: 5 }, 3, 4]])])).toBe('illegal');
    // An unknown guarded write on an undecidable condition leaves the value open until observed.
    const open = ops<I, O>([[3, put(9, { ifRevision: 7 }), undefined, 3, Infinity]]);
    expect(check(versionedKvModel, [...base, ...open, ...ops<I, O>([[2, get(), { value: 9, revision: 11 }, 5, 6], [2, get(), { value: 9, revision: 11 }, 7, 8]])])).toBe('ok');
    expect(check(versionedKvModel, [...base, ...open, ...ops<I, O>([[2, get(), { value: 9, revision: 11 }, 5, 6], [2, get(), { value: 1, revision: 5 }, 7, 8]])])).toBe('illegal');
  });

  it('partitions per key and names the key that fails', () => {
    const h = ops<I, O>([
      [0, put('a', undefined, 'a'), okRev(1), 0, 1],
      [0, put('b', undefined, 'b'), okRev(1), 0, 1],
      [1, get('a'), { value: 'a', revision: 1 }, 2, 3],
      [1, get('b'), null, 2, 3],
    ]);
    const report = checkOperations(versionedKvModel, h, { timeoutMs: TIMEOUT_MS });
    expect(report.result).toBe('illegal');
    expect(report.partitions).toBe(2);
    expect(report.counterExample?.key).toBe('b');
  });
});

describe('string KV model', () => {
  const I = (op: 'get' | 'put' | 'append', value?: string): StringKvInput => (op === 'get' ? { op, key: 'x' } : { op, key: 'x', value: value! });
  it('accepts appends in either concurrent order, not a torn one', () => {
    const base = ops<StringKvInput, StringKvOutput>([[0, I('put', 'a'), {}, 0, 1], [1, I('append', 'b'), {}, 2, 5], [2, I('append', 'c'), {}, 2, 5]]);
    const readBack = (v: string) => ops<StringKvInput, StringKvOutput>([[3, I('get'), { value: v }, 6, 7]]);
    expect(check(stringKvModel, [...base, ...readBack('abc')])).toBe('ok');
    expect(check(stringKvModel, [...base, ...readBack('acb')])).toBe('ok');
    expect(check(stringKvModel, [...base, ...readBack('ab')])).toBe('illegal');
    expect(check(stringKvModel, [...base.slice(0, 2), ...ops<StringKvInput, StringKvOutput>([[2, I('append', 'c'), undefined, 2, Infinity]]), ...readBack('ab')])).toBe('ok');
  });
});

describe('revision-chain check', () => {
  const write = (clientId: number, expectedRevision: number | undefined, revision: number, call: number, ret: number): ChainOp => ({
    type: 'write', key: 'k', outcome: 'ok', revision, call, return: ret, clientId, ...(expectedRevision !== undefined ? { expectedRevision } : {}),
  });
  const readOp = (revision: number | null, call: number, ret: number): ChainOp => ({ type: 'read', key: 'k', revision, call, return: ret });
  const clean: ChainOp[] = [write(0, undefined, 1, 0, 1), readOp(1, 2, 3), write(1, 1, 2, 4, 5), write(2, 2, 4, 4, 8), { type: 'write', key: 'k', expectedRevision: 2, outcome: 'conflict', call: 4, return: 9 }, readOp(4, 9, 10)];

  it('passes a clean chain', () => {
    expect(checkRevisionChain(clean)).toMatchObject({ ok: true, violations: [], keys: 1, reads: 2, writes: 4 });
  });

  it('catches a fork', () => {
    const r = checkRevisionChain([...clean, write(3, 2, 6, 11, 12)]);
    expect(r.ok).toBe(false);
    expect(r.violations.map((v) => v.kind)).toContain('fork');
  });

  it('catches a duplicate success on one expected revision', () => {
    const r = checkRevisionChain([write(0, undefined, 1, 0, 1), write(1, 1, 2, 2, 5), write(2, 1, 3, 2, 5)]);
    expect(r.violations.map((v) => v.kind)).toContain('duplicate-success');
  });

  it('catches two writes with one resulting revision', () => {
    const r = checkRevisionChain([write(0, undefined, 1, 0, 1), write(1, undefined, 1, 0, 1)]);
    expect(r.violations.map((v) => v.kind)).toContain('duplicate-revision');
  });

  it('catches a stale read and a revision going backwards', () => {
    expect(checkRevisionChain([...clean, readOp(2, 11, 12)]).violations.map((v) => v.kind)).toEqual(['stale-read']);
    expect(checkRevisionChain([...clean, readOp(null, 11, 12)]).violations.map((v) => v.kind)).toEqual(['stale-read']);
    expect(checkRevisionChain([write(0, undefined, 5, 0, 1), write(1, undefined, 3, 2, 3)]).violations.map((v) => v.kind)).toContain('revision-regression');
  });

  it('does not flag a read concurrent with the write it misses, nor a base committed by an unknown write', () => {
    expect(checkRevisionChain([write(0, undefined, 1, 0, 1), write(1, 1, 2, 2, 10), readOp(1, 3, 4)]).ok).toBe(true);
    const gap = [write(0, undefined, 1, 0, 1), write(1, 3, 4, 5, 6)];
    expect(checkRevisionChain(gap).violations.map((v) => v.kind)).toEqual(['broken-chain']);
    expect(checkRevisionChain([...gap, { type: 'write', key: 'k', outcome: 'unknown', call: 2, return: Infinity }]).ok).toBe(true);
  });
});

describe('history recorder', () => {
  it('round-trips through NDJSON, with unknown and never-completed operations', () => {
    let t = 0;
    const lines: string[] = [];
    const rec = new HistoryRecorder<VersionedKvInput, VersionedKvOutput>({ clock: () => (t += 10), onEvent: (_, line) => lines.push(line) });
    const a = rec.invoke('w1/c0', { op: 'put', key: 'k', value: { n: 1 } });
    const b = rec.invoke('w1/c1', { op: 'get', key: 'k' });
    rec.ok(a, { ok: true, revision: 1 });
    rec.ok(b, { value: { n: 1 }, revision: 1 });
    const c = rec.invoke('w1/c0', { op: 'put', key: 'k', value: 2, cond: { ifRevision: 0 } });
    rec.fail(c, { ok: false, actual: 1 });
    const d = rec.invoke('w1/c1', { op: 'delete', key: 'k' });
    rec.fail(d);
    const e = rec.invoke('w1/c1', { op: 'put', key: 'k', value: 3 });
    rec.unknown(e);
    rec.invoke('w1/c0', { op: 'get', key: 'k' }); // worker killed before it answered

    expect(() => rec.ok(a, { ok: true, revision: 1 })).toThrow(/not open/);
    const text = rec.toNDJSON();
    expect(lines.join('')).toBe(text);
    const events = parseHistory<VersionedKvInput, VersionedKvOutput>(text + '{"type":"ok","id":5,"ti'); // torn last line
    expect(events).toEqual(rec.events());
    const opsBack = operationsFromEvents(events);
    expect(opsBack).toEqual(rec.operations());
    expect(opsBack.map((o) => o.status)).toEqual(['ok', 'ok', 'fail', 'fail', 'unknown', 'unknown']);
    expect(opsBack[4]!.return).toBe(Infinity);
    expect(opsBack[0]).toMatchObject({ clientId: 'w1/c0', call: 10, return: 30 });
    expect(operationsFromNDJSON(operationsToNDJSON(opsBack))).toEqual(opsBack);
    expect(eventToLine(events[0]!)).toBe(text.split('\n')[0] + '\n');
    expect(checkOperations(versionedKvModel, opsBack, { timeoutMs: TIMEOUT_MS }).result).toBe('ok');
  });

  it('keeps timestamps strictly increasing on the default clock', () => {
    const rec = new HistoryRecorder();
    for (let i = 0; i < 100; i++) rec.ok(rec.invoke(0, i), i);
    const times = rec.events().map((e) => e.time);
    expect(times.every((x, i) => i === 0 || x > times[i - 1]!)).toBe(true);
  });
});

describe('API-level model (what update() callers are told)', () => {
  type I = ApiKvInput;
  type O = ApiKvOutput;
  const inc = (key = 'n'): I => ({ op: 'update', key, mutation: { kind: 'increment' } });
  const prepend = (tag: string, key = 'k'): I => ({ op: 'update', key, mutation: { kind: 'prepend', tag } });
  const get: I = { op: 'get', key: 'n' };
  const at = (value: unknown, revision: number): O => ({ value, revision });
  const both = (h: Operation<I, O>[]) => ({ search: check(apiKvModel, h), increments: checkIncrements(h) });

  it('accepts sequential increments, and a combined commit where each caller has its own value at the shared revision', () => {
    const h = ops<I, O>([
      [0, inc(), at(1, 4), 0, 1],
      // Three callers combined into one commit at revision 9: values 2, 3, 4, in any arrival order.
      [1, inc(), at(3, 9), 2, 6],
      [2, inc(), at(4, 9), 2, 6],
      [3, inc(), at(2, 9), 2, 6],
      [0, get, at(4, 9), 7, 8],
      [0, inc(), at(5, 12), 9, 10],
    ]);
    expect(both(h)).toEqual({ search: 'ok', increments: expect.objectContaining({ ok: true, keys: 1, increments: 5 }) });
  });

  it('rejects two callers handed the same value (defect #1: everyone gets the last result)', () => {
    const h = ops<I, O>([[1, inc(), at(3, 9), 2, 6], [2, inc(), at(3, 9), 2, 6], [3, inc(), at(3, 9), 2, 6]]);
    const r = both(h);
    expect(r.search).toBe('illegal');
    expect(r.increments.violations.map((v) => v.kind)).toContain('shared-value');
  });

  it('rejects a mutation applied twice: a value no caller was told, under one that was', () => {
    // Caller 0's write of 1 lost its acknowledgement; its retry ran the mutation again and returned 2.
    const h = ops<I, O>([[0, inc(), at(2, 5), 0, 3], [1, get, at(2, 5), 4, 5]]);
    const r = both(h);
    expect(r.search).toBe('illegal');
    expect(r.increments.violations.map((v) => v.kind)).toEqual(['applied-twice']);
    // The same history with an unknown-outcome increment beside it is fine: that one may have made 1.
    const withUnknown = ops<I, O>([[0, inc(), at(2, 5), 0, 3], [1, get, at(2, 5), 4, 5], [2, inc(), undefined, 0, Infinity]]);
    expect(both(withUnknown)).toEqual({ search: 'ok', increments: expect.objectContaining({ ok: true }) });
  });

  it('accepts unknown-outcome increments that landed combined in one commit (a process killed with its batch in flight)', () => {
    // Found by test/check.test.ts after SIGKILLs on SQLite: four update()s of one killed process committed as one
    // write, 114 → 118 in one revision; the model had moved the revision on once per unknown update.
    const h = ops<I, O>([[0, inc(), at(1, 4), 0, 1], [1, inc(), undefined, 2, Infinity], [2, inc(), undefined, 2, Infinity], [3, get, at(3, 5), 7, 8]]);
    expect(both(h)).toEqual({ search: 'ok', increments: expect.objectContaining({ ok: true }) });
    // Still caught: a read of a value the unknown ones cannot make, and one of a revision before theirs.
    expect(check(apiKvModel, ops<I, O>([[0, inc(), at(1, 4), 0, 1], [1, inc(), undefined, 2, Infinity], [2, inc(), undefined, 2, Infinity], [3, get, at(4, 5), 7, 8]]))).toBe('illegal');
    expect(check(apiKvModel, ops<I, O>([[0, inc(), at(1, 4), 0, 1], [1, inc(), undefined, 2, Infinity], [3, get, at(2, 3), 7, 8]]))).toBe('illegal');
  });

  it('holds a caller told "failed" to it: the increment must not have applied', () => {
    const h = ops<I, O>([[0, inc(), undefined, 0, 3, 'fail'], [1, inc(), at(2, 5), 4, 5]]);
    expect(both(h).search).toBe('illegal');
    expect(both(h).increments.ok).toBe(false);
  });

  it('needs each update()\'s value to be its own mutation of the state it linearizes at', () => {
    const ok = ops<I, O>([[0, prepend('a'), at('a<', 1), 0, 1], [1, prepend('b'), at('b<a<', 2), 2, 3]]);
    expect(check(apiKvModel, ok)).toBe('ok');
    // b was handed a's result.
    expect(check(apiKvModel, ops<I, O>([[0, prepend('a'), at('b<a<', 2), 0, 3], [1, prepend('b'), at('b<a<', 2), 0, 3]]))).toBe('illegal');
    // a's mutation ran twice.
    expect(check(apiKvModel, ops<I, O>([[0, prepend('a'), at('a<a<', 2), 0, 3]]))).toBe('illegal');
  });

  it('rejects a reused revision outside a combined batch, and a read of a batch\'s intermediate value', () => {
    const put = (value: unknown): I => ({ api: true, op: 'put', key: 'n', value });
    expect(check(apiKvModel, ops<I, O>([[0, put(7), { ok: true, revision: 3 }, 0, 1], [1, inc(), at(8, 3), 2, 3]]))).toBe('illegal');
    const intermediate = ops<I, O>([[1, inc(), at(1, 9), 0, 6], [2, inc(), at(2, 9), 0, 6], [3, get, at(1, 9), 7, 8]]);
    expect(check(apiKvModel, intermediate)).toBe('illegal');
  });
});

describe('the canary store is caught', () => {
  /** Concurrent read-modify-write increments, each recorded as its get and its guarded put. */
  async function recordIncrements(store: Store): Promise<Operation<VersionedKvInput, VersionedKvOutput>[]> {
    const rec = new HistoryRecorder<VersionedKvInput, VersionedKvOutput>();
    const client = async (c: number): Promise<void> => {
      for (let i = 0; i < 4; i++) {
        const g = rec.invoke(c, { op: 'get', key: 'n' });
        const cur = await store.get<number>('n');
        rec.ok(g, cur && { value: cur.value, revision: cur.revision });
        const value = (cur?.value ?? 0) + 1;
        const cond = cur ? { ifRevision: cur.revision } : { ifAbsent: true as const };
        const p = rec.invoke(c, { op: 'put', key: 'n', value, cond });
        try {
          rec.ok(p, { ok: true, revision: (await store.put('n', value, cond)).revision });
        } catch (err) {
          rec.fail(p, { ok: false, actual: (err as { actual?: number | null }).actual ?? null });
        }
      }
    };
    await Promise.all(Array.from({ length: 6 }, (_, c) => client(c)));
    return rec.operations();
  }

  it('passes a correct store and fails the canary, in both checkers', async () => {
    const good = await recordIncrements(memoryStore());
    expect(checkOperations(versionedKvModel, good, { timeoutMs: TIMEOUT_MS }).result).toBe('ok');
    expect(checkRevisionChain(chainOpsFromHistory(good)).ok).toBe(true);

    const bad = await recordIncrements(canary(memoryStore()));
    expect(checkOperations(versionedKvModel, bad, { timeoutMs: TIMEOUT_MS }).result).toBe('illegal');
    expect(checkRevisionChain(chainOpsFromHistory(bad)).ok).toBe(false);
  });
});
