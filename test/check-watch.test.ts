import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/memory/index.js';
import type { WatchEvent } from '../src/core/index.js';
import { runCheck, type CheckSummary } from '../src/testing/check/run.js';
import {
  checkWatches, committedChanges,
  type CommittedChange, type Operation, type RecordedWatchEvent, type WatchGuarantee, type WatchOrder, type WatchSegment,
} from '../src/testing/checker/index.js';
import { DroppedEventStore, LateStartStore, SplitCommitStore, watchCanaryKinds, type WatchCanaryKind } from '../src/testing/watch-canaries.js';
import { ADMIN, startServer } from './server-helpers.js';
import { backends } from './checkpoints-backends.js';
import { tempDir, uniqueName } from './helpers.js';

const dir = tempDir('check-watch');
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const sqliteUrl = () => `sqlite:${join(dir, `${uniqueName('cw')}.db`)}`;
const fresh = Object.fromEntries(backends('chkw').map((b) => [b.name, () => b.freshUrl()]));

// ------------------------------------------------------------------ the checker, on histories made by hand

const ev = (key: string, revision: number, value: unknown = `${key}${revision}`): RecordedWatchEvent => ({ key, revision, type: 'put', value });
const ch = (key: string, revision: number, invoked = 0, value: unknown = `${key}${revision}`): CommittedChange => ({ key, revision, type: 'put', value, invoked });
// a@1, b@2, one commit of a and c at 3, b@4, c@5 — all written before any watch returned (at 100), unless said otherwise.
const COMMITTED = [ch('a', 1), ch('b', 2), ch('a', 3), ch('c', 3), ch('b', 4), ch('c', 5)];
const ALL = [ev('a', 1), ev('b', 2), ev('a', 3), ev('c', 3), ev('b', 4), ev('c', 5)];
const seg = (over: Partial<WatchSegment>): WatchSegment => ({
  id: 's1', watcher: 'w', mode: 'from', filter: { prefix: '' }, fromRevision: 0, told: 'commit', returned: 100, events: ALL, end: { how: 'stopped' }, ...over,
});

function violated(segments: WatchSegment[], committed: CommittedChange[] = COMMITTED, order: WatchOrder = 'store', closed: string[] = []): Partial<Record<WatchGuarantee, number>> {
  const report = checkWatches(segments, committed, { order, closedKeys: new Set(closed) });
  expect(report.ok).toBe(Object.values(report.byGuarantee).every((n) => n === 0));
  return Object.fromEntries(Object.entries(report.byGuarantee).filter(([, n]) => n > 0));
}

