// A process() call one of whose commits may have landed unacknowledged — a
// lost acknowledgement, a commit cut from its client that still runs, or a
// commit cut by close() (ClosedError{ambiguous}) — never ends with an error
// that reads as "not applied": when it fails afterwards (its handler throws on
// the retry, the store is closed) it answers OutcomeUnknownError, with the
// error as cause, as update() does. A redelivery then tells: duplicate if it
// was applied.
import { afterAll, describe, expect, it } from 'vitest';
import { processMessage, registerProducer, type Transaction } from '../src/exactly-once/index.js';
import { ClosedError, OutcomeUnknownError, type Store } from '../src/core/index.js';
import { FaultStore } from '../src/testing/fault-store.js';
import { backends, dropPgStores } from './fixtures/exactly-once/stores.js';
import { tempDir } from './helpers.js';

afterAll(dropPgStores, 60_000);
const dir = tempDir('eo-ambiguous-error');

const failure = (p: Promise<unknown>) => p.then((v) => ({ resolved: v }) as never, (e: unknown) => e as Error & { code: string; cause?: unknown });

for (const backend of await backends(dir)) {
  describe(`exactly-once: an error after a maybe-committed attempt is an unknown outcome (${backend.name})`, () => {
    const stores: Store[] = [];
    afterAll(async () => {
      for (const s of stores) await s.close().catch(() => undefined);
    });
    const fresh = async () => {
      const s = await backend.create();
      stores.push(s);
      return s;
    };

    it('attempt 1 is cut but lands later, the handler throws on the retry: OutcomeUnknownError (the commit did land)', async () => {
      const store = await fresh();
      const faults = new FaultStore(store);
      const p = await registerProducer(store, 'orders');
      const stamp = p.stamp('eu');
      faults.inject({ kind: 'late-landing', op: 'atomic', landsAt: 'landHeld' });
      let runs = 0;
      const handlerError = new Error('price service unavailable');
      const charge = async (tx: Transaction, payload: { amount: number }) => {
        if (++runs === 2) throw handlerError;
        await tx.update<number>('balance/ada', (b) => (b ?? 0) + payload.amount);
        return 'charged';
      };
      const err = await failure(processMessage(faults, stamp, { amount: 5 }, charge));
      expect(runs).toBe(2);
      expect(err.code).toBe(OutcomeUnknownError.code);
      expect(err.cause).toBe(handlerError);
      await faults.landHeld();
      // It was applied: the balance moved once, and a redelivery is a duplicate.
      expect((await store.get('balance/ada'))?.value).toBe(5);
      const again = await processMessage(store, stamp, { amount: 5 }, charge);
      expect(again.status).toBe('duplicate');
      expect((await store.get('balance/ada'))?.value).toBe(5);
    });

    it('attempt 1 is cut and never lands, the handler throws on the retry: still OutcomeUnknownError (the caller cannot tell)', async () => {
      const store = await fresh();
      const faults = new FaultStore(store);
      const p = await registerProducer(store, 'orders');
      const stamp = p.stamp('eu');
      faults.inject({ kind: 'lost-request', op: 'atomic' });
      let runs = 0;
      const err = await failure(processMessage(faults, stamp, 1, async (tx) => {
        if (++runs === 2) throw new Error('boom');
        await tx.update<number>('n', (n) => (n ?? 0) + 1);
        return 'ok';
      }));
      expect(err.code).toBe(OutcomeUnknownError.code);
      expect((err.cause as Error).message).toBe('boom');
    });

    it('a commit cut by close() (ClosedError ambiguous) is maybe-committed: OutcomeUnknownError, not ClosedError', async () => {
      const store = await fresh();
      const faults = new FaultStore(store);
      const p = await registerProducer(store, 'orders');
      const stamp = p.stamp('eu');
      faults.inject({ kind: 'lost-ack', op: 'atomic', error: () => new ClosedError(store.backend, { ambiguous: true }) });
      const err = await failure(processMessage(faults, stamp, 1, async (tx) => {
        await tx.update<number>('n', (n) => (n ?? 0) + 1);
        return 'ok';
      }));
      expect(err.code).toBe(OutcomeUnknownError.code);
      expect(ClosedError.is(err.cause)).toBe(true);
      expect((await store.get('n'))?.value).toBe(1);
    });

    it('without a maybe-committed attempt a handler error stays the handler error (nothing applied)', async () => {
      const store = await fresh();
      const p = await registerProducer(store, 'orders');
      const handlerError = new Error('nope');
      const err = await failure(processMessage(store, p.stamp('eu'), 1, async () => {
        throw handlerError;
      }));
      expect(err).toBe(handlerError);
    });
  });
}
