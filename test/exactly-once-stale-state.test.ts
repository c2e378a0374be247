// Producer state that moved since this process last processed a message of the
// partition — a new epoch, a retirement, another consumer (another process's store
// instance) applying later messages, the store dropped and created again under an
// open store object — must not change what process() tells its caller: each
// message is decided on the epoch and dedup records as they are now. a4a84fc decided
// a first attempt on the records this process remembered (the commit's checks
// guarding it) and got two of these wrong (review of that change): a handler's own
// error instead of `duplicate` or FencedError, for every redelivery; and, after the
// store was recreated, a message applied out of order with the old store's results.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { FencedError, OutOfOrderError, processMessage, registerProducer, retireProducer, type Transaction } from '../src/exactly-once/index.js';
import type { Store } from '../src/core/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { PostgresStore, dropPostgresStore } from '../src/postgres/index.js';
import pg from 'pg';
import { open } from '../src/open.js';
import { backends, dropPgStores, PG_URL, pgPrefix, REDIS_URL, redisPrefix } from './fixtures/exactly-once/stores.js';
import { tempDir, uniqueName } from './helpers.js';

afterAll(dropPgStores, 60_000);
const dir = tempDir('eo-stale-state');

let handlerRuns = 0;
const count = async (tx: Transaction, payload: { n: number }) => {
  handlerRuns++;
  const total = await tx.update<number>('count', (c) => (c ?? 0) + payload.n);
  await tx.update<number[]>('list', (l) => [...(l ?? []), payload.n]);
  return { total, items: [payload.n] };
};

for (const backend of await backends(dir)) {
  describe(`exactly-once after the producer state moved (${backend.name})`, () => {
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

    it('a handler that refuses what exists already is not run for a message the other instance applied, nor for a fenced one', async () => {
      const [a, b] = await pair.open();
      let runs = 0;
      const createOrder = async (tx: Transaction, payload: { id: number }) => {
        runs++;
        if (await tx.get(`order/${payload.id}`)) throw new Error(`order ${payload.id} exists already`);
        tx.put(`order/${payload.id}`, payload);
        return { created: payload.id };
      };
      try {
        const p = await registerProducer(a, 'orders');
        const [s0, s1] = [p.stamp('x'), p.stamp('x')];
        await processMessage(a, s0, { id: 0 }, createOrder);
        await processMessage(b, s1, { id: 1 }, createOrder);
        runs = 0;
        for (let i = 0; i < 3; i++) {
          expect(await processMessage(a, s1, { id: 1 }, createOrder)).toEqual({ status: 'duplicate', result: { created: 1 }, resultAvailable: true });
        }
        expect(await processMessage(a, s1, { id: 1 }, createOrder, { maxAttempts: 1 })).toMatchObject({ status: 'duplicate' });
        expect(runs).toBe(0);
        const zombie = p.stamp('x');
        const current = await registerProducer(b, 'orders');
        await processMessage(b, current.stamp('x'), { id: 2 }, createOrder);
        runs = 0;
        expect(FencedError.is(await processMessage(a, zombie, { id: 2 }, createOrder).catch((e: unknown) => e))).toBe(true);
        expect(runs).toBe(0);
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

describe('exactly-once on a PostgreSQL store dropped and created again under an open store object', () => {
  it('revisions start over: the open object still answers OutOfOrderError for a gap, and applies the next message once', async () => {
    const prefix = pgPrefix();
    const h = async (tx: Transaction, payload: { n: number }) => {
      await tx.update<number>('sum', (sum) => (sum ?? 0) + payload.n);
      return { n: payload.n };
    };
    const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
    const a = await PostgresStore.fromUrl(PG_URL, { prefix });
    let b: Store | undefined;
    try {
      const p = await registerProducer(a, 'orders');
      for (let i = 0; i < 3; i++) await processMessage(a, p.stamp('x'), { n: 100 + i }, h);
      const dedupBefore = (await a.getRecord('_eo/dedup/orders/x'))!.revision;
      await dropPostgresStore(pool, { prefix });
      b = await PostgresStore.fromUrl(PG_URL, { prefix });
      const q = await registerProducer(b, 'orders');
      // Bring the new store's revisions up to where the old dedup record's was.
      for (let filler = 0; (await b.put(`filler/${filler}`, 1)).revision < dedupBefore - 1; filler++);
      await processMessage(b, q.stamp('x'), { n: 1 }, h);
      const gap = await processMessage(a, { producerId: 'orders', epoch: q.epoch, partition: 'x', sequence: 3 }, { n: 3 }, h).catch((e: unknown) => e);
      expect(OutOfOrderError.is(gap)).toBe(true);
      expect(await processMessage(b, q.stamp('x'), { n: 1 }, h)).toMatchObject({ status: 'applied', result: { n: 1 } });
      expect((await b.get('sum'))?.value).toBe(2);
      expect((await b.get<{ recent: { sequence: number; result: unknown }[] }>('_eo/dedup/orders/x'))?.value.recent.map((r) => [r.sequence, r.result])).toEqual([[0, { n: 1 }], [1, { n: 1 }]]);
    } finally {
      await a.close();
      await b?.close();
      await pool.end();
    }
  });
});
