// In-process write combining (DESIGN §4, src/core/combine.ts): concurrent
// update()s of one key are read once, applied in arrival order, written once,
// and every caller still gets its own result or its own error. The shared
// conformance suite checks the basic mixed batch on every backend; these
// tests pin the finer semantics on the memory store.
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/memory/index.js';
import { BackendError, RetryExhaustedError, SKIP, exponentialJitter, sleep, type Entry, type PutOptions, type StoredRecord } from '../src/core/index.js';

/** A memory store that counts reads and writes, and can lose the next `conflicts` writes to an outside writer. */
class ProbeStore extends MemoryStore {
  reads = 0;
  writes = 0;
  conflicts = 0;
  /** Runs when an injected conflict is about to be reported (after the outside write). */
  onConflict?: () => void;
  /** The next update() write waits for it (a write in flight); `writing` is called as it starts waiting. */
  holdNextWrite?: { until: Promise<void>; writing: () => void };

  override async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.reads++;
    return super.getRecord<T>(key);
  }

  override async put<T = unknown>(key: string, value: T, options: PutOptions = {}): Promise<Entry<T>> {
    const hold = options.writer !== undefined ? this.holdNextWrite : undefined;
    if (hold) {
      this.holdNextWrite = undefined;
      hold.writing();
      await hold.until;
    }
    if (options.writer !== undefined && this.conflicts > 0) {
      this.conflicts--;
      // Someone else writes first (+100), then our guarded write fails on the revision.
      await sleep(20);
      const current = ((await super.get<number>(key))?.value ?? 0) as number;
      await super.put(key, current + 100);
      this.onConflict?.();
    }
    if (options.writer !== undefined) this.writes++;
    return super.put<T>(key, value, options);
  }
}

const inc = (by: number) => (n: number | undefined) => (n ?? 0) + by;

