import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/memory/index.js';
import { ServerClock } from '../src/http/http-store-clock.js';
import { RevisionClock } from '../src/server/revision-clock.js';

/** A RevisionClock on a clock the test sets. */
class ManualClock extends RevisionClock {
  time = 0;
  override now(): number {
    return this.time;
  }
}

describe('RevisionClock: the revision that had committed by a moment of the server clock', () => {
  it('never answers a revision seen after the moment asked about (a write starting then would be missed), and is at most ~10 ms coarse', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.double({ min: 0, max: 20, noNaN: true }), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 300 }), fc.integer({ min: 1, max: 200 }), (steps, keepMs) => {
        const clock = new ManualClock(new MemoryStore(), keepMs * 10);
        const seen: Array<{ time: number; revision: number }> = [];
        let revision = 0;
        for (const [dt, dr] of steps) {
          clock.time += dt;
          revision += dr;
          clock.saw(revision);
          seen.push({ time: clock.time, revision });
        }
        for (const { time } of seen) {
          for (const at of [time, time - 0.001, time + 3]) {
            const answer = clock.revisionAt(at);
            const truth = Math.max(-1, ...seen.filter((s) => s.time <= at).map((s) => s.revision));
            const kept = seen.filter((s) => s.time >= clock.time - keepMs * 10);
            // No answer only for a moment older than what is kept.
            if (answer === undefined) {
              expect(at).toBeLessThan(clock.time - keepMs * 10);
              continue;
            }
            // Safe: what it answers had been seen by `at` — unless `at` is older than everything it keeps.
            if (truth >= 0 && (kept[0]?.time ?? 0) <= at) expect(answer).toBeLessThanOrEqual(truth);
            // Close: whatever was seen 10 ms before `at` is covered (samples are coalesced to 5 ms).
            const older = seen.filter((s) => s.time <= at - 10 && s.time >= clock.time - keepMs * 10 + 10).map((s) => s.revision);
            if (older.length > 0) expect(answer).toBeGreaterThanOrEqual(Math.max(...older));
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('RevisionClock after old samples are dropped', () => {
  it('a moment between the newest dropped sample and the oldest kept one gets the dropped revision, never the later one (fast-check counterexample)', () => {
    const clock = new ManualClock(new MemoryStore(), 20);
    clock.saw(0); // at 0
    clock.time = 30;
    clock.saw(1); // at 30: the sample at 0 is older than 20 ms, dropped
    expect(clock.revisionAt(5)).toBe(0); // revision 1 committed after 5: a watch from 1 would miss a write started at 5
    expect(clock.revisionAt(30)).toBe(1);
    expect(clock.revisionAt(-1)).toBeUndefined();
  });
});

describe('ServerClock: where a moment of this process falls on the server clock', () => {
  it('never places it later than it was on the server (whatever the delays of the answers), and names the server run', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e6, noNaN: true }), fc.array(fc.tuple(fc.double({ min: 0, max: 5000, noNaN: true }), fc.double({ min: 0, max: 400, noNaN: true })), { minLength: 1, maxLength: 50 }), (offset, answers) => {
        const clock = new ServerClock();
        let local = 1000;
        for (const [gap, delay] of answers) {
          local += gap;
          // Stamped on the server at local moment `local`, received `delay` later.
          clock.observe(`run1;${(Math.floor((local + offset) * 1000) / 1000).toFixed(3)}`, local + delay);
          local += delay;
        }
        const since = clock.since(local, local);
        if (since === undefined) return;
        const [run, at] = since.split(';') as [string, string];
        expect(run).toBe('run1');
        expect(Number(at)).toBeLessThanOrEqual(Math.max(0, local + offset));
      }),
      { numRuns: 500 },
    );
  });

  it('a moment before the first sample: the oldest revision, unless strict (the client heard this run only later): no answer', () => {
    const clock = new ManualClock(new MemoryStore());
    clock.time = 100;
    clock.saw(7);
    expect(clock.revisionAt(50)).toBe(7);
    expect(clock.revisionAt(50, true)).toBeUndefined();
    expect(clock.revisionAt(100, true)).toBe(7);
  });

  it('marks a moment from before this process heard the current run, after another run (;r)', () => {
    const clock = new ServerClock();
    clock.observe('a;5000.000', 100);
    expect(clock.since(150, 150)).toBe('a;4800.000');
    clock.observe('b;70.000', 400); // a new run answered after watch() was called at 150
    expect(clock.since(150, 400)).toBe('b;0.000;r'); // 150 + (70 - 400) - 250, floored at 0
    expect(clock.since(500, 500)).toBe('b;0.000');
  });

  it('knows nothing without a reading of the last minute, and starts over when the server restarted', () => {
    const clock = new ServerClock();
    expect(clock.since(10, 10)).toBeUndefined();
    clock.observe('a;5000.000', 100);
    expect(clock.since(100, 100)).toBe('a;4750.000');
    expect(clock.since(100, 100 + 61_000)).toBeUndefined();
    clock.observe('b;10.000', 200);
    expect(clock.since(200, 200)?.startsWith('b;')).toBe(true);
    clock.observe('not a clock', 300);
    clock.observe(null, 300);
    expect(clock.since(200, 300)?.startsWith('b;')).toBe(true);
  });
});