describe('the watch checker', () => {
  it('accepts a watch that delivers every change after its start, whole and in order, and its resumption', () => {
    expect(violated([seg({})])).toEqual({});
    expect(violated([seg({ fromRevision: 2, events: ALL.slice(2) })])).toEqual({});
    expect(violated([
      seg({ id: 'first', events: ALL.slice(0, 4), end: { how: 'cut' } }),
      seg({ id: 'second', mode: 'resume', resumes: 'first', fromRevision: 3, events: ALL.slice(4) }),
    ])).toEqual({});
    // A watch of one key owes nothing of the others.
    expect(violated([seg({ filter: { key: 'a' }, events: [ev('a', 1), ev('a', 3)] })])).toEqual({});
    // HistoryGoneError and transient faults end a watch honestly.
    expect(violated([seg({ events: ALL.slice(0, 2), end: { how: 'gone', code: 'ERR_HISTORY_GONE' } })])).toEqual({});
    expect(violated([seg({ events: ALL.slice(0, 2), end: { how: 'error', code: 'ERR_BACKEND', transient: true } })])).toEqual({});
  });

  it('ordered: per key always; across keys where revisions are the order', () => {
    const swapped = [ev('b', 2), ev('a', 1), ...ALL.slice(2)];
    expect(violated([seg({ events: swapped })])).toEqual({ ordered: 1 });
    expect(violated([seg({ events: swapped })], COMMITTED, 'key')).toEqual({});
    expect(violated([seg({ events: [ev('a', 3), ev('c', 3), ev('a', 1)] })], COMMITTED, 'key')).toMatchObject({ ordered: 1 });
  });

  it('unique: nothing twice in a watch, and nothing at or below the revision it was resumed from', () => {
    expect(violated([seg({ events: [...ALL.slice(0, 2), ev('b', 2), ...ALL.slice(2)] })])).toEqual({ unique: 1 });
    const report = checkWatches([
      seg({ id: 'first', events: ALL.slice(0, 4), end: { how: 'cut' } }),
      seg({ id: 'second', mode: 'resume', resumes: 'first', fromRevision: 3, events: [ev('c', 3), ...ALL.slice(4)] }),
    ], COMMITTED, { order: 'store' });
    expect(report.byGuarantee.unique).toBe(1);
    expect(report.violations[0]?.detail).toMatch(/c@3 delivered by a watch from revision 3, which the watch it resumes had delivered already/);
  });

  it('atomic: a commit delivered in part, or apart, is caught — unless the watcher was killed in the middle of it', () => {
    expect(violated([seg({ events: [ev('a', 1), ev('b', 2), ev('a', 3), ev('b', 4), ev('c', 5)] })])).toEqual({ atomic: 1 });
    expect(violated([seg({ events: [ev('a', 1), ev('b', 2), ev('a', 3), ev('b', 4), ev('c', 3), ev('c', 5)] })], COMMITTED, 'key')).toEqual({ atomic: 1 });
    const killed = seg({ events: ALL.slice(0, 3) });
    delete killed.end;
    expect(violated([killed])).toEqual({});
    expect(violated([seg({ events: ALL.slice(0, 3), end: { how: 'drained' } })])).toEqual({ atomic: 1 });
  });

  it('reliable: a change missing between two delivered ones; a watch that fails or ends by itself', () => {
    expect(violated([seg({ events: [ev('a', 1), ...ALL.slice(2)] })])).toEqual({ reliable: 1 });
    // Per key only: b@4 is missing between b's events; c@5 after the last c proves nothing.
    const more = [...COMMITTED, ch('b', 6)];
    expect(violated([seg({ events: [ev('a', 1), ev('b', 2), ev('a', 3), ev('c', 3), ev('b', 6)] })], more, 'key')).toEqual({ reliable: 1 });
    expect(violated([seg({ events: ALL.slice(0, 2), end: { how: 'error', code: 'ERR_VALIDATION' } })])).toEqual({ reliable: 1 });
    expect(violated([seg({ events: ALL.slice(0, 2), end: { how: 'ended' } })])).toEqual({ reliable: 1 });
  });

  it('resumable: a watch from a revision that starts after a later one', () => {
    expect(violated([seg({ fromRevision: 1, told: 'read', events: ALL.slice(2) })])).toEqual({ resumable: 1 });
    expect(violated([seg({ fromRevision: 3, events: [ev('c', 3), ...ALL.slice(4)] })])).toEqual({ resumable: 1 });
  });

  it('from now: a write invoked after watch() returned is delivered; one invoked before may be left out', () => {
    const committed = [ch('a', 1, 50), ch('b', 2, 150), ch('a', 3, 160), ch('c', 3, 160), ch('b', 4, 170), ch('c', 5, 180)];
    const now = (events: RecordedWatchEvent[]) => seg({ mode: 'now', fromRevision: undefined, told: undefined, returned: 100, events });
    expect(violated([now(ALL.slice(1))], committed)).toEqual({});
    expect(violated([now(ALL.slice(2))], committed)).toEqual({ 'from-now': 1 });
    expect(violated([now(ALL.slice(2))], committed, 'key')).toEqual({ 'from-now': 1 }); // b@4 came after b@2
    // Where only per-key order is known, a key the watch delivered nothing of proves nothing.
    expect(violated([now([ev('a', 3), ev('c', 3), ev('c', 5)])], committed)).toEqual({ 'from-now': 1, reliable: 1 });
    expect(violated([now([ev('a', 3), ev('c', 3), ev('c', 5)])], committed, 'key')).toEqual({});
    expect(checkWatches([now(ALL.slice(2))], committed, { order: 'store' }).violations[0]?.detail).toMatch(/b@2 was made by a write invoked 0\.050 ms after watch\(\) returned/);
    // Between delivered ones, a change is skipped whenever its write began.
    expect(violated([now([ev('b', 2), ...ALL.slice(4)])], committed)).toEqual({ reliable: 2 });
    // PostgreSQL starts "from now" at a moment: a commit written before may have a higher revision than one delivered.
    const pg = [ch('a', 1, 50), ch('b', 2, 150), ch('a', 3, 40), ch('c', 3, 40), ch('b', 4, 170), ch('c', 5, 180)];
    expect(violated([now([ev('b', 2), ev('b', 4), ev('c', 5)])], pg, 'delivery')).toEqual({});
    expect(violated([now([ev('b', 2), ev('c', 5)])], pg, 'delivery')).toEqual({ reliable: 1 }); // b@4, after b@2
    expect(violated([now([ev('c', 5)])], pg, 'delivery')).toEqual({ 'from-now': 2 }); // b@2 and b@4, written after it returned
  });

  it('faithful: a change no write committed, another value, a key outside the filter', () => {
    expect(violated([seg({ events: [...ALL, ev('d', 6)] })], COMMITTED, 'store', ['d'])).toEqual({ faithful: 1 });
    expect(violated([seg({ events: [...ALL, ev('d', 6)] })])).toEqual({}); // d has writes of unknown outcome
    expect(violated([seg({ events: [ev('a', 1, 'other'), ...ALL.slice(1)] })])).toEqual({ faithful: 1 });
    expect(violated([seg({ filter: { key: 'a' }, events: [ev('a', 1), ev('b', 2), ev('a', 3)] })])).toEqual({ faithful: 1 });
  });

  it('the committed changes: acknowledged writes, history for the rest, and what a watch saw of an unanswered write', () => {
    const op = (clientId: string, input: Record<string, unknown>, status: 'ok' | 'fail' | 'unknown', call: number, output?: unknown): Operation<unknown, unknown> => ({ clientId, input, status, call, return: status === 'unknown' ? Infinity : call + 1, output });
    const ops = [
      op('c1', { op: 'put', key: 'a', value: 'x' }, 'ok', 10, { ok: true, revision: 1 }),
      op('c1', { api: true, op: 'put', key: 'a', value: 'x' }, 'ok', 9, { ok: true, revision: 1 }),
      op('c2', { op: 'put', key: 'a', value: 'y', cond: { ifRevision: 7 } }, 'fail', 20, { ok: false, actual: 1 }),
      op('c3', { op: 'put', key: 'b', value: 'z' }, 'unknown', 30),
      op('c4', { op: 'delete', key: 'a' }, 'ok', 40, { ok: true, revision: 3 }),
      op('c5', { op: 'put', key: 'b', value: 'w' }, 'unknown', 50),
      op('c6', { op: 'get', key: 'b' }, 'ok', 60, { value: 'z', revision: 2 }),
    ];
    const { changes, closedKeys } = committedChanges(ops, new Map([['b', [{ key: 'b', revision: 2, value: 'z' }]]]), [ev('b', 4, 'w'), ev('b', 5, 'never written')]);
    expect(changes.sort((x, y) => x.revision - y.revision)).toEqual([
      { key: 'a', revision: 1, type: 'put', value: 'x', invoked: 9, by: 'c1' },
      { key: 'b', revision: 2, type: 'put', value: 'z', invoked: 30 },
      { key: 'a', revision: 3, type: 'delete', invoked: 40, by: 'c4' },
      { key: 'b', revision: 4, type: 'put', value: 'w', invoked: 50 },
    ]);
    expect([...closedKeys]).toEqual(['a']);
  });
});

