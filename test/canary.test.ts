import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/sqlite/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { CI_MULTI_PROCESS_INCREMENTS, CanaryStore, DoubleApplyStore, InWriteCanaryStore, SharedResultStore, callerChecks, raceChecks, runMultiProcessCounters } from '../src/testing/index.js';
import { tempDir, uniqueName } from './helpers.js';

const dir = tempDir('canary');

// Every lost-update test must catch a store that checks, then writes without a condition.
describe('the canary store is caught', () => {
  it('by the multi-process counter part (4 processes × 16 writers on SQLite, at the size the conformance suite runs), in 3 of 3 runs', async () => {
    for (let run = 0; run < 3; run++) {
      const path = join(dir, `${uniqueName('canary')}.db`);
      const verify = new SqliteStore(path);
      const report = await runMultiProcessCounters(`canary:sqlite:${path}`, verify, { processes: 4, writers: 16, increments: CI_MULTI_PROCESS_INCREMENTS });
      await verify.close();
      expect(report.lost + report.duplicated).toBeGreaterThan(0);
    }
  }, 180_000);

  it('in update()\'s one-transaction path (SQLite\'s updateInWrite, read before the write): by the multi-process counter part, in 3 of 3 runs', async () => {
    for (let run = 0; run < 3; run++) {
      const path = join(dir, `${uniqueName('canary-in-write')}.db`);
      const verify = new SqliteStore(path);
      const report = await runMultiProcessCounters(`canary-in-write:sqlite:${path}`, verify, { processes: 4, writers: 16, increments: CI_MULTI_PROCESS_INCREMENTS });
      await verify.close();
      expect(report.lost + report.duplicated).toBeGreaterThan(0);
    }
  }, 180_000);

  for (const [name, check] of Object.entries(raceChecks)) {
    it(`by "${name}" in update()'s one-transaction path on SQLite`, async () => {
      const canary = new InWriteCanaryStore(new SqliteStore(join(dir, `${uniqueName('race-in-write')}.db`)));
      await expect(check(canary)).rejects.toThrow();
      await canary.close();
    });

    it(`by "${name}" on memory and on SQLite`, async () => {
      for (const inner of [new MemoryStore(), new SqliteStore(join(dir, `${uniqueName('race')}.db`))]) {
        const canary = new CanaryStore(inner);
        await expect(check(canary)).rejects.toThrow();
        await canary.close();
      }
    });
  }
});

// The API-level canaries only make sense if they really break what callers are told while every
// write stays a correct compare-and-swap; revkit check catching them is in test/check.test.ts.
describe('the API-level canaries misbehave as intended', () => {
  const increment = (n: number | undefined) => (n ?? 0) + 1;

  it('SharedResultStore: 8 concurrent increments are applied once each but all return 8 (defect #1)', async () => {
    for (const inner of [new MemoryStore(), new SqliteStore(join(dir, `${uniqueName('shared')}.db`))]) {
      const store = new SharedResultStore(inner);
      const results = await Promise.all(Array.from({ length: 8 }, () => store.update<number>('seq', increment)));
      expect(results.map((e) => e?.value)).toEqual(Array(8).fill(8));
      expect((await inner.get<number>('seq'))?.value).toBe(8);
      await store.close();
    }
  });

  it('DoubleApplyStore: every 3rd update() runs its mutation a second time and returns the second result', async () => {
    for (const inner of [new MemoryStore(), new SqliteStore(join(dir, `${uniqueName('double')}.db`))]) {
      const store = new DoubleApplyStore(inner, 3);
      const told: (number | undefined)[] = [];
      for (let i = 0; i < 6; i++) told.push((await store.update<number>('seq', increment))?.value);
      expect(told).toEqual([1, 2, 4, 5, 6, 8]);
      expect((await inner.history('seq')).length).toBe(8);
      await store.close();
    }
  });
});

// The conformance suite's caller checks (src/testing/caller-checks.ts) must catch both API-level canaries.
describe('the API-level canaries are caught by the conformance caller checks', () => {
  const check = callerChecks['N concurrent increments return exactly the values 1..N, combined or not'];
  it('SharedResultStore and DoubleApplyStore on memory and on SQLite', async () => {
    expect(check).toBeTypeOf('function');
    const stores = () => [new MemoryStore(), new SqliteStore(join(dir, `${uniqueName('callers')}.db`))];
    for (const inner of stores()) await expect(check!(new SharedResultStore(inner))).rejects.toThrow(/its own value/);
    for (const inner of stores()) await expect(check!(new DoubleApplyStore(inner))).rejects.toThrow();
  });
});
