/**
 * The replication workload's watch verdict (test/fixtures/replication/workload.mjs) tells a revision
 * the watch passed over silently from one its key's chain reported late (HistoryGoneError naming a
 * revision of that key below it, found at a later message of the same key): only the second may be
 * tolerated, and only where a server's replicas can diverge (test/faults/replication-nats.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { judgeWatch } from './fixtures/replication/workload.mjs';

const ev = (revision: number, n: number, after = 0) => ({ revision, n, after });

describe('replication verdict: a revision passed over', () => {
  // Key a: 1, 3 (acknowledged 2 never delivered); key b: 4, 5.
  const keys = ['a', 'b'];
  const acks = [
    { key: 'a', revision: 1 }, { key: 'a', revision: 2 }, { key: 'a', revision: 3 },
    { key: 'b', revision: 4 }, { key: 'b', revision: 5 },
  ];
  const seen = () => new Map([['a', [ev(1, 1), ev(3, 3, 1)]], ['b', [ev(4, 1, 1), ev(5, 2, 1)]]]);

  it('with no report is a silent gap', () => {
    const w = judgeWatch(keys, seen(), [], true, acks, []);
    expect(w.gaps).toBe(1);
    expect(w.skipped).toBe(1);
    expect(w.reportedLate).toBe(0);
  });

  it("reported by its own key's chain (changes after 1 gone, found at 3) is reported late", () => {
    const failures = [{ code: 'ERR_HISTORY_GONE', fromRevision: 1, oldestRevision: 3, from: 5, skippedTo: 5 }];
    const w = judgeWatch(keys, seen(), failures, true, acks, []);
    expect(w.gaps).toBe(1);
    expect(w.reportedLate).toBe(1);
  });

  it("reported by another key's chain (found at b's 5) is still a silent gap", () => {
    const failures = [{ code: 'ERR_HISTORY_GONE', fromRevision: 1, oldestRevision: 5, from: 5, skippedTo: 5 }];
    const w = judgeWatch(keys, seen(), failures, true, acks, []);
    expect(w.reportedLate).toBe(0);
  });

  it('a report whose range does not hold the revision is still a silent gap', () => {
    const failures = [{ code: 'ERR_HISTORY_GONE', fromRevision: 2, oldestRevision: 3, from: 5, skippedTo: 5 }];
    const w = judgeWatch(keys, seen(), failures, true, acks, []);
    expect(w.reportedLate).toBe(0);
  });
});

describe('replication verdict: a revision at which several keys were acknowledged (replicas that diverged)', () => {
  it("does not let one key's chain break forgive another key's skip, whatever the order of the acknowledgements", () => {
    // a: 1, 3 delivered, 2 skipped; b: 4 delivered; 5 acknowledged for both a and b (two servers, one sequence).
    const keys = ['a', 'b'];
    const seen = () => new Map([['a', [ev(1, 1), ev(3, 3, 1)]], ['b', [ev(4, 1, 1)]]]);
    const failures = [{ code: 'ERR_HISTORY_GONE', fromRevision: 1, oldestRevision: 5, from: 5, skippedTo: 5 }];
    const base = [{ key: 'a', revision: 1 }, { key: 'a', revision: 2 }, { key: 'a', revision: 3 }, { key: 'b', revision: 4 }];
    for (const tail of [[{ key: 'b', revision: 5 }, { key: 'a', revision: 5 }], [{ key: 'a', revision: 5 }, { key: 'b', revision: 5 }]]) {
      const w = judgeWatch(keys, seen(), failures, true, [...base, ...tail], []);
      expect(w.skipped).toBeGreaterThanOrEqual(1);
      expect(w.reportedLate, JSON.stringify(tail)).toBe(0);
    }
  });
});

