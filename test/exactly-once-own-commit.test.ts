// A process() call whose commit's acknowledgement was lost is told the truth
// about its own commit — `applied`, at that commit's revision, with the result
// its handler returned — also when, before its retry reads the dedup record,
// other consumers applied so many later messages of the partition that the
// commit left the record's recent window: it is then found in the record's
// history (docs/exactly-once.md: "looked up in the record's history if later
// messages moved it on"). Only past the history kept is it a duplicate.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { processMessage, registerProducer, type Stamp, type Transaction } from '../src/exactly-once/index.js';
import type { Store } from '../src/core/index.js';
import { FaultStore } from '../src/testing/fault-store.js';
import { backends, dropPgStores } from './fixtures/exactly-once/stores.js';
import { tempDir } from './helpers.js';

afterAll(dropPgStores, 60_000);
const dir = tempDir('eo-own-commit');

const count = async (tx: Transaction, payload: { n: number }) => {
  const total = await tx.update<number>('count', (c) => (c ?? 0) + payload.n);
  await tx.update<number[]>('list', (l) => [...(l ?? []), payload.n]);
  return { total };
};

for (const backend of await backends(dir)) {
  describe(`exactly-once: a lost acknowledgement is resolved from the record's history (${backend.name})`, () => {
    let store: Store;
    afterAll(() => store?.close());

    for (const later of [1, 3, 9, 20]) {
      it(`${later} later message(s) applied by another consumer before the retry (window 4): applied at its own revision, once`, async () => {
        store = await backend.create();
        const faults = new FaultStore(store);
        const p = await registerProducer(store, 'orders');
        const s0 = p.stamp('a');
        const next: Stamp[] = Array.from({ length: later }, () => p.stamp('a'));
        let committedAt: number | undefined;
        faults.inject({
          kind: 'lost-ack', op: 'atomic',
          then: async (inner) => {
            committedAt = (await inner.get('_eo/dedup/orders/a'))?.revision;
            for (const [i, s] of next.entries()) await processMessage(inner, s, { n: 10 + i }, count, { window: 4 });
          },
        });
        const outcome = await processMessage(faults, s0, { n: 1 }, count, { window: 4 });
        expect(faults.injected.map((f) => f.kind)).toEqual(['lost-ack']);
        expect(committedAt).toBeGreaterThan(0);
        expect(outcome).toEqual({ status: 'applied', result: { total: 1 }, revision: committedAt });
        expect((await store.get('list'))?.value).toEqual([1, ...next.map((_, i) => 10 + i)]);
        await store.close();
      });
    }
  });
}
