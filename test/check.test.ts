import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCheck } from '../src/testing/check/run.js';
import { tempDir, uniqueName } from './helpers.js';

const dir = tempDir('check');
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const sqliteUrl = () => `sqlite:${join(dir, `${uniqueName('check')}.db`)}`;

describe('revkit check', () => {
  it('finds nothing on memory (in-process clients) and on SQLite (worker processes)', async () => {
    const memory = await runCheck({ url: 'memory:', processes: 4, clients: 4, ops: 60, seed: 1 });
    expect(memory).toMatchObject({ verdict: 'linearizable', mode: 'in-process' });
    expect(memory.operations).toBeGreaterThan(900);
    const url = sqliteUrl();
    const sqlite = await runCheck({ url, processes: 3, clients: 4, ops: 60, seed: 2 });
    expect(sqlite).toMatchObject({ verdict: 'linearizable', mode: 'processes' });
    expect(sqlite.chain.violations).toEqual([]);
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
    const usage = spawnSync(process.execPath, [cli, 'check', '--store', 'memory:', '--ops', 'lots'], { encoding: 'utf8' });
    expect(usage.status).toBe(2);
  });
});