// ------------------------------------------------------------------ the canaries, alone

async function collect(iterable: AsyncIterable<WatchEvent>, n: number): Promise<string[]> {
  const out: string[] = [];
  for await (const e of iterable) {
    out.push(`${e.key}@${e.revision}`);
    if (out.length === n) break;
  }
  return out;
}

describe('the watch canaries', () => {
  it('dropped-event loses the second commit a watch sees; split-commit delivers one write of each commit; late-start misses a write made right after watch() returned', async () => {
    const memory = new MemoryStore();
    await memory.put('a', 1);
    await memory.atomic().set('a', 2).set('b', 2).commit();
    await memory.put('b', 3);
    expect(await collect(new DroppedEventStore(memory).watch({ prefix: '', fromRevision: 0 }), 2)).toEqual(['a@1', 'b@3']);
    expect(await collect(new SplitCommitStore(memory).watch({ prefix: '', fromRevision: 0 }), 3)).toEqual(['a@1', 'a@2', 'b@3']);
    const late = new LateStartStore(memory);
    const iterator = late.watch({ prefix: '' })[Symbol.asyncIterator]();
    await late.put('c', 'right after watch() returned');
    const next = iterator.next();
    await late.put('c', 'after the first next()');
    expect((await next).value).toMatchObject({ key: 'c', revision: 5 });
    await iterator.return?.();
    // Honest: the write right after watch() returned comes first.
    const honest = memory.watch({ prefix: '' })[Symbol.asyncIterator]();
    await memory.put('c', 'right after');
    expect((await honest.next()).value).toMatchObject({ key: 'c', revision: 6 });
    await honest.return?.();
  });
});

// ------------------------------------------------------------------ revkit check with watches

const summary = (s: CheckSummary) => ({ verdict: s.verdict, store: s.linearizability.result, api: s.api.result, violated: violatedOf(s) });
const violatedOf = (s: CheckSummary) => Object.fromEntries(Object.entries(s.watches?.byGuarantee ?? {}).filter(([, n]) => n > 0));
const EXPECTED: Record<WatchCanaryKind, WatchGuarantee> = { 'dropped-event': 'reliable', 'split-commit': 'atomic', 'late-start': 'from-now' };

