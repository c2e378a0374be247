import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/memory/index.js';
import { HistoryGoneError } from '../src/core/index.js';
import { describeConformance } from '../src/testing/vitest.js';

describeConformance({ name: 'memory', create: async () => new MemoryStore({ sweepIntervalMs: 50 }) });

describe('memory specifics', () => {
  it('watch from a revision whose changes were dropped throws HistoryGoneError, never skips', async () => {
    const s = new MemoryStore({ changeLogSize: 5 });
    const first = await s.put('k', 0);
    for (let i = 1; i <= 20; i++) await s.put('k', i);
    const it = s.watch({ key: 'k', fromRevision: first.revision })[Symbol.asyncIterator]();
    const err = await it.next().catch((e) => e);
    expect(HistoryGoneError.is(err)).toBe(true);
    expect(err.oldestRevision).toBeGreaterThan(first.revision + 1);
    await s.close();
  });

  it('an expired key becomes a tombstone with a new revision and a delete event', async () => {
    const s = new MemoryStore({ sweepIntervalMs: 20 });
    const e = await s.put('t', 1, { ttlMs: 30 });
    const events: string[] = [];
    const controller = new AbortController();
    const watching = (async () => {
      for await (const ev of s.watch({ key: 't', fromRevision: e.revision - 1, signal: controller.signal })) {
        events.push(ev.type);
        if (events.length === 2) break;
      }
    })();
    await watching;
    const record = await s.getRecord('t');
    expect(record).toMatchObject({ deleted: true });
    expect(record!.revision).toBeGreaterThan(e.revision);
    expect(events).toEqual(['put', 'delete']);
    await s.close();
  });
  it('history keeps the newest historyDepth revisions, newest first, however many writes came before', async () => {
    const s = new MemoryStore({ historyDepth: 3 });
    for (let i = 1; i <= 20; i++) {
      await s.put('h', i);
      const all = (await s.history<number>('h')).map((r) => (r as { value: number }).value);
      expect(all).toEqual([i, i - 1, i - 2].filter((v) => v >= 1));
      expect((await s.history<number>('h', { limit: 2 })).map((r) => (r as { value: number }).value)).toEqual([i, i - 1].filter((v) => v >= 1));
    }
    await s.close();
  });
});
