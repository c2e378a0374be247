import { describe, expect, it } from 'vitest';
// @ts-expect-error a plain .mjs harness, shared with bench/soak/checkpoints-follow.mjs
import { runFollowKills } from '../fixtures/checkpoints-follow-run.mjs';
import { backends } from '../checkpoints-backends.js';

const KILLS = 10;
// CI size; `npm run soak` (bench/soak/checkpoints-follow.mjs) runs 50 kills over 10,000 changes.
const CHANGES = 500;

describe(`follow(): a consumer SIGKILLed at random ${KILLS} times while ${CHANGES} changes are written misses none`, () => {
  for (const backend of backends('follow-kill').filter((b) => b.crossProcess)) {
    it(`on ${backend.name}`, async () => {
      // SIGKILL of a process loses nothing SQLite has written with synchronous=normal; fsyncs would only slow the run.
      const url = backend.name === 'sqlite' ? `${backend.freshUrl()}?synchronous=normal` : backend.freshUrl();
      const report = await runFollowKills({ url, kills: KILLS, changes: CHANGES });
      expect(report.failures).toEqual([]);
      expect(report.kills).toBe(KILLS);
      expect(report.changes).toBe(CHANGES);
      expect(report.missedSample).toEqual([]);
      expect(report.missed).toBe(0);
      expect(report.unexpected).toBe(0);
      // It resumed from its cursor, not from the start: a crash re-handles at most the event (or
      // the rest of the two-key commit) it had handled but not yet recorded.
      expect(report.redelivered).toBeLessThanOrEqual(2 * KILLS);
    }, 240_000);
  }
});

describe('the crash test catches a consumer that records its cursor before handling (at-most-once)', () => {
  const sqlite = backends('follow-kill-broken').find((b) => b.name === 'sqlite');

  it('on sqlite: changes are missed', async () => {
    const report = await runFollowKills({
      url: `${sqlite?.freshUrl()}?synchronous=normal`, kills: KILLS, changes: CHANGES, consumerArgs: ['--broken-advance-first'],
    });
    expect(report.failures).toEqual([]);
    expect(report.kills).toBe(KILLS);
    expect(report.missed).toBeGreaterThan(0);
    // The gaps the kills made (one change each, or the rest of a two-key commit), not a consumer that fell behind.
    expect(report.missed).toBeLessThanOrEqual(2 * KILLS);
  }, 240_000);
});
