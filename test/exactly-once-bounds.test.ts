// Exactly-once: what a late redelivery is told across epochs, how large cached
// results are kept from wedging a partition, and process() settling by its
// deadline / signal while a handler (or the store) hangs. On every atomic backend.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import {
  DEFAULT_DEDUP_BYTES, EPOCHS_KEPT, payloadHash, process, registerProducer, retireProducer, type DedupRecord, type Stamp, type Transaction,
} from '../src/exactly-once/index.js';
import type { Store } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { FaultStore } from '../src/testing/fault-store.js';
import { backends, dropPgStores } from './fixtures/exactly-once/stores.js';
import { tempDir, uniqueName } from './helpers.js';

afterAll(dropPgStores, 60_000);

const dir = tempDir('eo-bounds');

/** Counts the message and appends it to a list; returns the new count. */
const count = async (tx: Transaction, payload: { n: number }) => {
  const total = await tx.update<number>('count', (c) => (c ?? 0) + payload.n);
  await tx.update<number[]>('list', (l) => [...(l ?? []), payload.n]);
  return { total };
};

/** The error a call rejects with (or 'resolved'), for assertions on code and details. */
const failure = (p: Promise<unknown>) => p.then(() => 'resolved' as const, (e) => e);
const codeOf = (p: Promise<unknown>) => p.then(() => 'resolved', (e) => e.code as string);
const dedupOf = async (store: Store, partition = 'a') => (await store.get<DedupRecord>(`_eo/dedup/orders/${partition}`))?.value;
const bytesOf = (value: unknown) => Buffer.byteLength(JSON.stringify(value), 'utf8');

