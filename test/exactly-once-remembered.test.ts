// process() decides a message's first attempt on the epoch and dedup records this
// process last read or committed (src/exactly-once/known-records.ts) instead of
// reading them again; the commit's checks on their revisions are what keep that
// exactly-once. These cases make the remembered records stale in each way they
// can go stale — a new epoch, a retirement, another consumer (another process's
// store instance) applying later messages — and check that the caller is told
// what a fresh read would have told it, with nothing written twice; and that a
// result a caller changes after process() returned never reaches a later commit.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { FencedError, processMessage, registerProducer, retireProducer, type Transaction } from '../src/exactly-once/index.js';
import type { Store } from '../src/core/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { PostgresStore } from '../src/postgres/index.js';
import { open } from '../src/open.js';
import { backends, dropPgStores, PG_URL, pgPrefix, REDIS_URL, redisPrefix } from './fixtures/exactly-once/stores.js';
import { tempDir, uniqueName } from './helpers.js';

afterAll(dropPgStores, 60_000);
const dir = tempDir('eo-remembered');

let handlerRuns = 0;
const count = async (tx: Transaction, payload: { n: number }) => {
  handlerRuns++;
  const total = await tx.update<number>('count', (c) => (c ?? 0) + payload.n);
  await tx.update<number[]>('list', (l) => [...(l ?? []), payload.n]);
  return { total, items: [payload.n] };
};

for (const backend of await backends(dir)) {
  describe(`exactly-once on remembered records (${backend.name})`, () => {
    const stores: Store[] = [];
    const fresh = async () => {
      const store = await backend.create();
      stores.push(store);
      return store;
    };
    afterAll(() => Promise.all(stores.map((s) => s.close())));

    it('a stamp of an epoch registered over since the last message is FencedError, and writes nothing', async () => {
      const store = await fresh();
      const old = await registerProducer(store, 'orders');
      expect((await processMessage(store, old.stamp('a'), { n: 1 }, count)).status).toBe('applied');
      await registerProducer(store, 'orders'); // epoch 2: the remembered epoch record is stale
      const err = await processMessage(store, old.stamp('a'), { n: 10 }, count).catch((e: unknown) => e);
      expect(FencedError.is(err)).toBe(true);
      expect((err as FencedError).details).toMatchObject({ epoch: 1, currentEpoch: 2, applied: false });
      expect((await store.get('count'))?.value).toBe(1);
      expect((await store.get('list'))?.value).toEqual([1]);
    });

    it('a producer retired since the last message: its next stamp is FencedError, and writes nothing', async () => {
      const store = await fresh();
      const p = await registerProducer(store, 'orders');
      await processMessage(store, p.stamp('a'), { n: 1 }, count);
      await retireProducer(store, 'orders');
      expect(FencedError.is(await processMessage(store, p.stamp('a'), { n: 10 }, count).catch((e: unknown) => e))).toBe(true);
      expect((await store.get('count'))?.value).toBe(1);
      expect(await store.get('_eo/dedup/orders/a')).toBeNull();
    });

    it('a result changed by its caller after process() returned: a later redelivery still gets the result committed', async () => {
      const store = await fresh();
      const p = await registerProducer(store, 'orders');
      const s0 = p.stamp('a');
      const first = await processMessage(store, s0, { n: 1 }, count);
      expect(first).toMatchObject({ status: 'applied', result: { total: 1, items: [1] } });
      (first.result as { items: number[] }).items.push(99);
      (first.result as { total: number }).total = -1;
      await processMessage(store, p.stamp('a'), { n: 2 }, count); // writes the record again, the first result kept in it
      const again = await processMessage(store, s0, { n: 1 }, count);
      expect(again).toEqual({ status: 'duplicate', result: { total: 1, items: [1] }, resultAvailable: true });
    });
  });
}

/** Two store instances over the same storage: what two processes have. */
const pairs: { name: string; open(): Promise<[Store, Store]> }[] = [
  { name: 'sqlite', open: async () => { const path = join(dir, `${uniqueName('pair')}.db`); return [new SqliteStore(path), new SqliteStore(path)]; } },
  { name: 'postgres', open: async () => { const prefix = pgPrefix(); return [await PostgresStore.fromUrl(PG_URL, { prefix }), await PostgresStore.fromUrl(PG_URL, { prefix })]; } },
  { name: 'redis', open: async () => { const url = `${REDIS_URL}?prefix=${redisPrefix()}`; return [await open(url), await open(url)]; } },
];

for (const pair of pairs) {
  describe(`exactly-once across two store instances (${pair.name})`, () => {
    it('messages applied by the other instance since this one last committed: duplicates told as such, the rest applied once, in order', async () => {
      const [a, b] = await pair.open();
      try {
        const p = await registerProducer(a, 'orders');
        const stamps = Array.from({ length: 12 }, () => p.stamp('a'));
        const told: string[] = [];
        // a applies 0; b applies 0 (duplicate), 1 and 2; then a (remembering the record after 0) is given 1, 2, 3…
        told.push((await processMessage(a, stamps[0]!, { n: 1 }, count)).status);
        for (const i of [0, 1, 2]) told.push((await processMessage(b, stamps[i]!, { n: 1 }, count)).status);
        for (let i = 1; i < 12; i++) {
          const instance = i % 4 === 3 ? b : a; // b takes some in between, so a's remembered record goes stale again
          told.push((await processMessage(instance, stamps[i]!, { n: 1 }, count)).status);
        }
        expect(told).toEqual([
          'applied', 'duplicate', 'applied', 'applied', // a: 0; b: 0, 1, 2
          'duplicate', 'duplicate', 'applied', // a: 1, 2 (b applied them), b: 3
          ...Array.from({ length: 8 }, () => 'applied'), // 4 … 11, a and b in turn
        ]);
        expect((await a.get('count'))?.value).toBe(12);
        expect((await b.get<number[]>('list'))?.value).toEqual(Array.from({ length: 12 }, () => 1));
        expect((await a.get<{ lastSequence: number }>('_eo/dedup/orders/a'))?.value.lastSequence).toBe(11);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    it('a new epoch registered through the other instance fences this one at once', async () => {
      const [a, b] = await pair.open();
      try {
        const old = await registerProducer(a, 'orders');
        await processMessage(a, old.stamp('a'), { n: 1 }, count);
        const current = await registerProducer(b, 'orders');
        const before = handlerRuns;
        expect(FencedError.is(await processMessage(a, old.stamp('a'), { n: 1 }, count).catch((e: unknown) => e))).toBe(true);
        expect(handlerRuns - before).toBeLessThanOrEqual(1); // at most the run on the remembered records, whose commit was refused
        expect((await processMessage(a, current.stamp('a'), { n: 5 }, count)).status).toBe('applied');
        expect((await b.get<number[]>('list'))?.value).toEqual([1, 5]);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  });
}