describe('revkit check records watches and checks their guarantees', () => {
  it('on memory: watches from now, from revisions told by commits, reads and events, and resumed after cuts — all kept', async () => {
    // Whether a watch of the whole prefix is still open when the run drains (a 'drained' end) depends on how the
    // clients interleave, not only on the seed: seeds are tried until one run has covered it; every run must check.
    let drained = 0;
    for (let seed = 11; seed < 21 && drained === 0; seed++) {
      const s = await runCheck({ url: 'memory:', processes: 2, clients: 4, ops: 60, seed });
      expect(summary(s), `seed ${seed}`).toEqual({ verdict: 'linearizable', store: 'ok', api: 'ok', violated: {} });
      const w = s.watches;
      expect(w).toBeDefined();
      expect(w?.order).toBe('store');
      expect(w?.modes.now).toBeGreaterThan(5);
      expect(w?.modes.from).toBeGreaterThan(5);
      expect(w?.modes.resume).toBeGreaterThan(5);
      expect(Object.values(w?.told ?? {}).every((n) => n > 0)).toBe(true);
      expect(w?.fromNowChecked).toBeGreaterThan(20);
      expect(w?.events).toBeGreaterThan(300);
      drained = w?.ends.drained ?? 0;
    }
    expect(drained, 'no run of ten had a watch of the whole prefix open when it drained').toBeGreaterThan(0);
  });

  // 100 runs per canary, and 100 of the honest store, at a small size: each canary caught every time, by its guarantee only.
  it('catches each watch canary in 100 of 100 runs on memory, and passes the honest store 100 of 100', async () => {
    const small = { url: 'memory:', processes: 1, clients: 3, ops: 20, keys: 3 };
    for (let seed = 1; seed <= 100; seed++) {
      const honest = await runCheck({ ...small, seed });
      expect(summary(honest), `honest seed ${seed}`).toEqual({ verdict: 'linearizable', store: 'ok', api: 'ok', violated: {} });
      for (const canary of watchCanaryKinds) {
        const s = await runCheck({ ...small, seed, canary });
        expect(summary(s), `${canary} seed ${seed}`).toEqual({ verdict: 'watch guarantees broken', store: 'ok', api: 'ok', violated: { [EXPECTED[canary]]: expect.any(Number) } });
      }
    }
  }, 120_000);

  it('on SQLite (worker processes): the honest store passes and each canary is caught, 5 runs each', async () => {
    for (let seed = 1; seed <= 5; seed++) {
      const small = { processes: 2, clients: 3, ops: 20, keys: 3, seed };
      expect(summary(await runCheck({ ...small, url: sqliteUrl() })), `honest seed ${seed}`).toEqual({ verdict: 'linearizable', store: 'ok', api: 'ok', violated: {} });
      for (const canary of watchCanaryKinds) {
        const s = await runCheck({ ...small, url: sqliteUrl(), canary });
        expect(summary(s), `${canary} seed ${seed}`).toEqual({ verdict: 'watch guarantees broken', store: 'ok', api: 'ok', violated: { [EXPECTED[canary]]: expect.any(Number) } });
      }
    }
  }, 180_000);

  it('on SQLite with workers SIGKILLed mid-run: their watches end anywhere, and everything still checks', async () => {
    const s = await runCheck({ url: sqliteUrl(), processes: 3, clients: 4, ops: 150, keys: 3, killRate: 4, seed: 5 });
    expect(s.killed).toBeGreaterThan(0);
    expect(summary(s)).toEqual({ verdict: 'linearizable', store: 'ok', api: 'ok', violated: {} });
    expect(s.watches?.segments).toBeGreaterThan(20);
  }, 120_000);

  it('on PostgreSQL: watches deliver in revision order and keep every guarantee; the canaries are caught', async () => {
    for (const seed of [1, 2, 3]) {
      const s = await runCheck({ url: fresh.postgres?.() as string, processes: 3, clients: 3, ops: 60, seed });
      expect(summary(s), `seed ${seed}`).toEqual({ verdict: 'linearizable', store: 'ok', api: 'ok', violated: {} });
      expect(s.watches?.order).toBe('delivery');
      expect(s.watches?.fromNowChecked).toBeGreaterThan(20);
    }
    for (const canary of watchCanaryKinds) {
      const s = await runCheck({ url: fresh.postgres?.() as string, processes: 2, clients: 3, ops: 20, keys: 3, seed: 1, canary });
      expect(s.verdict, canary).toBe('watch guarantees broken');
      expect(violatedOf(s)[EXPECTED[canary]], canary).toBeGreaterThan(0);
    }
  }, 180_000);

  // Redis fixes a watch's start "from now" when watch() is called, on the server's clock (the change log's TIME stamps).
  // Its start one round trip later (the old code) was caught in about one run in four: six runs.
  it('on redis: watches keep every guarantee, from now included', async () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const s = await runCheck({ url: fresh.redis?.() as string, processes: 3, clients: 3, ops: 40, seed });
      expect(summary(s), `seed ${seed}: ${JSON.stringify(s.watches?.violations.slice(0, 3))}`).toEqual({ verdict: 'linearizable', store: 'ok', api: 'ok', violated: {} });
      expect(s.watches?.modes.resume).toBeGreaterThan(5);
      expect(s.watches?.fromNowChecked).toBeGreaterThan(20);
    }
  }, 300_000);

  // NATS fixes a watch's start "from now" when watch() is called, on the server's clock (the messages' store time).
  it('on nats: watches keep every guarantee, from now included', async () => {
    for (const seed of [1, 2, 3]) {
      const s = await runCheck({ url: fresh.nats?.() as string, processes: 3, clients: 3, ops: 40, seed });
      expect(summary(s), `seed ${seed}: ${JSON.stringify(s.watches?.violations.slice(0, 3))}`).toEqual({ verdict: 'linearizable', store: 'ok', api: 'ok', violated: {} });
      expect(s.watches?.modes.resume).toBeGreaterThan(5);
      expect(s.watches?.fromNowChecked).toBeGreaterThan(20);
    }
  }, 180_000);
});

