import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/sqlite/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { CanaryStore, raceChecks, runMultiProcessCounters } from '../src/testing/index.js';
import { tempDir, uniqueName } from './helpers.js';

const dir = tempDir('canary');

// Every lost-update test must catch a store that checks, then writes without a condition.
describe('the canary store is caught', () => {
  it('by the multi-process counter part (4 processes × 16 writers on SQLite), in 3 of 3 runs', async () => {
    for (let run = 0; run < 3; run++) {
      const path = join(dir, `${uniqueName('canary')}.db`);
      const verify = new SqliteStore(path);
      const report = await runMultiProcessCounters(`canary:sqlite:${path}`, verify, { processes: 4, writers: 16, increments: 4000 });
      await verify.close();
      expect(report.lost + report.duplicated).toBeGreaterThan(0);
    }
  }, 180_000);

  for (const [name, check] of Object.entries(raceChecks)) {
    it(`by "${name}" on memory and on SQLite`, async () => {
      for (const inner of [new MemoryStore(), new SqliteStore(join(dir, `${uniqueName('race')}.db`))]) {
        const canary = new CanaryStore(inner);
        await expect(check(canary)).rejects.toThrow();
        await canary.close();
      }
    });
  }
});
