import assert from 'node:assert/strict';
import { RetryExhaustedError, SKIP, type Store } from '../core/index.js';
import { FaultStore } from './fault-store.js';

type StoreTest = (store: Store) => Promise<void>;

/**
 * Combined update()s (docs/semantics.md, "update()"): a caller is answered
 * as it would be alone, whatever its neighbours in the same write do —
 * conflict, fail, abort, hang. Review round 6 found each of these broken;
 * alone (HttpStore, which may not combine) every check holds trivially.
 */
export const neighbourChecks: Record<string, StoreTest> = {
  "a combined caller whose mutation throws is told so at once; a neighbour's conflict does not run it again": async (s) => {
    await s.put('thrower', 0);
    const refusal = new Error('X refuses');
    let xCalls = 0;
    let moved = false;
    const [x, y] = await Promise.allSettled([
      s.update<number>('thrower', () => {
        xCalls++;
        if (xCalls === 1) throw refusal;
        return 100;
      }),
      s.update<number>('thrower', async (n) => {
        if (!moved) {
          moved = true;
          await s.put('thrower', 1000); // another writer: this attempt's write conflicts
        }
        return (n ?? 0) + 1;
      }),
    ]);
    assert.ok(x.status === 'rejected' && x.reason === refusal, `X: ${x.status === 'fulfilled' ? JSON.stringify(x.value) : String(x.reason)}`);
    assert.equal(xCalls, 1);
    assert.equal(y.status === 'fulfilled' ? y.value?.value : y.reason, 1001);
    assert.equal((await s.get<number>('thrower'))?.value, 1001);
  },

  "a combined caller that fails validation, or SKIPs the value read, is answered at once whatever its neighbour's write meets": async (inner) => {
    const read = await inner.put('hostage', 0);
    const s = new FaultStore(inner).inject({ kind: 'fail-before', op: 'put', key: 'hostage', times: 1_000 });
    let validations = 0;
    let skips = 0;
    const [invalid, skip, writer] = await Promise.allSettled([
      s.update<number>('hostage', () => -1, { validate: (v) => (validations++, v >= 0 || 'must be 0 or more'), maxAttempts: 3 }),
      s.update<number>('hostage', () => (skips++, SKIP), { maxAttempts: 3 }),
      s.update<number>('hostage', (n) => (n ?? 0) + 1, { maxAttempts: 3 }),
    ]);
    assert.equal(invalid.status === 'rejected' ? (invalid.reason as { code?: string }).code : 'resolved', 'ERR_VALIDATION');
    assert.equal(validations, 1);
    assert.ok(skip.status === 'fulfilled', `SKIP: ${skip.status === 'rejected' ? String(skip.reason) : ''}`);
    assert.deepEqual([skip.value?.value, skip.value?.revision, skips], [0, read.revision, 1]);
    assert.ok(writer.status === 'rejected' && RetryExhaustedError.is(writer.reason), 'the writer whose puts all fail');
    assert.equal((await inner.get<number>('hostage'))?.revision, read.revision);
  },

  "a neighbour answered while a mutation runs does not spend that caller's attempts": async (s) => {
    await s.put('spent', 0);
    const controller = new AbortController();
    const [a, b] = await Promise.allSettled([
      s.update<number>('spent', (n) => (n ?? 0) + 1, { signal: controller.signal }),
      s.update<number>('spent', async (n) => {
        controller.abort(); // A is answered now, before the write that would carry it
        return (n ?? 0) + 10;
      }, { maxAttempts: 1 }),
    ]);
    assert.ok(a.status === 'rejected' && RetryExhaustedError.is(a.reason) && a.reason.reason === 'aborted', `A: ${a.status}`);
    assert.equal(b.status === 'fulfilled' ? b.value?.value : String(b.reason), 10);
    assert.equal((await s.get<number>('spent'))?.value, 10);
  },

  "a caller that failed on the value read is not run again when a neighbour's answer starts the attempt over (review round 7)": async (s) => {
    await s.put('midway', 0);
    const controller = new AbortController();
    let tCalls = 0;
    const [t, , b] = await Promise.allSettled([
      s.update<number>('midway', () => {
        tCalls++;
        if (tCalls === 1) throw new Error('T refuses');
        return 100;
      }),
      s.update<number>('midway', (n) => (n ?? 0) + 1, { signal: controller.signal }),
      s.update<number>('midway', (n) => {
        controller.abort();
        return (n ?? 0) + 10;
      }),
    ]);
    assert.ok(t.status === 'rejected' && /T refuses/.test(String(t.reason)), `T: ${t.status}`);
    assert.equal(tCalls, 1);
    assert.equal(b.status, 'fulfilled');
    assert.notEqual((await s.get<number>('midway'))?.value, 100);
  },

  'a mutation that waits does not hold a later caller of the key, which alone would not wait for it': async (s) => {
    await s.put('slow', 0);
    const controller = new AbortController();
    let started!: () => void;
    const called = new Promise<void>((resolve) => (started = resolve));
    const hung = s.update<number>('slow', () => {
      started();
      return new Promise<number>(() => undefined);
    }, { signal: controller.signal, deadlineMs: 120_000 });
    await called;
    // Held behind the hung mutation, this caller would be answered RetryExhaustedError at its deadline.
    const later = await s.update<number>('slow', (n) => (n ?? 0) + 1, { deadlineMs: 10_000 }).then((e) => e?.value, (err: unknown) => err);
    controller.abort();
    const err = await hung.then(() => 'resolved', (e: unknown) => e);
    assert.equal(later, 1);
    assert.ok(RetryExhaustedError.is(err) && err.reason === 'aborted', String(err));
    assert.equal((await s.get<number>('slow'))?.value, 1);
  },
};