/** The CLI, without blocking this process (the server under test runs in it). */
function runCli(args: string[], cwd: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('revkit check --server', () => {
  const servers: { close(): Promise<void> }[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  it('checks the server it names (not the default store), over HttpStore, with the event streams cut under the client', async () => {
    const { server, url } = await startServer({ store: 'memory:' });
    servers.push(server);
    const r = await runCli(['check', '--server', url, '--token', ADMIN, '--processes', '2', '--clients', '3', '--ops', '30', '--seed', '4', '--json'], dir);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { store: string; verdict: string; watches: { streamCuts: number; byGuarantee: Record<string, number>; modes: Record<string, number> } };
    expect(out.store).not.toContain(ADMIN);
    expect(out.store).toContain(new URL(url).host);
    expect(out.watches.streamCuts).toBeGreaterThan(3);
    // Cut streams resume after the last whole event: no gap, no repeat, no split commit; a watch "from now" starts
    // when watch() was called, on the server's clock, however late its request arrives or however often it is cut.
    expect(out.watches.byGuarantee).toEqual({ ordered: 0, unique: 0, atomic: 0, reliable: 0, resumable: 0, faithful: 0, 'from-now': 0 });
    expect(out.verdict).toBe('linearizable');
    expect(r.status).toBe(0);
    // The run's keys are on the server's store: --server was honoured.
    const listed = await fetch(`${url}/v1/kv?prefix=check/`, { headers: { authorization: `Bearer ${ADMIN}` } }).then((res) => res.json() as Promise<{ entries: unknown[] }>);
    expect(listed.entries.length).toBeGreaterThan(0);
    // A token no bearer header can carry is a usage error, named without the token.
    const bad = await runCli(['check', '--server', url, '--token', 'tok en'], dir);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--token/);
  }, 120_000);

  it('--canary names the watch canaries; the report names the guarantee broken', () => {
    const r = spawnSync(process.execPath, [cli, 'check', '--store', 'memory:', '--canary', 'split-commit', '--processes', '1', '--ops', '20', '--seed', '2'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/watches[\s\S]*from now[\s\S]*atomic\s+\d+ violation\(s\)\n\s+- .*commit \d+ delivered in part[\s\S]*verdict\s+WATCH GUARANTEES BROKEN/);
    const good = spawnSync(process.execPath, [cli, 'check', '--store', 'memory:', '--processes', '1', '--ops', '20', '--seed', '2'], { encoding: 'utf8' });
    expect(good.status).toBe(0);
    expect(good.stdout).toMatch(/ordered\s+ok\n\s+unique\s+ok\n\s+atomic\s+ok\n\s+reliable\s+ok\n\s+resumable\s+ok\n\s+from-now\s+ok\n\s+faithful\s+ok/);
    const unknown = spawnSync(process.execPath, [cli, 'check', '--store', 'memory:', '--canary', 'typo'], { encoding: 'utf8' });
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/dropped-event, split-commit, late-start/);
  });
});
