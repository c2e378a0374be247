import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  FencedError, OutOfOrderError, SequenceReusedError, UnsupportedError,
  consumer, payloadHash, process, processMessage, registerProducer, retireProducer, type Stamp, type Transaction,
} from '../src/exactly-once/index.js';
import type { Store } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { NatsStore } from '../src/nats/index.js';
import { canary } from '../src/testing/canary.js';
import { FaultStore } from '../src/testing/fault-store.js';
import { backends, dropPgStores, NATS_URL } from './fixtures/exactly-once/stores.js';
import { tempDir } from './helpers.js';

afterAll(dropPgStores, 60_000);

const dir = tempDir('eo');

/** The handler of most tests: counts the message and appends it to a list; returns the new count. */
const count = async (tx: Transaction, payload: { n: number }) => {
  const total = await tx.update<number>('count', (c) => (c ?? 0) + payload.n);
  await tx.update<number[]>('list', (l) => [...(l ?? []), payload.n]);
  return { total };
};

const codeOf = (p: Promise<unknown>) => p.then(() => 'resolved', (e) => e.code as string);

for (const backend of await backends(dir)) {
  describe(`exactly-once producer state (${backend.name})`, () => {
    let store: Store;
    const fresh = async () => (store = await backend.create());
    afterAll(() => store?.close());

    it('applies a stamp once; a redelivery is a duplicate with the cached result and writes nothing', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      const s0 = p.stamp('p0');
      expect(s0).toEqual({ producerId: 'orders', epoch: 1, partition: 'p0', sequence: 0 });
      expect(await processMessage(store, s0, { n: 5 }, count)).toMatchObject({ status: 'applied', result: { total: 5 } });
      const before = (await store.get('count'))?.revision;
      expect(await processMessage(store, s0, { n: 5 }, count)).toEqual({ status: 'duplicate', result: { total: 5 }, resultAvailable: true });
      expect((await store.get('count'))?.revision).toBe(before);
      expect((await store.get('list'))?.value).toEqual([5]);
      const dedup = (await store.get<{ epoch: number; lastSequence: number; recent: unknown[] }>('_eo/dedup/orders/p0'))?.value;
      expect(dedup).toEqual({ epoch: 1, lastSequence: 0, recent: [{ epoch: 1, sequence: 0, payloadHash: payloadHash({ n: 5 }), result: { total: 5 }, commit: expect.any(String) }] });
    });

    it('a gap is OutOfOrderError and writes nothing; once the gap is filled the later stamp applies', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      const [s0, s1, s2] = [p.stamp(0), p.stamp(0), p.stamp(0)] as [Stamp, Stamp, Stamp];
      await processMessage(store, s0, { n: 1 }, count);
      const err = await processMessage(store, s2, { n: 3 }, count).catch((e) => e);
      expect(OutOfOrderError.is(err)).toBe(true);
      expect(err.details).toMatchObject({ producerId: 'orders', partition: '0', sequence: 2, expectedSequence: 1 });
      expect((await store.get('list'))?.value).toEqual([1]);
      expect((await processMessage(store, s1, { n: 2 }, count)).status).toBe('applied');
      expect((await processMessage(store, s2, { n: 3 }, count)).status).toBe('applied');
      expect((await store.get('list'))?.value).toEqual([1, 2, 3]);
    });

    it('an epoch bump resets the sequence to the last committed one: the new instance re-issues what the fenced one had in flight', async () => {
      await fresh();
      const old = await registerProducer(store, 'orders');
      const sent = [old.stamp('a'), old.stamp('a'), old.stamp('a')] as [Stamp, Stamp, Stamp];
      await processMessage(store, sent[0], { n: 1 }, count);
      await processMessage(store, sent[1], { n: 2 }, count);
      const renewed = await registerProducer(store, 'orders');
      expect(renewed.epoch).toBe(2);
      expect(renewed.next('a')).toBe(2);
      expect(renewed.next('untouched')).toBe(0);
      expect(await codeOf(processMessage(store, sent[2], { n: 3 }, count))).toBe('ERR_FENCED');
      const again = renewed.stamp('a');
      expect(again).toEqual({ producerId: 'orders', epoch: 2, partition: 'a', sequence: 2 });
      expect((await processMessage(store, again, { n: 3 }, count)).status).toBe('applied');
      expect((await store.get('list'))?.value).toEqual([1, 2, 3]);
      expect(await renewed.committed('a')).toBe(2);
    });

    it('an older epoch is refused with FencedError, also before the new instance sent anything, and writes nothing', async () => {
      await fresh();
      const zombie = await registerProducer(store, 'orders');
      await processMessage(store, zombie.stamp('a'), { n: 1 }, count);
      await registerProducer(store, 'orders');
      const err = await processMessage(store, zombie.stamp('a'), { n: 2 }, count).catch((e) => e);
      expect(FencedError.is(err)).toBe(true);
      expect(err.details).toMatchObject({ producerId: 'orders', epoch: 1, currentEpoch: 2, sequence: 1 });
      expect(await codeOf(processMessage(store, zombie.stamp('b'), { n: 2 }, count))).toBe('ERR_FENCED');
      expect((await store.get('list'))?.value).toEqual([1]);
      // A stamp of an epoch that was never registered is a caller error, not a fence.
      expect(await codeOf(processMessage(store, { producerId: 'orders', epoch: 9, partition: 'a', sequence: 1 }, { n: 1 }, count))).toBe('ERR_INVALID_ARGUMENT');
    });

    it('a redelivery of an applied stamp is still a duplicate after its producer was replaced', async () => {
      await fresh();
      const old = await registerProducer(store, 'orders');
      const s0 = old.stamp('a');
      await processMessage(store, s0, { n: 4 }, count);
      await registerProducer(store, 'orders');
      expect(await processMessage(store, s0, { n: 4 }, count)).toMatchObject({ status: 'duplicate', result: { total: 4 } });
    });

    it('the same sequence with another payload is SequenceReusedError and writes nothing', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      const s0 = p.stamp('a');
      await processMessage(store, s0, { n: 1 }, count);
      const err = await processMessage(store, s0, { n: 2 }, count).catch((e) => e);
      expect(SequenceReusedError.is(err)).toBe(true);
      expect((await store.get('count'))?.value).toBe(1);
    });

    it('a duplicate older than the recent window is still a duplicate, without its result; dedup state stays bounded', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      const stamps = Array.from({ length: 6 }, () => p.stamp('a'));
      for (const [i, s] of stamps.entries()) await processMessage(store, s, { n: i }, count, { window: 2 });
      expect(await processMessage(store, stamps[0] as Stamp, { n: 0 }, count, { window: 2 })).toEqual({ status: 'duplicate', result: undefined, resultAvailable: false });
      expect(await processMessage(store, stamps[5] as Stamp, { n: 5 }, count, { window: 2 })).toMatchObject({ status: 'duplicate', resultAvailable: true });
      const dedup = (await store.get<{ recent: { sequence: number }[] }>('_eo/dedup/orders/a'))?.value;
      expect(dedup?.recent.map((r) => r.sequence)).toEqual([4, 5]);
    });

    it('staged writes are invisible until the commit, and visible to the handler itself', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      await store.put('gone', 'here');
      const seenOutside: unknown[] = [];
      const outcome = await processMessage(store, p.stamp('a'), { n: 1 }, async (tx) => {
        tx.put('staged', { v: 1 });
        tx.delete('gone');
        seenOutside.push(await store.get('staged'), (await store.get('gone'))?.value, (await store.get('_eo/dedup/orders/a')) ?? null);
        return [await tx.get('staged'), (await tx.get('gone')) ?? null];
      });
      expect(seenOutside).toEqual([null, 'here', null]);
      expect(outcome).toMatchObject({ status: 'applied', result: [{ v: 1 }, null] });
      expect((await store.get('staged'))?.value).toEqual({ v: 1 });
      expect(await store.get('gone')).toBeNull();
    });

    it('a lost acknowledgement of the commit: the caller is told applied (at the commit\'s revision), not duplicate, and the effect is there once', async () => {
      await fresh();
      const faults = new FaultStore(store);
      const p = await registerProducer(store, 'orders');
      const s0 = p.stamp('a');
      faults.inject({ kind: 'lost-ack', op: 'atomic' });
      const outcome = await processMessage(faults, s0, { n: 4 }, count);
      expect(faults.injected.map((f) => f.kind)).toEqual(['lost-ack']);
      const dedup = await store.get('_eo/dedup/orders/a');
      expect(outcome).toEqual({ status: 'applied', result: { total: 4 }, revision: dedup?.revision });
      expect((await store.get('list'))?.value).toEqual([4]);
      // Another consumer's redelivery of the same message is the duplicate.
      expect(await processMessage(store, s0, { n: 4 }, count)).toMatchObject({ status: 'duplicate', result: { total: 4 } });
    });

    it('a lost acknowledgement, then the next message applied by another consumer before the retry: still applied, at its own revision from history', async () => {
      await fresh();
      const faults = new FaultStore(store);
      const p = await registerProducer(store, 'orders');
      const [s0, s1] = [p.stamp('a'), p.stamp('a')];
      let committedAt: number | undefined;
      faults.inject({
        kind: 'lost-ack', op: 'atomic',
        then: async (inner) => {
          committedAt = (await inner.get('_eo/dedup/orders/a'))?.revision;
          await processMessage(inner, s1, { n: 2 }, count);
        },
      });
      const outcome = await processMessage(faults, s0, { n: 1 }, count);
      expect(committedAt).toBeGreaterThan(0);
      expect(outcome).toEqual({ status: 'applied', result: { total: 1 }, revision: committedAt });
      expect((await store.get('list'))?.value).toEqual([1, 2]);
    });

    it('a request lost before it reached the store (ambiguous): the retry applies it, once', async () => {
      await fresh();
      const faults = new FaultStore(store);
      const p = await registerProducer(store, 'orders');
      faults.inject({ kind: 'lost-request', op: 'atomic' });
      const outcome = await processMessage(faults, p.stamp('a'), { n: 3 }, count);
      expect(faults.injected.map((f) => f.kind)).toEqual(['lost-request']);
      expect(outcome).toMatchObject({ status: 'applied', result: { total: 3 } });
      expect((await store.get('list'))?.value).toEqual([3]);
    });

    it('a handler that throws leaves nothing: no effect, no dedup record; the same stamp applies later', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      const s0 = p.stamp('a');
      const boom = new Error('handler failed');
      const err = await processMessage(store, s0, { n: 1 }, async (tx) => {
        tx.put('half', 1);
        throw boom;
      }).catch((e) => e);
      expect(err).toBe(boom);
      expect(await store.get('half')).toBeNull();
      expect(await store.get('_eo/dedup/orders/a')).toBeNull();
      expect((await processMessage(store, s0, { n: 1 }, count)).status).toBe('applied');
    });

    it('a read that changed before the commit re-runs the handler on the new value', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      await store.put('count', 10);
      let runs = 0;
      const outcome = await processMessage(store, p.stamp('a'), { n: 1 }, async (tx, payload) => {
        const current = (await tx.get<number>('count')) ?? 0;
        if (runs++ === 0) await store.put('count', 100); // someone else commits in between
        tx.put('count', current + payload.n);
        return current + payload.n;
      });
      expect(runs).toBe(2);
      expect(outcome).toMatchObject({ status: 'applied', result: 101 });
      expect((await store.get('count'))?.value).toBe(101);
    });

    it('a result JSON cannot carry, or a write into the exactly-once keys, fails before anything is written', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      const s0 = p.stamp('a');
      expect(await codeOf(processMessage(store, s0, {}, (tx) => { tx.put('x', 1); return { at: new Date() }; }))).toBe('ERR_INVALID_ARGUMENT');
      expect(await codeOf(processMessage(store, s0, {}, (tx) => tx.put('_eo/dedup/orders/a', { lastSequence: 99 })))).toBe('ERR_INVALID_ARGUMENT');
      expect(await store.get('x')).toBeNull();
      expect(await store.get('_eo/dedup/orders/a')).toBeNull();
    });

    it('retireProducer deletes the dedup records, fences every old stamp; registering again starts at sequence 0', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      const s0 = p.stamp('a');
      await processMessage(store, s0, { n: 1 }, count);
      await processMessage(store, p.stamp('b'), { n: 1 }, count);
      expect(await retireProducer(store, 'orders')).toEqual({ partitions: 2 });
      expect(await store.list({ prefix: '_eo/dedup/' })).toMatchObject({ entries: [] });
      expect(await codeOf(processMessage(store, s0, { n: 1 }, count))).toBe('ERR_FENCED');
      expect(await codeOf(processMessage(store, p.stamp('a'), { n: 1 }, count))).toBe('ERR_FENCED');
      const again = await registerProducer(store, 'orders');
      expect(again.epoch).toBe(3);
      expect(again.stamp('a').sequence).toBe(0);
    });

    it('producers and partitions are independent; ids with "/" cannot collide', async () => {
      await fresh();
      const a = await registerProducer(store, 'a/b');
      const b = await registerProducer(store, 'a');
      await processMessage(store, a.stamp('c'), { n: 1 }, count);
      await processMessage(store, b.stamp('b/c'), { n: 1 }, count);
      expect((await registerProducer(store, 'a/b')).next('c')).toBe(1);
      expect((await registerProducer(store, 'a')).next('b/c')).toBe(1);
      expect((await registerProducer(store, 'a')).next('c')).toBe(0);
    });

    it('two consumers racing on the same 40 messages apply each exactly once', async () => {
      await fresh();
      const p = await registerProducer(store, 'orders');
      expect(await raceVerdict(store, p)).toEqual({ applied: 40, count: 40, listed: 40 });
    });
  });
}