for (const backend of await backends(dir)) {
  describe(`exactly-once: a late redelivery is told the truth across epochs (${backend.name})`, () => {
    let store: Store;
    const fresh = async () => (store = await backend.create());
    afterAll(() => store?.close());

    it('an applied stamp, out of the window, after its producer was re-registered and the new epoch applied more: duplicate, not fenced', async () => {
      await fresh();
      const old = await registerProducer(store, 'orders');
      const sent = Array.from({ length: 6 }, () => old.stamp('a'));
      for (const [i, s] of sent.entries()) await process(store, s, { n: i }, count, { window: 2 });
      const renewed = await registerProducer(store, 'orders');
      expect(renewed.next('a')).toBe(6);
      for (let i = 0; i < 3; i++) await process(store, renewed.stamp('a'), { n: 10 + i }, count, { window: 2 });
      const before = await store.get('count');
      // Sequences 0..5 were applied under epoch 1: each redelivery is a duplicate (its result no longer kept), whichever epoch is current.
      for (const [i, s] of sent.entries()) {
        expect(await process(store, s, { n: i }, count, { window: 2 })).toEqual({ status: 'duplicate', result: undefined, resultAvailable: false });
      }
      // A stamp of epoch 1 that was never applied (sequence 6 went to epoch 2) is fenced, and says so.
      const zombie = await failure(process(store, { ...sent[0] as Stamp, sequence: 6 }, { n: 99 }, count));
      expect(zombie.code).toBe('ERR_FENCED');
      expect(zombie.details).toMatchObject({ epoch: 1, sequence: 6, currentEpoch: 2, applied: false });
      expect((await store.get('count'))?.revision).toBe(before?.revision);
      expect((await store.get('list'))?.value).toEqual([0, 1, 2, 3, 4, 5, 10, 11, 12]);
      expect((await dedupOf(store))?.past).toEqual([[1, 5]]);
    });

    it('after a re-registration that has applied nothing yet: the last epoch\'s stamps are duplicates up to where it stopped, fenced (never applied) after', async () => {
      await fresh();
      const first = await registerProducer(store, 'orders');
      const sent = Array.from({ length: 4 }, () => first.stamp('a'));
      for (const [i, s] of sent.slice(0, 3).entries()) await process(store, s, { n: i }, count, { window: 1 });
      await registerProducer(store, 'orders');
      expect(await process(store, sent[0] as Stamp, { n: 0 }, count, { window: 1 })).toEqual({ status: 'duplicate', result: undefined, resultAvailable: false });
      expect(await process(store, sent[2] as Stamp, { n: 2 }, count, { window: 1 })).toEqual({ status: 'duplicate', result: { total: 3 }, resultAvailable: true });
      const never = await failure(process(store, sent[3] as Stamp, { n: 3 }, count));
      expect(never.code).toBe('ERR_FENCED');
      expect(never.details).toMatchObject({ epoch: 1, sequence: 3, currentEpoch: 2, applied: false });
      // The same sequence with another payload, applied under that epoch: not a duplicate.
      expect(await codeOf(process(store, sent[2] as Stamp, { n: 7 }, count, { window: 1 }))).toBe('ERR_SEQUENCE_REUSED');
      expect((await store.get('list'))?.value).toEqual([0, 1, 2]);
    });

    it('an epoch that applied nothing on the partition: its stamps are fenced with applied: false, also below the last sequence', async () => {
      await fresh();
      const crashed = await registerProducer(store, 'orders');
      const lost = [crashed.stamp('a'), crashed.stamp('a')];
      const next = await registerProducer(store, 'orders');
      for (let i = 0; i < 4; i++) await process(store, next.stamp('a'), { n: i }, count, { window: 1 });
      for (const s of lost) {
        const err = await failure(process(store, s, { n: 50 }, count));
        expect(err.code).toBe('ERR_FENCED');
        expect(err.details).toMatchObject({ epoch: 1, currentEpoch: 2, applied: false });
      }
      // The record created under epoch 2 says so with an empty `past`.
      expect(await dedupOf(store)).toMatchObject({ epoch: 2, lastSequence: 3, past: [] });
      expect((await store.get('list'))?.value).toEqual([0, 1, 2, 3]);
    });

    it(`more than ${EPOCHS_KEPT} epochs back: still a duplicate where the record can tell, "unknown" (fenced) where it cannot — never "never applied" for an applied stamp`, async () => {
      await fresh();
      const stamps: Stamp[] = [];
      for (let e = 1; e <= EPOCHS_KEPT + 2; e++) {
        const p = await registerProducer(store, 'orders');
        const s = p.stamp('a');
        stamps.push(s);
        await process(store, s, { n: e }, count, { window: 1 });
      }
      const dedup = await dedupOf(store);
      expect(dedup?.past).toHaveLength(EPOCHS_KEPT);
      expect(dedup?.cut).toEqual([1, 0]);
      // Epoch 1 (sequence 0) is beyond what is kept: applied, but the record can no longer tell — it says so.
      const forgotten = await failure(process(store, stamps[0] as Stamp, { n: 1 }, count));
      expect(forgotten.code).toBe('ERR_FENCED');
      expect(forgotten.details).toMatchObject({ epoch: 1, sequence: 0, applied: 'unknown' });
      // Above everything epoch 1 could have applied: certainly never applied.
      expect((await failure(process(store, { ...stamps[0] as Stamp, sequence: 5 }, { n: 1 }, count))).details).toMatchObject({ applied: false });
      // Every kept epoch: duplicate.
      for (const s of stamps.slice(1, -1)) {
        expect(await process(store, s, { n: s.epoch }, count, { window: 1 })).toMatchObject({ status: 'duplicate' });
      }
      expect((await store.get('count'))?.value).toBe(((EPOCHS_KEPT + 2) * (EPOCHS_KEPT + 3)) / 2);
      expect(bytesOf(await dedupOf(store))).toBeLessThan(700);
    });

    it('after retireProducer and a new registration, a stamp from before the retirement is fenced with applied: "unknown" (its record was deleted)', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      const s0 = p.stamp('a');
      await process(store, s0, { n: 1 }, count);
      const unsent = p.stamp('a');
      await retireProducer(store, 'orders');
      const again = await registerProducer(store, 'orders');
      await process(store, again.stamp('a'), { n: 2 }, count);
      for (const s of [s0, unsent]) {
        const err = await failure(process(store, s, { n: 1 }, count));
        expect(err.code).toBe('ERR_FENCED');
        expect(err.details).toMatchObject({ epoch: 1, currentEpoch: 3, applied: 'unknown' });
      }
      expect((await store.get('_eo/epoch/orders'))?.value).toEqual({ epoch: 3, retiredEpoch: 2 });
    });

    it('a dedup record written before epochs were tracked (several epochs, no `past`): "unknown" for the older epochs, exact from then on', async () => {
      await fresh();
      await store.put('_eo/epoch/orders', { epoch: 4 });
      const hash = payloadHash({ n: 9 });
      await store.put('_eo/dedup/orders/a', { epoch: 3, lastSequence: 9, recent: [{ epoch: 3, sequence: 9, payloadHash: hash, result: { total: 9 } }] });
      const stamp = (epoch: number, sequence: number): Stamp => ({ producerId: 'orders', epoch, partition: 'a', sequence });
      expect((await failure(process(store, stamp(2, 5), { n: 5 }, count))).details).toMatchObject({ applied: 'unknown' });
      expect((await failure(process(store, stamp(2, 10), { n: 5 }, count))).details).toMatchObject({ applied: false });
      expect(await process(store, stamp(3, 9), { n: 9 }, count)).toEqual({ status: 'duplicate', result: { total: 9 }, resultAvailable: true });
      expect(await process(store, stamp(3, 8), { n: 8 }, count)).toEqual({ status: 'duplicate', result: undefined, resultAvailable: false });
      expect((await process(store, stamp(4, 10), { n: 10 }, count)).status).toBe('applied');
      expect(await dedupOf(store)).toMatchObject({ epoch: 4, lastSequence: 10, past: [[3, 9]], cut: [2, 9] });
      expect((await failure(process(store, stamp(2, 5), { n: 5 }, count))).details).toMatchObject({ applied: 'unknown' });
      expect((await failure(process(store, stamp(3, 10), { n: 5 }, count))).details).toMatchObject({ applied: false });
      expect(await process(store, stamp(3, 4), { n: 4 }, count)).toMatchObject({ status: 'duplicate' });
    });

    it('a producer that never re-registered writes no epoch history (the common case costs nothing)', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      for (let i = 0; i < 3; i++) await process(store, p.stamp('a'), { n: i }, count);
      expect(Object.keys((await dedupOf(store)) ?? {}).sort()).toEqual(['epoch', 'lastSequence', 'recent']);
    });
  });

  describe(`exactly-once: cached results never wedge a partition (${backend.name})`, () => {
    let store: Store;
    const fresh = async () => (store = await backend.create());
    afterAll(() => store?.close());
    const big = (n: number, bytes = 200_000) => async (tx: Transaction) => {
      tx.put(`out/${n}`, n);
      return { n, blob: 'x'.repeat(bytes) };
    };

    it('twelve results of 200 KB, each accepted: every message applies; the record stays within its budget; older results are dropped, not their dedup', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      const stamps = Array.from({ length: 12 }, () => p.stamp('a'));
      for (const [i, s] of stamps.entries()) {
        expect(await process(store, s, { n: i }, big(i))).toMatchObject({ status: 'applied', result: { n: i } });
      }
      const dedup = await dedupOf(store);
      expect(bytesOf(dedup)).toBeLessThanOrEqual(DEFAULT_DEDUP_BYTES);
      expect(dedup?.recent.map((r) => r.sequence)).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
      expect(dedup?.recent.map((r) => 'result' in r)).toEqual([false, false, false, false, false, false, false, true]);
      // The newest is answered with its result; a dropped one is still a duplicate (payload still compared), without it.
      expect(await process(store, stamps[11] as Stamp, { n: 11 }, big(11))).toMatchObject({ status: 'duplicate', resultAvailable: true, result: { n: 11 } });
      expect(await process(store, stamps[9] as Stamp, { n: 9 }, big(9))).toEqual({ status: 'duplicate', result: undefined, resultAvailable: false });
      expect(await codeOf(process(store, stamps[9] as Stamp, { n: 1 }, big(9)))).toBe('ERR_SEQUENCE_REUSED');
      // And the partition goes on.
      expect((await process(store, p.stamp('a'), { n: 12 }, count)).status).toBe('applied');
      expect((await store.list({ prefix: 'out/' })).entries).toHaveLength(12);
    }, 60_000);

    it('a result that alone does not fit is refused with TooLargeError before anything is written; the partition stays usable', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      const [s0, s1, s2] = [p.stamp('a'), p.stamp('a'), p.stamp('a')] as [Stamp, Stamp, Stamp];
      await process(store, s0, { n: 0 }, count);
      const before = await store.get('_eo/dedup/orders/a');
      const err = await failure(process(store, s1, { n: 1 }, big(1, DEFAULT_DEDUP_BYTES)));
      expect(err.code).toBe('ERR_TOO_LARGE');
      expect(err.limit).toBe(DEFAULT_DEDUP_BYTES);
      expect(err.size).toBeGreaterThan(DEFAULT_DEDUP_BYTES);
      expect(await store.get('out/1')).toBeNull();
      expect((await store.get('_eo/dedup/orders/a'))?.revision).toBe(before?.revision);
      // The same message with a result that fits applies, and so does the next.
      expect((await process(store, s1, { n: 1 }, count)).status).toBe('applied');
      expect((await process(store, s2, { n: 2 }, count)).status).toBe('applied');
      expect((await store.get('list'))?.value).toEqual([0, 1, 2]);
    });
  });

  describe(`exactly-once: process() settles by its deadline and signal while the handler hangs (${backend.name})`, () => {
    let store: Store;
    const fresh = async () => (store = await backend.create());
    afterAll(() => store?.close());

    it('a handler that never returns: RetryExhaustedError (deadline), nothing written, and the partition goes on', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      const s0 = p.stamp('a');
      const err = await failure(process(store, s0, { n: 1 }, (tx) => {
        tx.put('hung', 1);
        return new Promise<never>(() => undefined);
      }, { deadlineMs: 300 }));
      expect(err.code).toBe('ERR_RETRY_EXHAUSTED');
      expect(err.reason).toBe('deadline');
      expect(await store.get('hung')).toBeNull();
      expect(await store.get('_eo/dedup/orders/a')).toBeNull();
      expect((await process(store, s0, { n: 1 }, count)).status).toBe('applied');
      expect((await process(store, p.stamp('a'), { n: 2 }, count)).status).toBe('applied');
      expect((await store.get('list'))?.value).toEqual([1, 2]);
    }, 10_000);

    it('aborted while the handler hangs: RetryExhaustedError (aborted); the handler, returning later, commits nothing and is told to stop', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      const s0 = p.stamp('a');
      const controller = new AbortController();
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let returned!: () => void;
      const handlerReturned = new Promise<void>((resolve) => (returned = resolve));
      let seen: { signalAborted?: boolean; lateWrite?: unknown } = {};
      const err = await failure(process(store, s0, { n: 1 }, async (tx) => {
        tx.put('staged', 1);
        controller.abort(new Error('shutting down'));
        await gate;
        seen = { signalAborted: tx.signal.aborted };
        try {
          tx.put('late', 2);
        } catch (e) {
          seen.lateWrite = (e as { code?: string }).code;
        }
        returned();
        return { total: 1 };
      }, { signal: controller.signal }));
      expect(err.code).toBe('ERR_RETRY_EXHAUSTED');
      expect(err.reason).toBe('aborted');
      release();
      await handlerReturned;
      await new Promise((r) => setTimeout(r, 50)); // anything the late return could set off has had its turn
      expect(seen).toEqual({ signalAborted: true, lateWrite: 'ERR_ABORTED' });
      expect(await store.get('staged')).toBeNull();
      expect(await store.get('late')).toBeNull();
      expect(await store.get('_eo/dedup/orders/a')).toBeNull();
      expect((await process(store, s0, { n: 1 }, count)).status).toBe('applied');
      expect((await process(store, p.stamp('a'), { n: 2 }, count)).status).toBe('applied');
    }, 10_000);

    it('a signal aborted before the call: RetryExhaustedError (aborted) and the handler is never run', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      let ran = false;
      const err = await failure(process(store, p.stamp('a'), { n: 1 }, () => { ran = true; }, { signal: AbortSignal.abort() }));
      expect(err.code).toBe('ERR_RETRY_EXHAUSTED');
      expect(err.reason).toBe('aborted');
      expect(ran).toBe(false);
    });

    it('a store read that never answers: RetryExhaustedError (deadline); a commit that never answers: OutcomeUnknownError — and the message applies once later', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      const s0 = p.stamp('a');
      const faults = new FaultStore(store);
      faults.inject({ kind: 'stall', op: 'getRecord' });
      const read = await failure(process(faults, s0, { n: 1 }, count, { deadlineMs: 300 }));
      expect(read.code).toBe('ERR_RETRY_EXHAUSTED');
      expect(read.reason).toBe('deadline');
      faults.inject({ kind: 'stall', op: 'atomic' });
      // On a loaded machine the deadline can pass before the commit is sent (a RetryExhaustedError, nothing
      // written, the stall still pending): the verdict counts only a run whose commit did reach the stall.
      let commit: Awaited<ReturnType<typeof failure>> | undefined;
      for (let deadlineMs = 300; commit === undefined; deadlineMs *= 4) {
        const err = await failure(process(faults, s0, { n: 1 }, count, { deadlineMs }));
        if (faults.injected.some((f) => f.op === 'atomic')) commit = err;
        else expect(err.code, `no commit was sent within ${deadlineMs} ms`).toBe('ERR_RETRY_EXHAUSTED');
        expect(deadlineMs, 'the commit was never sent').toBeLessThan(60_000);
      }
      expect(commit.code).toBe('ERR_OUTCOME_UNKNOWN');
      expect(commit.cause?.reason).toBe('deadline');
      expect((await process(store, s0, { n: 1 }, count)).status).toBe('applied');
      expect(await process(store, s0, { n: 1 }, count)).toMatchObject({ status: 'duplicate' });
      expect((await store.get('list'))?.value).toEqual([1]);
    }, 180_000);
  });
}

