/**
 * The features built on a store — locks, checkpoints, exactly-once — refuse a caller's bad input with
 * InvalidArgumentError, never a plain TypeError: a null or missing store, options that are no object, a signal
 * that is no AbortSignal. The cases are the review's of 2026-12-06 (each threw a TypeError on 8b6cb4a).
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, type Store } from '../src/core/index.js';
import { checkpoints, follow } from '../src/checkpoints/index.js';
import { consumer, process as processMessage, registerProducer, retireProducer } from '../src/exactly-once/index.js';
import { observe, openSession } from '../src/lock/index.js';
import { MemoryStore } from '../src/memory/index.js';

const refused = async (what: string, call: () => unknown) => {
  const err = await (async () => call())().then(
    async (r) => (r && typeof (r as AsyncGenerator).next === 'function' ? (r as AsyncGenerator).next() : r),
  ).then(() => 'accepted', (e: unknown) => e);
  expect(InvalidArgumentError.is(err), `${what}: ${String(err)}`).toBe(true);
};
const notAStore = null as unknown as Store;
const notOptions = null as unknown as undefined;
const lookalike = { aborted: false } as unknown as AbortSignal;

describe('bad input to the features is InvalidArgumentError', () => {
  it('a store that is no store', async () => {
    await refused('openSession(null)', () => openSession(notAStore));
    await refused('observe(null)', () => observe(notAStore, 'x'));
    await refused('checkpoints(null)', () => checkpoints(notAStore, { prefix: 'cp/' }));
    await refused('registerProducer(null)', () => registerProducer(notAStore, 'p'));
    await refused('process(null)', () => processMessage(notAStore, { producerId: 'p', epoch: 1, sequence: 1 } as never, 1, () => 1));
  });

  it('options that are no object, and signals that are no AbortSignal', async () => {
    const store = new MemoryStore();
    const cps = checkpoints(store, { prefix: 'cp/' });
    const handler = () => undefined;
    await refused('follow(…, null)', () => follow(store, { prefix: 'data/', checkpoint: { checkpoints: cps, key: 'k' } }, handler, notOptions));
    await refused('follow(…, { signal: {} })', () => follow(store, { prefix: 'data/', checkpoint: { checkpoints: cps, key: 'k' } }, handler, { signal: lookalike }));
    const producer = await registerProducer(store, 'p');
    await refused('process(…, null)', () => processMessage(store, producer.stamp('0'), 1, () => 1, notOptions));
    await refused('process(…, { signal: {} })', () => processMessage(store, producer.stamp('0'), 1, () => 1, { signal: lookalike }));
    await refused('consumer(…, { signal: {} })', () => consumer(store, { signal: lookalike }));
    await refused('registerProducer(…, null)', () => registerProducer(store, 'q', notOptions));
    await refused('retireProducer(…, null)', () => retireProducer(store, 'q', notOptions));
    await refused('observe(…, { signal: {} })', () => observe(store, 'x', { signal: lookalike }));
    await store.close();
  });
});