/** Two consumers race on 40 messages; what was applied, counted and listed. */
async function raceVerdict(store: Store, p: Awaited<ReturnType<typeof registerProducer>>) {
  const messages = Array.from({ length: 40 }, (_, i) => ({ stamp: p.stamp(i % 2), payload: { n: 1 } }));
  const applied = await race(store, messages);
  return { applied, count: (await store.get('count'))?.value, listed: ((await store.get<number[]>('list'))?.value ?? []).length };
}

/** Two consumers process every message, each in order; out-of-order attempts wait and retry. Returns how many applied. */
async function race(store: Store, messages: { stamp: Stamp; payload: { n: number } }[]): Promise<number> {
  let applied = 0;
  const one = consumer(store);
  const run = async () => {
    for (const m of messages) {
      for (;;) {
        try {
          if ((await one.process(m.stamp, m.payload, count)).status === 'applied') applied++;
          break;
        } catch (err) {
          if (!OutOfOrderError.is(err)) throw err;
          await new Promise((r) => setTimeout(r, 1));
        }
      }
    }
  };
  await Promise.all([run(), run()]);
  return applied;
}

describe('exactly-once catches the broken canary store', () => {
  it('the canary (check, then write without a condition) applies a message twice under the same race', async () => {
    const store = canary(new MemoryStore());
    const verdict = await raceVerdict(store, await registerProducer(store, 'orders'));
    await store.close();
    expect(verdict.applied).toBeGreaterThan(40);
    expect(verdict).not.toEqual({ applied: 40, count: 40, listed: 40 });
  });
});

