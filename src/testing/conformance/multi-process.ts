import { describe, expect, it } from 'vitest';
import { CI_MULTI_PROCESS_INCREMENTS, runMultiProcessCounters, type CounterRunOptions } from '../multiprocess.js';

/** Runs only for targets that other OS processes can open (`makeUrl`: a fresh URL of a shared store). */
export function describeMultiProcess(targetName: string, makeUrl: () => Promise<string>, options: CounterRunOptions | undefined): void {
  describe('multi-process', () => {
    it('4 processes × 16 update() writers incrementing counters lose nothing', async () => {
      const url = await makeUrl();
      const { openTarget } = await import('../open-target.js');
      const checker = await openTarget(url);
      try {
        // CI size (the canary store is caught at it: test/canary.test.ts); `npm run soak`
        // (bench/soak/counters.mjs) runs 20,000 with REVKIT_MP_INCREMENTS.
        const increments = Number(process.env.REVKIT_MP_INCREMENTS ?? CI_MULTI_PROCESS_INCREMENTS);
        const report = await runMultiProcessCounters(url, checker, { processes: 4, writers: 16, increments, ...options });
        expect({ lost: report.lost, duplicated: report.duplicated, failed: report.failed, errors: report.errors }).toEqual({ lost: 0, duplicated: 0, failed: 0, errors: [] });
        expect(report.succeeded).toBe(report.increments);
        console.log(`[${targetName}] multi-process: ${report.processes}×${report.writersPerProcess} writers, ${report.succeeded} increments in ${(report.elapsedMs / 1000).toFixed(1)} s, ${(report.attempts / report.succeeded).toFixed(2)} attempts per commit`);
      } finally {
        await checker.close();
      }
    }, 300_000);
  });
}
