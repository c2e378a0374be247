import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCheck, type CheckSummary } from '../src/testing/check/run.js';
import { ApiRecorder, HistoryRecorder, RecordingStore, apiKvModel, checkOperations, type ApiKvInput, type ApiKvOutput } from '../src/testing/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { tempDir, uniqueName } from './helpers.js';

const dir = tempDir('check');
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const sqliteUrl = () => `sqlite:${join(dir, `${uniqueName('check')}.db`)}`;

/** Both levels judged: what reached the store, and what each caller was told. */
const levels = (s: CheckSummary) => ({ store: s.linearizability.result, chain: s.chain.ok, api: s.api.result, counters: s.increments.ok });

describe('the API-level recorder', () => {
  it('records update(), put, delete and atomic calls with what they returned, and an atomic commit as one write per key', async () => {
    const recorder = new HistoryRecorder<ApiKvInput, ApiKvOutput>();
    const store = new MemoryStore();
    const client = new ApiRecorder(new RecordingStore(store, recorder, 'c'), recorder, 'c');
    await client.update('n', { kind: 'increment' });
    const { revision } = await client.atomic([{ type: 'check', key: 'n', revision: 1 }, { type: 'set', key: 'n', value: 5 }, { type: 'set', key: 'm', value: 'x' }]);
    await expect(client.atomic([{ type: 'check', key: 'n', revision: 1 }, { type: 'set', key: 'n', value: 6 }, { type: 'set', key: 'm', value: 'y' }])).rejects.toThrow(/conflict/);
    await client.put('m', 'z', { ifRevision: revision });
    await client.delete('m');
    const api = recorder.operations().filter((o) => o.input.op === 'update' || 'api' in o.input);
    expect(api.map((o) => [o.input.op, o.input.key, o.status, o.output])).toEqual([
      ['update', 'n', 'ok', { value: 1, revision: 1 }],
      ['put', 'n', 'ok', { ok: true, revision }],
      ['put', 'm', 'ok', { ok: true, revision }],
      ['put', 'n', 'fail', { ok: false, actual: revision }], // its own check failed: an observation
      ['put', 'm', 'fail', undefined], // refused for n's sake: says nothing about m
      ['put', 'm', 'ok', { ok: true, revision: revision + 1 }],
      ['delete', 'm', 'ok', { ok: true, revision: revision + 2 }],
    ]);
    expect(checkOperations(apiKvModel, [...api, ...recorder.operations().filter((o) => o.input.op === 'get')]).result).toBe('ok');
  });
});

describe('revkit check', () => {
  it('finds nothing on memory (in-process clients) and on SQLite (worker processes), API-level operations included', async () => {
    const memory = await runCheck({ url: 'memory:', processes: 4, clients: 4, ops: 60, seed: 1 });
    expect(memory).toMatchObject({ verdict: 'linearizable', mode: 'in-process' });
    expect(memory.operations).toBeGreaterThan(900);
    expect(levels(memory)).toEqual({ store: 'ok', chain: true, api: 'ok', counters: true });
    expect(memory.apiOperations).toBeGreaterThan(300);
    expect(memory.increments.increments).toBeGreaterThan(100);
    const url = sqliteUrl();
    const sqlite = await runCheck({ url, processes: 3, clients: 4, ops: 60, seed: 2 });
    expect(sqlite).toMatchObject({ verdict: 'linearizable', mode: 'processes' });
    expect(sqlite.chain.violations).toEqual([]);
    expect(levels(sqlite)).toEqual({ store: 'ok', chain: true, api: 'ok', counters: true });
    expect(sqlite.apiOperations).toBeGreaterThan(200);
    // A second run on the same store works on keys of its own.
    expect((await runCheck({ url, processes: 2, clients: 4, ops: 40, seed: 3 })).verdict).toBe('linearizable');
  }, 120_000);

  it('flags the canary store every time (memory and SQLite, 5 seeds each)', async () => {
    for (let seed = 1; seed <= 5; seed++) {
      const memory = await runCheck({ url: 'canary:memory:', processes: 2, clients: 4, ops: 40, seed });
      expect(memory.verdict, `memory seed ${seed}`).toBe('not linearizable');
    }
    for (let seed = 1; seed <= 5; seed++) {
      const sqlite = await runCheck({ url: `canary:${sqliteUrl()}`, processes: 3, clients: 4, ops: 40, seed });
      expect(sqlite.verdict, `sqlite seed ${seed}`).toBe('not linearizable');
      expect(sqlite.linearizability.counterExample?.text).toMatch(/cannot be linearized/);
    }
  }, 180_000);

  // Every write these canaries make is a correct compare-and-swap, so the store level stays clean:
  // only the API-level operations (what callers are told) can catch them.
  for (const canary of ['shared-result', 'double-apply'] as const) {
    it(`flags the ${canary} canary every time from what callers are told (memory 5 seeds, SQLite 2)`, async () => {
      const runs: [string, CheckSummary][] = [];
      for (let seed = 1; seed <= 5; seed++) runs.push([`memory seed ${seed}`, await runCheck({ url: 'memory:', canary, processes: 2, clients: 4, ops: 40, seed })]);
      for (let seed = 1; seed <= 2; seed++) runs.push([`sqlite seed ${seed}`, await runCheck({ url: sqliteUrl(), canary, processes: 3, clients: 4, ops: 40, seed })]);
      for (const [name, s] of runs) {
        expect(s.verdict, name).toBe('not linearizable');
        expect(levels(s), name).toEqual({ store: 'ok', chain: true, api: 'illegal', counters: false });
        expect(s.api.counterExample?.text, name).toMatch(/cannot be linearized after it: /);
        expect(s.increments.violations[0]?.kind, name).toBe(canary === 'shared-result' ? 'shared-value' : 'applied-twice');
      }
    }, 180_000);
  }

  it('SIGKILLed workers leave unknown outcomes, and the history still checks', async () => {
    const summary = await runCheck({ url: sqliteUrl(), processes: 3, clients: 4, ops: 150, keys: 3, killRate: 4, seed: 7 });
    expect(summary.killed).toBeGreaterThan(0);
    expect(summary.verdict).toBe('linearizable');
  }, 180_000);

  it('the CLI prints a verdict and exits 0 when linearizable, 1 when not', () => {
    const good = spawnSync(process.execPath, [cli, 'check', '--store', 'memory:', '--ops', '30', '--seed', '3'], { encoding: 'utf8' });
    expect(good.status).toBe(0);
    expect(good.stdout).toMatch(/verdict\s+LINEARIZABLE/);
    const bad = spawnSync(process.execPath, [cli, 'check', '--store', 'canary:memory:', '--ops', '40', '--seed', '3', '--json'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ verdict: 'not linearizable', store: 'canary:memory:' });
    const shared = spawnSync(process.execPath, [cli, 'check', '--store', 'memory:', '--canary', 'shared-result', '--ops', '40', '--seed', '3'], { encoding: 'utf8' });
    expect(shared.status).toBe(1);
    expect(shared.stdout).toMatch(/API level[\s\S]*shared-value[\s\S]*verdict\s+NOT LINEARIZABLE/);
    const usage = spawnSync(process.execPath, [cli, 'check', '--store', 'memory:', '--ops', 'lots'], { encoding: 'utf8' });
    expect(usage.status).toBe(2);
    const unknownCanary = spawnSync(process.execPath, [cli, 'check', '--store', 'memory:', '--canary', 'typo'], { encoding: 'utf8' });
    expect(unknownCanary.status).toBe(2);
    expect(unknownCanary.stderr).toMatch(/lost-update, shared-result, double-apply/);
  });
});