describe('write combining', () => {
  it('callers arriving together share one read and one write, applied in arrival order', async () => {
    const s = new ProbeStore();
    await s.put('list', [] as number[]);
    const seen: number[][] = [];
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        s.update<number[]>('list', (xs) => {
          seen.push([...(xs as number[])]);
          return [...(xs as number[]), i];
        }),
      ),
    );
    expect(s.reads).toBe(1);
    expect(s.writes).toBe(1);
    expect((await s.get('list'))?.value).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Each mutation saw the value left by the ones that arrived before it.
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => Array.from({ length: i }, (_, j) => j)));
    // Every caller gets the value its own mutation produced, at the revision of the one combined commit.
    expect(new Set(results.map((r) => r?.revision)).size).toBe(1);
    expect(results.map((r) => r?.value)).toEqual(Array.from({ length: 10 }, (_, i) => Array.from({ length: i + 1 }, (_, j) => j)));
    await s.close();
  });

  it('each mutation gets a private copy: one caller mutating its argument in place does not leak into a failed one', async () => {
    const s = new MemoryStore();
    await s.put('obj', { a: 1 });
    const results = await Promise.allSettled([
      s.update<{ a: number; b?: number }>('obj', (o) => {
        o!.b = 2;
        throw new Error('changed my copy, then failed');
      }),
      s.update<{ a: number; b?: number }>('obj', (o) => ({ ...o!, a: o!.a + 1 })),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled']);
    expect((await s.get('obj'))?.value).toEqual({ a: 2 });
    await s.close();
  });

  it("a missing key gives each caller its own default until someone writes", async () => {
    const s = new MemoryStore();
    const results = await Promise.all([
      s.update<number>('d', () => SKIP, { default: 5 }),
      s.update<number>('d', inc(1), { default: 7 }),
      s.update<number>('d', inc(1), { default: 100 }),
    ]);
    // The skipper saw a missing key (null, as alone); 7 + 1 by the second caller, + 1 by the third
    // (its default unused): each gets the value its own mutation produced.
    expect(results.map((r) => r?.value ?? null)).toEqual([null, 8, 9]);
    expect(results[1]?.revision).toBe(results[2]?.revision);
    expect((await s.get('d'))?.value).toBe(9);
    await s.close();
  });

  it("a caller whose value fails validation is left out: the next caller sees the value without it", async () => {
    const s = new MemoryStore();
    await s.put('v', 1);
    const seenByLast: Array<number | undefined> = [];
    const results = await Promise.allSettled([
      s.update<number>('v', inc(1)),
      s.update<number>('v', () => -100, { validate: (n) => n >= 0 || 'must not be negative' }),
      s.update<number>('v', (n) => {
        seenByLast.push(n);
        return (n as number) + 10;
      }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(seenByLast).toEqual([2]);
    expect((await s.get('v'))?.value).toBe(12);
    await s.close();
  });

  it('a caller arriving while a batch is being written goes into the next batch and sees its result', async () => {
    const s = new ProbeStore();
    await s.put('n', 0);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let firstWriting!: () => void;
    const writing = new Promise<void>((r) => (firstWriting = r));
    s.holdNextWrite = { until: gate, writing: firstWriting };
    const first = s.update<number>('n', (n) => (n as number) + 1);
    await writing;
    const seen: number[] = [];
    const second = s.update<number>('n', (n) => {
      seen.push(n as number);
      return (n as number) + 1;
    });
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(seen).toEqual([1]);
    expect(b!.revision).toBeGreaterThan(a!.revision);
    expect((await s.get('n'))?.value).toBe(2);
    expect(s.writes).toBe(2);
    await s.close();
  });

  it("one caller's deadline, attempt limit or abort fails only that caller; the batch retries for the others", async () => {
    const s = new ProbeStore();
    await s.put('r', 0);
    s.conflicts = 2;
    const abort = new AbortController();
    s.onConflict = () => abort.abort();
    const retries = { patient: 0, short: 0 };
    const results = await Promise.allSettled([
      s.update<number>('r', inc(1), { onRetry: () => void retries.patient++ }),
      s.update<number>('r', inc(2), { deadlineMs: 1, onRetry: () => void retries.short++ }),
      s.update<number>('r', inc(4), { maxAttempts: 1 }),
      s.update<number>('r', inc(8), { signal: abort.signal }),
      s.update<number>('r', inc(16)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected', 'fulfilled']);
    const reasons = results.slice(1, 4).map((r) => (r as PromiseRejectedResult).reason);
    // The short deadline and the abort both fall while the combined write carrying their
    // mutations is in flight: it may commit, so the honest answer is "outcome unknown" — as
    // each would have been told alone. The attempt limit falls after a definite conflict.
    expect(reasons.map((e) => e.code)).toEqual(['ERR_OUTCOME_UNKNOWN', 'ERR_RETRY_EXHAUSTED', 'ERR_OUTCOME_UNKNOWN']);
    expect(reasons[1].reason).toBe('attempts');
    // Two outside writes of +100 each; the write in flight at the deadline lost its conflict,
    // so only the two remaining callers are applied, in one combined write.
    expect((await s.get('r'))?.value).toBe(200 + 1 + 16);
    expect(results[0]).toMatchObject({ value: { value: 201 } });
    expect(results[4]).toMatchObject({ value: { value: 217 } });
    expect(retries.patient).toBe(2);
    await s.close();
  });

  it('combining can be turned off per call, and a per-call retry policy or TTL is never combined', async () => {
    const s = new ProbeStore();
    await s.put('off', 0);
    await Promise.all(Array.from({ length: 4 }, () => s.update<number>('off', inc(1), { combine: false })));
    expect((await s.get('off'))?.value).toBe(4);
    expect(s.writes).toBeGreaterThanOrEqual(4);
    const before = s.writes;
    await Promise.all(Array.from({ length: 4 }, () => s.update<number>('off', inc(1), { retry: exponentialJitter({ baseMs: 1, capMs: 4 }) })));
    expect((await s.get('off'))?.value).toBe(8);
    expect(s.writes - before).toBeGreaterThanOrEqual(4);
    await Promise.all(Array.from({ length: 4 }, () => s.update<number>('off', inc(1), { ttlMs: 60_000 })));
    expect((await s.get('off'))?.value).toBe(12);
    expect(s.writes - before).toBeGreaterThanOrEqual(8);
    await s.close();
  });
});

describe('write combining: errors are per caller and never from an uncommitted state', () => {
  it('a validation failure seen on a state that then lost a conflict is re-judged on the committed state', async () => {
    const s = new ProbeStore();
    await s.put('v', 9);
    s.conflicts = 1; // the first combined write loses to an outside +100 ... then the outside writer resets below
    s.onConflict = () => void s.put('v', 0);
    const validate = (v: number) => v <= 10;
    const [a, b] = await Promise.allSettled([
      s.update<number>('v', inc(1), { validate }),
      s.update<number>('v', inc(1), { validate }),
    ]);
    // On 9: A → 10 passes, B → 11 fails. After the conflict the committed state is 0 (or 100 then 0):
    // both increments are legal there, so neither caller may see the phantom 11.
    expect(a.status).toBe('fulfilled');
    expect(b.status).toBe('fulfilled');
    expect((await s.get('v'))?.value).toBe(2);
    await s.close();
  });

  it("a write refused for good (too large) fails only the caller whose value is at fault", async () => {
    const s = new MemoryStore({ maxValueBytes: 1000 });
    await s.put('doc', { n: 0 });
    const [small, huge] = await Promise.allSettled([
      s.update<{ n: number; blob?: string }>('doc', (d) => ({ ...d!, n: d!.n + 1 })),
      s.update<{ n: number; blob?: string }>('doc', (d) => ({ ...d!, blob: 'x'.repeat(2000) })),
    ]);
    expect(small.status).toBe('fulfilled');
    expect(huge.status).toBe('rejected');
    expect((huge as PromiseRejectedResult).reason.code).toBe('ERR_TOO_LARGE');
    expect((await s.get('doc'))?.value).toEqual({ n: 1 });
    await s.close();
  });

  it("after a lost acknowledgement, a neighbour's value refused for good fails only that neighbour: the other caller is applied once, not told 'unknown' (review a09)", async () => {
    /** The first combined write is cut before it reaches the store: ambiguous to the callers, never applied. */
    class CutOnceStore extends MemoryStore {
      cut = 1;
      override async put<T = unknown>(key: string, value: T, options: PutOptions = {}): Promise<Entry<T>> {
        if (options.writer !== undefined && this.cut > 0) {
          this.cut--;
          throw new BackendError('connection lost before the answer', { transient: true, ambiguous: true });
        }
        return super.put<T>(key, value, options);
      }
    }
    const s = new CutOnceStore({ maxValueBytes: 1000 });
    await s.put('doc', { n: 0 });
    let calls = 0;
    const [plain, growing] = await Promise.allSettled([
      s.update<{ n: number; blob?: string }>('doc', (d) => ({ ...d!, n: d!.n + 1 })),
      // Fine the first time; over the limit when retried.
      s.update<{ n: number; blob?: string }>('doc', (d) => ({ ...d!, blob: 'x'.repeat(++calls === 1 ? 10 : 2000) })),
    ]);
    expect(plain).toMatchObject({ status: 'fulfilled', value: { value: { n: 1 } } });
    // Its earlier write can no longer land (the other caller's commit is past its guard): a definite refusal.
    expect(growing.status).toBe('rejected');
    expect((growing as PromiseRejectedResult).reason.code).toBe('ERR_TOO_LARGE');
    expect((await s.get('doc'))?.value).toEqual({ n: 1 });
    await s.close();
  });

  it('a throwing onRetry hook neither fails the update nor wedges the key', async () => {
    const s = new ProbeStore();
    await s.put('k', 0);
    s.conflicts = 1;
    const onRetry = () => {
      throw new Error('metrics are down');
    };
    await Promise.all([s.update<number>('k', inc(1), { onRetry }), s.update<number>('k', inc(1), { onRetry })]);
    expect((await s.update<number>('k', inc(1)))?.value).toBe(103);
    await s.close();
  });

  it('a caller aborted while queued behind a running batch leaves at once', async () => {
    const s = new ProbeStore();
    await s.put('q', 0);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = s.update<number>('q', async (n) => {
      await gate;
      return (n as number) + 1;
    });
    await sleep(5);
    const controller = new AbortController();
    const queued = s.update<number>('q', inc(1), { signal: controller.signal });
    controller.abort();
    const err = await queued.catch((e) => e);
    expect(RetryExhaustedError.is(err)).toBe(true);
    expect(err.reason).toBe('aborted');
    release();
    expect((await first)?.value).toBe(1);
    await s.close();
  });
});

describe('update() is bounded even when the store never answers', () => {
  class StuckStore extends MemoryStore {
    stuck = false;
    override async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
      if (this.stuck) return new Promise<never>(() => undefined);
      return super.getRecord<T>(key);
    }
  }

  it('by its deadline and by its signal, combined or not', async () => {
    const s = new StuckStore();
    await s.put('k', 0);
    s.stuck = true;
    for (const combine of [false, true]) {
      const late = await s.update<number>('k', inc(1), { deadlineMs: 100, combine }).catch((e) => e);
      expect(RetryExhaustedError.is(late), `combine ${combine}`).toBe(true);
      expect(late.reason).toBe('deadline');
    }
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const aborted = await s.update<number>('k', inc(1), { signal: controller.signal, combine: false }).catch((e) => e);
    expect(aborted).toMatchObject({ code: 'ERR_RETRY_EXHAUSTED', reason: 'aborted' });
    s.stuck = false;
    expect((await s.get('k'))?.value).toBe(0);
    await s.close();
  });
});

describe('memory: update()s answered in one step (src/core/update-now.ts)', () => {
  it('callers arriving together share one write, in arrival order, each told its own value', async () => {
    const s = new MemoryStore();
    const head = await s.headRevision();
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => s.update<number[]>('list', (xs) => [...(xs ?? []), i])));
    expect(await s.headRevision()).toBe(head + 1);
    expect(results.map((r) => r?.value)).toEqual(Array.from({ length: 10 }, (_, i) => Array.from({ length: i + 1 }, (_, j) => j)));
    expect(new Set(results.map((r) => r?.revision))).toEqual(new Set([head + 1]));
    await s.close();
  });

  it('after a run of lone callers (each written at once), callers arriving together are combined again', async () => {
    const s = new MemoryStore();
    for (let i = 0; i < 100; i++) await s.update<number>('n', inc(1));
    const head = await s.headRevision();
    await Promise.all(Array.from({ length: 16 }, async () => {
      for (let j = 0; j < 50; j++) await s.update<number>('n', inc(1));
    }));
    expect((await s.get<number>('n'))?.value).toBe(900);
    // 800 updates; alone each would be a commit of its own.
    expect(await s.headRevision() - head).toBeLessThan(200);
    await s.close();
  });

  /** Each case on a fresh store (callers gather for a turn), after lone callers (a caller runs at once), and uncombined. */
  const modes = [
    { name: 'gathering', combine: true, warm: false },
    { name: 'at once', combine: true, warm: true },
    { name: 'combine: false', combine: false, warm: false },
  ];
  const freshStore = async (warm: boolean) => {
    const s = new MemoryStore();
    if (warm) for (let i = 0; i < 8; i++) await s.update<number>('warm-up', inc(1));
    return s;
  };

  it('an update() of the same key started inside a mutation runs after that write, once (review round 7: it livelocked)', async () => {
    for (const { name, combine, warm } of modes) {
      const s = await freshStore(warm);
      await s.put('k', 0);
      let outerCalls = 0;
      const nested: Array<Promise<unknown>> = [];
      const outer = await s.update<number>('k', (n) => {
        outerCalls++;
        nested.push(s.update<number>('k', (m) => (m ?? 0) + 100, { combine }));
        return (n ?? 0) + 1;
      }, { combine, deadlineMs: 10_000 });
      const inner = await Promise.all(nested);
      expect([outer?.value, outerCalls, inner.length, (await s.get<number>('k'))?.value], name).toEqual([1, 1, 1, 101]);
      await s.close();
    }
  });

  it('maxAttempts holds when a write in one step conflicts (a mutation wrote the key): attempt 1 counts (review round 7)', async () => {
    for (const { name, combine, warm } of modes) {
      const s = await freshStore(warm);
      await s.put('k', 0);
      let calls = 0;
      const err = await s.update<number>('k', (n) => {
        if (++calls === 1) void s.put('k', 1000);
        return (n ?? 0) + 1;
      }, { maxAttempts: 1, combine }).then(() => 'resolved', (e: unknown) => e);
      expect(RetryExhaustedError.is(err) && err.reason === 'attempts', `${name}: ${String(err)}`).toBe(true);
      expect([calls, (await s.get<number>('k'))?.value], name).toEqual([1, 1000]);
      await s.close();
    }
  });

  it('update()s gathered in the turn the store is closed are ERR_CLOSED, not committed to a closed store (review round 7)', async () => {
    const s = new MemoryStore();
    const calls = [s.update<number>('k', inc(1)), s.update<number>('k', inc(1))];
    await s.close();
    const results = await Promise.allSettled(calls);
    expect(results.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'committed'))).toEqual(['ERR_CLOSED', 'ERR_CLOSED']);
  });

  it('a mutation whose result throws when looked at rejects its caller; nothing escapes as an uncaught exception (review round 7)', async () => {
    for (const { name, combine, warm } of modes) {
      const s = await freshStore(warm);
      let looks = 0;
      const odd = () => ({ v: 1, get then() { if (++looks > 1) throw new Error('then getter throws'); return undefined; } });
      const err = await s.update('k', odd as never, { combine }).then(() => 'resolved', (e: unknown) => e);
      expect(String(err), name).toMatch(/then getter throws/);
      expect(await s.get('k'), name).toBeNull();
      await s.close();
    }
  });

  it('a signal shaped like an AbortSignal (a polyfill) is taken, as Node takes it', async () => {
    const s = new MemoryStore();
    const signal = { aborted: false, reason: undefined, addEventListener() {}, removeEventListener() {} } as unknown as AbortSignal;
    expect((await s.update<number>('k', inc(1), { signal }))?.value).toBe(1);
    await s.close();
  });

  it('a subclass that overrides getRecord() or put() keeps the attempt loop, so that it sees every read and write', async () => {
    const s = new ProbeStore();
    await s.update<number>('p', inc(1));
    expect([s.reads, s.writes]).toEqual([1, 1]);
    await s.close();
  });
});