describe('processMessage(), the name that does not shadow Node\'s global process', () => {
  it('is what the deprecated export `process` still names, and what consumer().process() runs', async () => {
    expect(process).toBe(processMessage);
    const store = new MemoryStore();
    const p = await registerProducer(store, 'alias');
    const stamp = p.stamp('a');
    expect((await process(store, stamp, { n: 2 }, count)).status).toBe('applied');
    expect((await consumer(store).process(stamp, { n: 2 }, count)).status).toBe('duplicate');
    await store.close();
  });
});

describe('exactly-once on a store without atomic() (NATS on a 2.9 server)', () => {
  it('every entry point throws UnsupportedError up front and writes nothing', async () => {
    const bucket = `rk_eo_${randomBytes(4).toString('hex')}`;
    const store = await NatsStore.fromUrl(`${NATS_URL}?bucket=${bucket}`);
    try {
      expect(store.capabilities.atomic).toBe(false);
      const stamp = { producerId: 'orders', epoch: 1, partition: 'a', sequence: 0 };
      const errors = [
        await registerProducer(store, 'orders').catch((e) => e),
        await processMessage(store, stamp, { n: 1 }, count).catch((e) => e),
        await retireProducer(store, 'orders').catch((e) => e),
        (() => { try { consumer(store); } catch (e) { return e; } })(),
      ];
      for (const err of errors) {
        expect(UnsupportedError.is(err)).toBe(true);
        expect(err.backend).toBe('nats');
      }
      expect((await store.list()).entries).toEqual([]);
    } finally {
      await store.close();
      const nc = await connect({ servers: NATS_URL.replace(/^nats:\/\//, '') });
      await (await jetstreamManager(nc)).streams.delete(`KV_${bucket}`).catch(() => undefined);
      await nc.close();
    }
  });
});
