import assert from 'node:assert/strict';
import { ClosedError, OutcomeUnknownError, RetryExhaustedError, SKIP, type Entry, type Store } from '../core/index.js';
import { FaultStore } from './fault-store.js';

type StoreTest = (store: Store) => Promise<void>;

const increment = (n: number | undefined) => (n ?? 0) + 1;

/**
 * What each update() caller is *told* (docs/semantics.md, "update()": what the caller gets and the combining
 * rules): its own value at the revision of its commit, never another
 * caller's; never a mutation applied twice, whatever acknowledgements are
 * lost; an answer by its own deadline and signal. Each check throws when the
 * store, or the update loop over it, breaks one of these; faults are injected
 * with FaultStore, so every backend is driven through the same sequences.
 */
export const callerChecks: Record<string, StoreTest> = {
  'N concurrent increments return exactly the values 1..N, combined or not': async (s) => {
    for (const combine of [true, false]) {
      const key = `seq/${combine}`;
      const results = await Promise.all(Array.from({ length: 16 }, () => s.update<number>(key, increment, { combine, maxAttempts: 10_000 })));
      assertOwnIncrements(results, 16, `combine: ${combine}`);
      assert.equal((await s.get<number>(key))?.value, 16);
    }
  },

  'a combined batch whose acknowledgement was lost: each caller still gets its own value, applied once': async (inner) => {
    const s = new FaultStore(inner).inject({ kind: 'lost-ack', op: 'put', key: 'lost' });
    const results = await Promise.all(Array.from({ length: 8 }, () => s.update<number>('lost', increment)));
    assert.equal(s.injected.length, 1);
    assertOwnIncrements(results, 8);
    assert.equal((await inner.get<number>('lost'))?.value, 8);
  },

  'two lost acknowledgements in a row: callers are answered by the attempt that committed': async (inner) => {
    await inner.put('acct', 100);
    const s = new FaultStore(inner)
      // Attempt 1 never reached the store, but its error cannot say so; meanwhile a deposit lands.
      .inject({ kind: 'lost-request', op: 'put', key: 'acct', then: (store) => store.put('acct', 200) })
      // Attempt 2 commits, and its acknowledgement is lost.
      .inject({ kind: 'lost-ack', op: 'put', key: 'acct' });
    const withdraw = (amount: number) => (n: number | undefined) => (n ?? 0) - amount;
    const nonNegative = { validate: (n: number) => n >= 0 || 'insufficient funds' };
    const [a, b] = await Promise.allSettled([s.update<number>('acct', withdraw(50), nonNegative), s.update<number>('acct', withdraw(70), nonNegative)]);
    // On 100, the second withdrawal failed validation; on 200 (the state attempt 2 saw, and committed) both pass.
    assert.equal(s.injected.length, 2);
    assert.deepEqual([a.status, b.status], ['fulfilled', 'fulfilled'], describe([a, b]));
    assert.equal((await inner.get<number>('acct'))?.value, 80);
    assert.deepEqual([valueOf(a), valueOf(b)], [150, 80]);
  },

  'a permanent error after a lost acknowledgement never applies a mutation again': async (inner) => {
    const s: FaultStore = new FaultStore(inner).inject({
      kind: 'lost-ack', op: 'put', key: 'perm',
      // The re-read that would recognise the write then fails for good.
      then: () => s.inject({ kind: 'fail-permanent', op: 'getRecord', key: 'perm' }),
    });
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => s.update<number>('perm', increment)));
    // The batch's write committed but nobody can confirm it: each caller is told so, none re-applied.
    assert.equal((await inner.get<number>('perm'))?.value, 4);
    assert.deepEqual(s.injected.map((f) => f.kind), ['lost-ack', 'fail-permanent']);
    for (const r of results) assert.ok(r.status === 'rejected' && OutcomeUnknownError.is(r.reason), describe(results));
  },

  'a write cut from its caller that lands while the caller retries is recognised, not applied again': async (inner) => {
    for (const callers of [1, 4]) {
      for (const combine of [true, false]) {
        if (callers > 1 && !combine) continue;
        const key = `late/${callers}/${combine}`;
        await inner.put(key, 0);
        // The re-read still sees the old revision; the cut write commits just before the retry's write.
        const s = new FaultStore(inner).inject({ kind: 'late-landing', op: 'put', key });
        const results = await Promise.all(Array.from({ length: callers }, () => s.update<number>(key, increment, { combine })));
        const what = `callers: ${callers}, combine: ${combine}`;
        assert.equal(s.injected.length, 1, what);
        assert.equal((await inner.get<number>(key))?.value, callers, `a mutation was applied twice (${what})`);
        assertOwnIncrements(results, callers, what);
      }
    }
  },

  'a write cut by close() that committed is reported as an unknown outcome, never re-applied or called failed': async (inner) => {
    for (const combine of [true, false]) {
      const key = `closed/${combine}`;
      await inner.put(key, 0);
      const s = new FaultStore(inner).inject({ kind: 'lost-ack', op: 'put', key, error: () => new ClosedError(inner.backend, { ambiguous: true }) });
      const outcome = await s.update<number>(key, increment, { combine }).then((e) => e, (err: unknown) => err);
      assert.ok(OutcomeUnknownError.is(outcome), `combine ${combine}: ${String(outcome)}`);
      assert.equal((await inner.get<number>(key))?.value, 1, `combine: ${combine}`);
    }
  },

  'a create cut from its caller cannot land after the key was created and deleted (its guard is "never written", not "absent")': async (inner) => {
    for (const combine of [true, false]) {
      const key = `late-create/${combine}`;
      const s = new FaultStore(inner).inject({ kind: 'late-landing', op: 'put', key, landsAt: 'landHeld' });
      const first = await s.update<number>(key, increment, { combine });
      assert.equal(first?.value, 1, `combine: ${combine}`);
      const gone = await inner.delete(key);
      await s.landHeld(); // the cut create arrives now, on the tombstone
      const now = await inner.getRecord(key);
      assert.equal(now?.revision, gone, `combine ${combine}: the cut create landed after the delete: ${JSON.stringify(now)}`);
    }
  },

  'after a cut write, a mutation that answers SKIP is told the outcome is unknown, never "nothing written"': async (inner) => {
    for (const combine of [true, false]) {
      const key = `late-skip/${combine}`;
      await inner.put(key, 0);
      const s = new FaultStore(inner).inject({ kind: 'late-landing', op: 'put', key, landsAt: 'landHeld' });
      let calls = 0;
      const outcome = await s.update<number>(key, (n) => (calls++ === 0 ? (n ?? 0) + 1 : SKIP), { combine }).then((e) => e, (err: unknown) => err);
      await s.landHeld();
      const stored = (await inner.get<number>(key))?.value;
      if (stored === 1) assert.ok(OutcomeUnknownError.is(outcome), `combine ${combine}: its cut write landed, yet it was told ${JSON.stringify(outcome)}`);
    }
  },

  'a mutation that returns undefined is a ValidationError of its own; combined callers beside it are written': async (s) => {
    await s.put('undef', 5);
    const results = await Promise.allSettled([
      s.update<number>('undef', increment),
      s.update<number>('undef', ((n: number) => {
        void (n + 1); // a forgotten return
      }) as unknown as (n: number | undefined) => number),
      s.update<number>('undef', increment),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled'], describe(results));
    assert.equal((results[1] as PromiseRejectedResult).reason?.code, 'ERR_VALIDATION');
    assert.equal((await s.get<number>('undef'))?.value, 7);
  },

  'a history read that never answers holds an update() only until its deadline, and the key stays usable': async (inner) => {
    for (const combine of [true, false]) {
      // On a loaded machine the deadline can pass before the history read is reached (then the caller
      // is told RetryExhaustedError, or OutcomeUnknownError if its write was sent): only a run whose
      // update() reached the stalled read is judged; otherwise again, on a fresh key, with a longer deadline.
      for (let deadlineMs = 300; ; deadlineMs *= 4) {
        assert.ok(deadlineMs < 60_000, `combine ${combine}: the history read was never reached`);
        const key = `history-stall/${combine}/${deadlineMs}`;
        await inner.put(key, 0);
        const s = new FaultStore(inner)
          // The write commits, its acknowledgement is lost, and another writer moves the key: the caller must look in history…
          .inject({ kind: 'lost-ack', op: 'put', key, then: (store) => store.put(key, 100) })
          // …which never answers.
          .inject({ kind: 'stall', op: 'history', key });
        const outcome = await bounded(s.update<number>(key, increment, { combine, deadlineMs }).then((e) => e, (err: unknown) => err), 15_000 + deadlineMs, `combine ${combine}: update() still pending long after its deadline`);
        if (!s.injected.some((f) => f.op === 'history')) {
          assert.ok(RetryExhaustedError.is(outcome) || OutcomeUnknownError.is(outcome), `combine ${combine}: ${String(outcome)}`);
          continue;
        }
        assert.ok(OutcomeUnknownError.is(outcome), `combine ${combine}: ${String(outcome)}`);
        const next = await bounded(s.update<number>(key, (n) => (n ?? 0) + 10, { combine }), 15_000, `combine ${combine}: the key is wedged`);
        assert.equal(next?.value, 110, `combine: ${combine}`);
        break;
      }
    }
  },

  'close() ends an update() waiting out an outage at once: no store call after it': async (inner) => {
    for (const combine of [true, false]) {
      const key = `close-backoff/${combine}`;
      const s = new FaultStore(inner).inject({ kind: 'fail-before', op: 'getRecord', key, times: 1_000 });
      const outcome = s.update<number>(key, increment, { combine, deadlineMs: 60_000 }).then((e) => e, (err: unknown) => err);
      while (s.injected.length < 2) await new Promise((r) => setTimeout(r, 5));
      await s.close();
      const tried = s.injected.length + s.calls.getRecord;
      const err = await bounded(outcome, 15_000, `combine ${combine}: update() outlived close()`);
      assert.ok(err instanceof Error && (err as { code?: string }).code !== undefined, `combine ${combine}: ${String(err)}`);
      assert.equal(s.injected.length + s.calls.getRecord, tried, `combine ${combine}: the store was called again after close()`);
    }
  },

  'an ambiguous write buried under more writes (70) than history keeps (64) is never applied again': async (inner) => {
    for (const combine of [true, false]) {
      const key = `buried/${combine}`;
      await inner.put(key, 0);
      const s = new FaultStore(inner).inject({
        kind: 'lost-ack', op: 'put', key,
        then: async (store) => {
          for (let i = 0; i < 70; i++) await store.update<number>(key, (n) => (n ?? 0) + 1000, { combine: false });
        },
      });
      const outcome = await s.update<number>(key, increment, { combine }).then((e) => e, (err: unknown) => err);
      assert.equal((await inner.get<number>(key))?.value, 70_001, `combine: ${combine}`);
      if (OutcomeUnknownError.is(outcome)) continue;
      // History reached back to it: the caller gets its own write, not a second one.
      assert.equal((outcome as Entry<number>).value, 1, `combine: ${combine}`);
    }
  },

  "a mutation that never returns holds up only its own caller, until that caller's deadline": async (s) => {
    const hung = s.update<number>('hang', () => new Promise<number>(() => undefined), { deadlineMs: 200 });
    const patient = s.update<number>('hang', increment, { deadlineMs: 20_000 });
    const [h, p] = await bounded(Promise.allSettled([hung, patient]), 15_000, 'callers still pending long after their deadlines');
    assert.ok(h.status === 'rejected' && RetryExhaustedError.is(h.reason) && h.reason.reason === 'deadline', describe([h]));
    assert.equal(p.status === 'fulfilled' ? p.value?.value : p.reason, 1);
    assert.equal((await s.get<number>('hang'))?.value, 1);
  },

  'an abort while a combined store call hangs answers that caller at once': async (inner) => {
    await inner.put('stuck', 0);
    const s = new FaultStore(inner).inject({ kind: 'stall', op: 'getRecord', key: 'stuck' });
    const controller = new AbortController();
    const pending = s.update<number>('stuck', increment, { signal: controller.signal, deadlineMs: 60_000 });
    setTimeout(() => controller.abort(), 20);
    const err = await bounded(pending.then(() => 'resolved', (e: unknown) => e), 15_000, 'an aborted caller was not answered');
    assert.ok(RetryExhaustedError.is(err) && err.reason === 'aborted', String(err));
    assert.equal((await inner.get<number>('stuck'))?.value, 0);
  },

  'an abort during the mutation stops the write that would follow': async (s) => {
    for (const combine of [true, false]) {
      const key = `abort-in-fn/${combine}`;
      await s.put(key, 0);
      const controller = new AbortController();
      const err = await s.update<number>(key, (n) => {
        controller.abort();
        return (n ?? 0) + 1;
      }, { signal: controller.signal, combine }).then(() => 'resolved', (e: unknown) => e);
      assert.ok(RetryExhaustedError.is(err) && err.reason === 'aborted', `combine ${combine}: ${String(err)}`);
      assert.equal((await s.get<number>(key))?.value, 0, `combine: ${combine}`);
    }
  },
};

/** Every caller got a distinct value 1..n, and a caller's revision is that of the commit holding its value. */
function assertOwnIncrements(results: Array<Entry<number> | null>, n: number, what = ''): void {
  const values = results.map((r) => r?.value ?? 0).sort((x, y) => x - y);
  assert.deepEqual(values, Array.from({ length: n }, (_, i) => i + 1), `each caller must get its own value ${what}`);
  const byValue = [...results].sort((x, y) => (x?.value ?? 0) - (y?.value ?? 0));
  for (let i = 1; i < byValue.length; i++) {
    assert.ok((byValue[i]?.revision ?? 0) >= (byValue[i - 1]?.revision ?? 0), `a later value has an earlier revision ${what}`);
  }
}

function valueOf(r: PromiseSettledResult<Entry<number> | null>): unknown {
  return r.status === 'fulfilled' ? r.value?.value : r.reason;
}

function describe(results: PromiseSettledResult<unknown>[]): string {
  return JSON.stringify(results.map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason))));
}

/** A liveness bound, not a speed claim: fails a test that would otherwise hang forever. */
function bounded<R>(promise: Promise<R>, ms: number, what: string): Promise<R> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(what)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