describe('exactly-once on a store whose value limit is below the dedup budget', () => {
  const stores = [
    { name: 'memory', create: () => new MemoryStore({ maxValueBytes: 64 * 1024 }) },
    { name: 'sqlite', create: () => new SqliteStore(join(dir, `${uniqueName('small')}.db`), { maxValueBytes: 64 * 1024 }) },
  ];
  for (const backend of stores) {
    it(`${backend.name}: results of 12 KB never wedge a 64 KiB store (the limit is learned from the refused record); one over the limit alone is refused, nothing written`, async () => {
      const store = backend.create();
      try {
        const p = await registerProducer(store, 'orders');
        for (let i = 0; i < 12; i++) {
          expect(await process(store, p.stamp('a'), { n: i }, async (tx) => {
            tx.put(`out/${i}`, i);
            return { blob: 'x'.repeat(12_000) };
          })).toMatchObject({ status: 'applied' });
        }
        expect(bytesOf(await dedupOf(store))).toBeLessThanOrEqual(64 * 1024);
        const s = p.stamp('a');
        expect(await codeOf(process(store, s, { n: 12 }, (tx) => { tx.put('out/12', 12); return 'y'.repeat(70_000); }))).toBe('ERR_TOO_LARGE');
        expect(await store.get('out/12')).toBeNull();
        expect((await process(store, s, { n: 12 }, (tx) => { tx.put('out/12', 12); return 'small'; })).status).toBe('applied');
        expect((await store.list({ prefix: 'out/' })).entries).toHaveLength(13);
      } finally {
        await store.close();
      }
    }, 30_000);
  }
});
