// An update() of a key started from inside a mutation of that key's own attempt waits for that
// attempt to end (src/core/nested.ts): review round 8 found it racing the attempt — the attempt's
// write conflicted, its mutation ran again and started another nested update(), until every
// caller ran out of attempts (memory and SQLite, whenever an async mutation shared the attempt).
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/memory/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import type { Store } from '../src/core/index.js';

const stores: Array<[string, () => Store]> = [
  ['memory', () => new MemoryStore()],
  ['sqlite', () => new SqliteStore(':memory:')],
];

describe('update() started inside a mutation of the same key', () => {
  for (const [name, open] of stores) {
    for (const order of ['async neighbour first', 'async neighbour second'] as const) {
      it(`${name}, ${order}: runs after the attempt it was started in, once; both outer callers succeed in one attempt`, async () => {
        const s = open();
        await s.put('k', { n: 0 });
        let asyncCalls = 0;
        let syncCalls = 0;
        const nested: Array<Promise<unknown>> = [];
        const slow = async (v: { n: number } | undefined) => {
          asyncCalls++;
          await new Promise((r) => setTimeout(r, 5));
          return { n: (v?.n ?? 0) + 1 };
        };
        const starter = (v: { n: number } | undefined) => {
          syncCalls++;
          nested.push(s.update<{ n: number }>('k', (w) => ({ n: (w?.n ?? 0) + 1 }), { maxAttempts: 5 }));
          return { n: (v?.n ?? 0) + 1 };
        };
        const fns = order === 'async neighbour first' ? [slow, starter] : [starter, slow];
        const outer = await Promise.allSettled(fns.map((fn) => s.update<{ n: number }>('k', fn, { maxAttempts: 5 })));
        const inner = await Promise.allSettled(nested);
        expect(outer.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
        expect(inner.map((r) => r.status)).toEqual(['fulfilled']);
        expect([asyncCalls, syncCalls]).toEqual([1, 1]);
        expect((await s.get<{ n: number }>('k'))?.value).toEqual({ n: 3 });
        await s.close();
      });
    }
  }
  for (const [name, open] of stores) {
    it(`${name}: several update()s started inside one mutation share one attempt after it, each fn called once (review round 9)`, async () => {
      const s = open();
      await s.put('k', 1);
      let nestedCalls = 0;
      const nested: Array<Promise<{ value: number } | null>> = [];
      await s.update<number>('k', (n) => {
        for (let i = 0; i < 4; i++) nested.push(s.update<number>('k', (m) => (nestedCalls++, (m ?? 0) + 1)) as Promise<{ value: number } | null>);
        return n ?? 0;
      });
      const values = (await Promise.all(nested)).map((e) => e?.value);
      expect(values).toEqual([2, 3, 4, 5]);
      expect(nestedCalls).toBe(4);
      await s.close();
    });
  }
});
