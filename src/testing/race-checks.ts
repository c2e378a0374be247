import assert from 'node:assert/strict';
import { ConflictError, type Store } from '../core/index.js';

type StoreTest = (store: Store) => Promise<void>;


/**
 * The in-process lost-update tests. Each throws when the store loses or
 * resurrects a write; canary.test.ts runs every one of them against the
 * canary store and requires each to throw there.
 */
export const raceChecks: Record<string, StoreTest> = {
  '64 concurrent updates of one key, combined and uncombined at once, lose nothing': async (s) => {
    await Promise.all(Array.from({ length: 64 }, (_, i) => s.update<number>('hot', (n) => (n ?? 0) + 1, { combine: i % 2 === 0, maxAttempts: 10_000 })));
    assert.equal((await s.get('hot'))?.value, 64);
  },
  'concurrent ifAbsent creates: exactly one wins': async (s) => {
    for (let round = 0; round < 20; round++) {
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => s.put(`once/${round}`, i, { ifAbsent: true })));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one create wins');
      for (const r of results) if (r.status === 'rejected') assert.ok(ConflictError.is(r.reason), String(r.reason));
    }
  },
  'a writer racing a delete never resurrects the key': async (s) => {
    for (let round = 0; round < 20; round++) {
      const key = `del-race/${round}`;
      const read = await s.put(key, 'v1');
      // Issue order alternates, so a check-then-write store gets both interleavings.
      const racing = round % 2 === 0
        ? [s.put(key, 'v2', { ifRevision: read.revision }), s.delete(key)]
        : [s.delete(key), s.put(key, 'v2', { ifRevision: read.revision })];
      await Promise.allSettled(racing);
      // Every serial order leaves the key deleted: put-then-delete, or delete-then-failed-put.
      assert.equal(await s.get(key), null, `${key} was resurrected`);
    }
  },
};
