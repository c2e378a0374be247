import { afterEach, describe, expect, it } from 'vitest';
import {
  BackendError, ClosedError, ConflictError, InvalidArgumentError, InvalidKeyError, OutcomeUnknownError, RetryExhaustedError, RevkitError, SKIP,
  TooLargeError, UnsupportedError, ValidationError, isTombstone, toHttpStatus,
  type Entry, type Store, type WatchEvent,
} from '../core/index.js';
import { CI_MULTI_PROCESS_INCREMENTS, runMultiProcessCounters, type CounterRunOptions } from './multiprocess.js';
import { raceChecks } from './race-checks.js';
import { callerChecks } from './caller-checks.js';

export interface ConformanceTarget {
  /** Shown in test names. */
  name: string;
  /** A fresh, isolated, empty store. */
  create(): Promise<Store>;
  /**
   * A fresh URL that other OS processes can `open()` (sharing one store);
   * enables the multi-process part. Omit for in-process-only stores.
   */
  url?(): Promise<string>;
  multiProcess?: CounterRunOptions;
  /** Slower stores need longer per-test timeouts; default 20 s. */
  timeoutMs?: number;
}

type StoreTest = (store: Store) => Promise<void>;

/**
 * The one suite every backend runs (Keyv-style): call it inside a vitest file
 * with a factory for fresh stores. It needs vitest as a test runner.
 */
export function describeConformance(target: ConformanceTarget): void {
  const open: Store[] = [];
  const timeout = target.timeoutMs ?? 20_000;
  const test = (name: string, fn: StoreTest, t = timeout) =>
    it(name, async () => {
      const store = await target.create();
      open.push(store);
      await fn(store);
    }, t);

  describe(`conformance: ${target.name}`, () => {
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close().catch(() => undefined)));
    });

    describe('get / put / delete', () => {
      test('get of a missing key is null; put returns the stored entry', async (s) => {
        expect(await s.get('a')).toBeNull();
        expect(await s.getRecord('a')).toBeNull();
        const e = await s.put('a', { n: 1 });
        expect(e).toMatchObject({ key: 'a', value: { n: 1 }, createdRevision: e.revision });
        expect(Number.isSafeInteger(e.revision) && e.revision > 0).toBe(true);
        expect(typeof e.updatedAt).toBe('number');
        expect(await s.get('a')).toMatchObject({ key: 'a', value: { n: 1 }, revision: e.revision });
      });

      test('revisions increase with every write; createdRevision stays until a delete', async (s) => {
        const a = await s.put('k', 1);
        const b = await s.put('k', 2);
        expect(b.revision).toBeGreaterThan(a.revision);
        expect(b.createdRevision).toBe(a.revision);
        const d = await s.delete('k');
        expect(d).toBeGreaterThan(b.revision);
        const c = await s.put('k', 3);
        expect(c.revision).toBeGreaterThan(d as number);
        expect(c.createdRevision).toBe(c.revision);
      });

      test('delete writes a tombstone that the read-modify-write read sees', async (s) => {
        expect(await s.delete('gone')).toBeNull();
        await s.put('gone', 'x');
        const rev = await s.delete('gone');
        expect(await s.get('gone')).toBeNull();
        const record = await s.getRecord('gone');
        expect(isTombstone(record)).toBe(true);
        expect(record?.revision).toBe(rev);
        expect(await s.delete('gone')).toBeNull();
      });

      test('returned values are private copies', async (s) => {
        const value = { list: [1, 2] };
        const e = await s.put('copy', value);
        value.list.push(3);
        (e.value as { list: number[] }).list.push(4);
        expect((await s.get('copy'))?.value).toEqual({ list: [1, 2] });
      });
    });

    describe('conditions', () => {
      test('ifAbsent: must not exist (never written, deleted) — else a conflict with the current revision', async (s) => {
        const e = await s.put('c', 1, { ifAbsent: true });
        const err = await s.put('c', 2, { ifAbsent: true }).catch((x) => x);
        expect(ConflictError.is(err)).toBe(true);
        expect(err).toMatchObject({ code: 'ERR_CONFLICT', key: 'c', actual: e.revision });
        expect((await s.get('c'))?.value).toBe(1);
        await s.delete('c');
        expect((await s.put('c', 3, { ifAbsent: true })).value).toBe(3);
      });

      test('ifRevision matches the current revision only', async (s) => {
        const e = await s.put('r', 'a');
        const e2 = await s.put('r', 'b', { ifRevision: e.revision });
        const err = await s.put('r', 'c', { ifRevision: e.revision }).catch((x) => x);
        expect(err).toMatchObject({ code: 'ERR_CONFLICT', expected: e.revision, actual: e2.revision });
        expect(await s.put('never', 1, { ifRevision: 1 }).catch((x) => x.code)).toBe('ERR_CONFLICT');
        expect((await s.get('r'))?.value).toBe('b');
      });

      test('ifRevision 0: never written — unlike ifAbsent, a tombstone does not satisfy it (a cut create cannot land after a delete)', async (s) => {
        const created = await s.put('nw', 1, { ifRevision: 0 });
        expect(created.value).toBe(1);
        expect(await s.put('nw', 2, { ifRevision: 0 }).catch((x) => x)).toMatchObject({ code: 'ERR_CONFLICT', expected: 0, actual: created.revision });
        const gone = await s.delete('nw');
        expect(await s.put('nw', 3, { ifRevision: 0 }).catch((x) => x)).toMatchObject({ code: 'ERR_CONFLICT', expected: 0, actual: gone });
        expect(await s.delete('nw2', { ifRevision: 0 })).toBeNull();
        await s.put('nw2', 1);
        expect(await s.delete('nw2', { ifRevision: 0 }).catch((x) => x.code)).toBe('ERR_CONFLICT');
        if (s.capabilities.atomic) {
          expect(await s.atomic().check('nw', 0).set('nw/x', 1).commit().catch((x) => x.code)).toBe('ERR_CONFLICT');
          await s.atomic().check('nw/fresh', 0).set('nw/fresh', 1).commit();
          expect((await s.get('nw/fresh'))?.value).toBe(1);
          expect(await s.atomic().check('nw/fresh', 0).set('nw/fresh', 2).commit().catch((x) => x.code)).toBe('ERR_CONFLICT');
        }
        expect((await s.getRecord('nw'))?.revision).toBe(gone);
      });

      test('tombstone guard: a writer that read before a delete loses cleanly', async (s) => {
        const read = await s.put('t', 'v1');
        const tomb = await s.delete('t');
        const err = await s.put('t', 'resurrected', { ifRevision: read.revision }).catch((x) => x);
        expect(err).toMatchObject({ code: 'ERR_CONFLICT', actual: tomb });
        expect(await s.get('t')).toBeNull();
        expect((await s.put('t', 'v2', { ifRevision: tomb as number })).value).toBe('v2');
      });

      test('ifValue compares values deeply', async (s) => {
        await s.put('v', { a: 1, b: [1, { c: 2 }] });
        await s.put('v', { z: 1 }, { ifValue: { b: [1, { c: 2 }], a: 1 } });
        expect(await s.put('v', { y: 1 }, { ifValue: { a: 1 } }).catch((x) => x.code)).toBe('ERR_CONFLICT');
        expect(await s.put('none', 1, { ifValue: 1 }).catch((x) => x.code)).toBe('ERR_CONFLICT');
        expect((await s.get('v'))?.value).toEqual({ z: 1 });
      });

      test('delete honours the same conditions', async (s) => {
        const e = await s.put('d', 1);
        await s.put('d', 2);
        expect(await s.delete('d', { ifRevision: e.revision }).catch((x) => x.code)).toBe('ERR_CONFLICT');
        expect(await s.delete('d', { ifValue: 1 }).catch((x) => x.code)).toBe('ERR_CONFLICT');
        expect(await s.delete('d', { ifValue: 2 })).toBeGreaterThan(e.revision);
      });

      test('two conditions at once are refused', async (s) => {
        const err = await s.put('x', 1, { ifAbsent: true, ifRevision: 3 }).catch((x) => x);
        expect(InvalidArgumentError.is(err)).toBe(true);
        expect(await s.get('x')).toBeNull();
      });
    });

    describe('update()', () => {
      test('applies the mutation to the current value, with a default for missing keys', async (s) => {
        const a = await s.update<number>('u', (n) => (n ?? 0) + 1);
        expect(a?.value).toBe(1);
        const b = await s.update<number>('u', (n) => (n as number) * 10);
        expect(b?.value).toBe(10);
        const c = await s.update<{ items: string[] }>('list', (v) => ({ items: [...(v?.items ?? []), 'x'] }), { default: { items: ['first'] } });
        expect(c?.value).toEqual({ items: ['first', 'x'] });
      });

      test('SKIP writes nothing and returns the stored entry', async (s) => {
        const e = await s.put('s', 5);
        const r = await s.update('s', () => SKIP);
        expect(r).toMatchObject({ value: 5, revision: e.revision });
        expect((await s.get('s'))?.revision).toBe(e.revision);
        expect(await s.update('missing', () => SKIP)).toBeNull();
        expect(await s.getRecord('missing')).toBeNull();
      });

      test('a deleted key gets the default, and the write is guarded by the tombstone', async (s) => {
        await s.put('dk', 100);
        await s.delete('dk');
        const e = await s.update<number>('dk', (n) => (n ?? 0) + 1, { default: 41 });
        expect(e?.value).toBe(42);
      });

      test('on conflict it re-reads and re-applies the mutation (never the stale payload)', async (s) => {
        await s.put('race', 1);
        let calls = 0;
        const e = await s.update<number>('race', async (n) => {
          calls++;
          if (calls === 1) await s.put('race', 100);
          return (n as number) + 1;
        }, { combine: false });
        expect(calls).toBe(2);
        expect(e?.value).toBe(101);
      });

      test('the mutation gets a private copy', async (s) => {
        await s.put('priv', { n: 1 });
        await s.update<{ n: number }>('priv', (v) => {
          (v as { n: number }).n = 99;
          throw new Error('changed my mind');
        }).catch(() => undefined);
        expect((await s.get('priv'))?.value).toEqual({ n: 1 });
      });

      test('validation runs before the write: invalid → ValidationError, nothing stored, no retry', async (s) => {
        let calls = 0;
        const schema = {
          '~standard': {
            version: 1 as const, vendor: 'test',
            validate: (v: unknown) => (typeof v === 'number' && v >= 0 ? { value: v } : { issues: [{ message: 'must be a non-negative number' }] }),
          },
        };
        const err = await s.update<number>('val', () => (calls++, -1), { schema }).catch((x) => x);
        expect(ValidationError.is(err)).toBe(true);
        expect(err.issues[0].message).toMatch(/non-negative/);
        expect(calls).toBe(1);
        expect(await s.getRecord('val')).toBeNull();
        const err2 = await s.update<number>('val', () => 7, { validate: (v) => (v > 5 ? 'too big' : undefined) }).catch((x) => x);
        expect(err2).toMatchObject({ code: 'ERR_VALIDATION' });
        expect(await s.getRecord('val')).toBeNull();
        expect((await s.update<number>('val', () => 3, { schema }))?.value).toBe(3);
      });

      test('a mutation that throws fails at once with its own error', async (s) => {
        let calls = 0;
        const boom = new Error('boom');
        const err = await s.update('throws', () => { calls++; throw boom; }).catch((x) => x);
        expect(err).toBe(boom);
        expect(calls).toBe(1);
      });

      test('bounded by maxAttempts: RetryExhaustedError carries attempts and the last conflict', async (s) => {
        await s.put('ex', 0);
        const err = await s.update<number>('ex', async (n) => {
          await s.put('ex', -1);
          return (n as number) + 1;
        }, { maxAttempts: 3, combine: false }).catch((x) => x);
        expect(RetryExhaustedError.is(err)).toBe(true);
        expect(err).toMatchObject({ code: 'ERR_RETRY_EXHAUSTED', key: 'ex', attempts: 3, reason: 'attempts' });
        expect(ConflictError.is(err.lastError)).toBe(true);
        expect(toHttpStatus(err)).toBe(409);
      });

      test('bounded by deadlineMs and by an AbortSignal', async (s) => {
        await s.put('dl', 0);
        const conflict = async (n: number | undefined) => {
          await s.put('dl', -1);
          return (n as number) + 1;
        };
        // When the bound falls while a write is in flight, that write may still commit: the
        // truthful answer is then OutcomeUnknownError, whose cause says which bound fell.
        const exhausted = (err: RevkitError & { cause?: unknown }) => (OutcomeUnknownError.is(err) ? err.cause : err);
        const err = await s.update<number>('dl', conflict, { deadlineMs: 50, maxAttempts: 1e6, combine: false }).catch((x) => x);
        expect(exhausted(err)).toMatchObject({ code: 'ERR_RETRY_EXHAUSTED', reason: 'deadline' });
        const controller = new AbortController();
        setTimeout(() => controller.abort(), 50);
        const err2 = await s.update<number>('dl', conflict, { signal: controller.signal, maxAttempts: 1e6, deadlineMs: 60_000, combine: false }).catch((x) => x);
        expect(exhausted(err2)).toMatchObject({ code: 'ERR_RETRY_EXHAUSTED', reason: 'aborted' });
      });

      for (const [name, check] of Object.entries(raceChecks)) test(name, check);
    });

    describe('update(): what each caller is told, under injected faults', () => {
      for (const [name, check] of Object.entries(callerChecks)) test(name, check);

      test('combined updates: each caller gets its own result or its own error', async (s) => {
        await s.put('comb', 0);
        const results = await Promise.allSettled([
          s.update<number>('comb', (n) => (n as number) + 1),
          s.update<number>('comb', () => -5, { validate: (v) => v >= 0 }),
          s.update<number>('comb', () => { throw new Error('mine'); }),
          s.update<number>('comb', (n) => (n as number) + 10),
          s.update<number>('comb', () => SKIP),
        ]);
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled', 'fulfilled']);
        expect(((results[1] as PromiseRejectedResult).reason as RevkitError).code).toBe('ERR_VALIDATION');
        expect(((results[2] as PromiseRejectedResult).reason as Error).message).toBe('mine');
        expect((await s.get('comb'))?.value).toBe(11);
      });
    });

    describe('atomic()', () => {
      test('all checks pass and all writes apply together, with one revision', async (s) => {
        if (!s.capabilities.atomic) {
          expect(UnsupportedError.is(await s.atomic().set('a', 1).commit().catch((x) => x))).toBe(true);
          return;
        }
        const a = await s.put('acct/a', 10);
        await s.put('acct/c', 'old');
        const { revision } = await s.atomic().check('acct/a', a.revision).check('acct/b', null).set('acct/a', 5).set('acct/b', 5).delete('acct/c').commit();
        expect((await s.get('acct/a'))).toMatchObject({ value: 5, revision });
        expect((await s.get('acct/b'))).toMatchObject({ value: 5, revision });
        expect(await s.get('acct/c')).toBeNull();
        expect((await s.getRecord('acct/c'))?.revision).toBe(revision);
      });

      test('any failed check applies nothing, and the conflict lists every failed check', async (s) => {
        if (!s.capabilities.atomic) return;
        const a = await s.put('x/a', 1);
        const a2 = await s.put('x/a', 2);
        const b = await s.put('x/b', 1);
        const err = await s.atomic().check('x/a', a.revision).check('x/b', b.revision).check('x/c', 12345).set('x/b', 'no').set('x/d', 'no').commit().catch((e) => e);
        expect(ConflictError.is(err)).toBe(true);
        // A failed atomic commit is marked as such: HTTP 409 (POST /v1/txn), where a single-key precondition is 412.
        expect(err.atomic).toBe(true);
        expect(toHttpStatus(err)).toBe(409);
        const checks = [...err.checks].sort((p: { key: string }, q: { key: string }) => p.key.localeCompare(q.key));
        expect(checks).toEqual([
          { key: 'x/a', expected: a.revision, actual: a2.revision },
          { key: 'x/c', expected: 12345, actual: null },
        ]);
        expect((await s.get('x/b'))?.value).toBe(1);
        expect(await s.getRecord('x/d')).toBeNull();
      });
    });

    describe('list()', () => {
      test('live entries under a prefix in key order, paginated', async (s) => {
        for (const k of ['p/b', 'p/a', 'p/c/1', 'q/a', 'p/d', 'p/e']) await s.put(k, k);
        await s.delete('p/d');
        const all = await s.list({ prefix: 'p/' });
        expect(all.entries.map((e) => e.key)).toEqual(['p/a', 'p/b', 'p/c/1', 'p/e']);
        expect(all.cursor).toBeUndefined();
        const first = await s.list({ prefix: 'p/', limit: 2 });
        expect(first.entries.map((e) => e.key)).toEqual(['p/a', 'p/b']);
        const second = await s.list({ prefix: 'p/', limit: 2, after: first.cursor as string });
        expect(second.entries.map((e) => e.key)).toEqual(['p/c/1', 'p/e']);
        expect((await s.list({ prefix: 'p/', after: 'p/e' })).entries).toEqual([]);
        // A cursor before the prefix starts at the prefix; one after it ends the listing.
        expect((await s.list({ prefix: 'p/', after: 'a' })).entries.map((e) => e.key)).toEqual(['p/a', 'p/b', 'p/c/1', 'p/e']);
        expect((await s.list({ prefix: 'p/', after: 'p/c' })).entries.map((e) => e.key)).toEqual(['p/c/1', 'p/e']);
        expect((await s.list({ prefix: 'p/', after: 'q' })).entries).toEqual([]);
        expect((await s.list()).entries.length).toBe(5);
      });
    });

    describe('watch()', () => {
      test('from a revision: every later change exactly once, in order, deletes included', async (s) => {
        if (!s.capabilities.watch) return;
        const base = await s.put('w/0', 0);
        const controller = new AbortController();
        const written: Array<[string, number]> = [];
        for (let i = 1; i <= 5; i++) written.push([`w/${i % 2}`, (await s.put(`w/${i % 2}`, i)).revision]);
        written.push(['w/1', (await s.delete('w/1')) as number]);
        await s.put('other/x', 1);
        const seen: WatchEvent[] = [];
        const watching = (async () => {
          for await (const ev of s.watch({ prefix: 'w/', fromRevision: base.revision, signal: controller.signal })) {
            seen.push(ev);
            if (seen.length === 9) break;
          }
        })();
        for (let i = 6; i <= 8; i++) written.push([`w/${i % 2}`, (await s.put(`w/${i % 2}`, i)).revision]);
        await withTimeout(watching, 10_000, () => `watch saw ${JSON.stringify(seen.map((e) => [e.key, e.revision]))}`);
        controller.abort();
        expect(seen.map((e) => [e.key, e.revision])).toEqual(written);
        expect(seen[5]).toMatchObject({ type: 'delete', key: 'w/1' });
        expect(seen[0]).toMatchObject({ type: 'put', entry: { value: 1 } });
      });

      test('changes committed while the watch starts are delivered once', async (s) => {
        if (!s.capabilities.watch) return;
        const start = await s.put('ws/start', 0);
        const revs: number[] = [];
        const writes = (async () => {
          for (let i = 0; i < 50; i++) revs.push((await s.put(`ws/${i % 5}`, i)).revision);
        })();
        while (revs.length < 10) await sleepMs(1);
        const controller = new AbortController();
        const seen: number[] = [];
        const watching = (async () => {
          for await (const ev of s.watch({ prefix: 'ws/', fromRevision: start.revision, signal: controller.signal })) {
            seen.push(ev.revision);
            if (seen.length === 50) break;
          }
        })();
        await writes;
        await withTimeout(watching, 10_000, () => `saw ${seen.length} of 50`);
        expect(seen).toEqual(revs);
      });

      test('a backlog of over a thousand changes, two-key atomic commits included, arrives complete and in order', async (s) => {
        if (!s.capabilities.watch) return;
        const start = await s.put('bl/start', 0);
        // One lone change first, so that pages of a thousand end in the middle of a two-key commit.
        // 31 keys of each kind: about 20 revisions per key, within what any backend keeps per key.
        const written: Array<[string, number]> = [['bl/lone', (await s.put('bl/lone', 0)).revision]];
        for (let i = 0; i < 620; i++) {
          if (s.capabilities.atomic) {
            const { revision } = await s.atomic().set(`bl/a${i % 31}`, i).set(`bl/b${i % 31}`, i).commit();
            written.push([`bl/a${i % 31}`, revision], [`bl/b${i % 31}`, revision]);
          } else {
            written.push([`bl/a${i % 31}`, (await s.put(`bl/a${i % 31}`, i)).revision], [`bl/b${i % 31}`, (await s.put(`bl/b${i % 31}`, i)).revision]);
          }
        }
        const controller = new AbortController();
        const seen: Array<[string, number]> = [];
        await withTimeout((async () => {
          for await (const ev of s.watch({ prefix: 'bl/', fromRevision: start.revision, signal: controller.signal })) {
            seen.push([ev.key, ev.revision]);
            if (seen.length === written.length) break;
          }
        })(), 120_000, () => `saw ${seen.length} of ${written.length} changes`).finally(() => controller.abort());
        const byRevisionThenKey = (a: [string, number], b: [string, number]) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
        expect([...seen].sort(byRevisionThenKey)).toEqual([...written].sort(byRevisionThenKey));
        expect(seen.map((e) => e[1])).toEqual([...seen.map((e) => e[1])].sort((a, b) => a - b));
      }, Math.max(timeout, 300_000)); // a liveness bound only: 1,241 fsynced commits on a loaded machine

      test('headRevision(), where a store has it, is at or past every acknowledged write, and a watch from it misses nothing later', async (s) => {
        if (!s.headRevision) return;
        const before = await s.put('head/a', 1);
        const head = await s.headRevision();
        expect(head).toBeGreaterThanOrEqual(before.revision);
        const controller = new AbortController();
        const seen: WatchEvent[] = [];
        const watching = (async () => {
          for await (const ev of s.watch({ prefix: 'head/', fromRevision: head, signal: controller.signal })) {
            seen.push(ev);
            if (seen.length === 2) break;
          }
        })();
        const after = [await s.put('head/b', 2), await s.put('head/a', 3)];
        await watching;
        expect(seen.map((e) => e.revision)).toEqual(after.map((e) => e.revision));
        expect(await s.headRevision()).toBeGreaterThanOrEqual(after[1]!.revision);
      });

      test('watch of one key ignores others; aborting ends the iteration', async (s) => {
        if (!s.capabilities.watch) return;
        const controller = new AbortController();
        const seen: string[] = [];
        const iterating = (async () => {
          for await (const ev of s.watch({ key: 'one', signal: controller.signal })) {
            seen.push(`${ev.key}=${ev.type === 'put' ? String(ev.entry.value) : 'deleted'}`);
            if (seen.length === 2) controller.abort();
          }
        })();
        await sleepMs(300);
        await s.put('one-more', 1);
        await s.put('one', 'a');
        await s.put('onex', 2);
        await s.delete('one');
        await withTimeout(iterating, 10_000, () => `saw ${seen.join(',')}`);
        expect(seen).toEqual(['one=a', 'one=deleted']);
      });
    });

    describe('history()', () => {
      test('a tombstone in history carries the time of its delete', async (s) => {
        const put = await s.put('gone', 1);
        const revision = await s.delete('gone');
        const [tomb] = await s.history('gone');
        expect(tomb).toMatchObject({ key: 'gone', deleted: true, revision });
        expect(typeof tomb?.updatedAt).toBe('number');
        expect(tomb!.updatedAt!).toBeGreaterThanOrEqual(put.updatedAt);
        expect(tomb!.updatedAt!).toBeLessThan(put.updatedAt + 60_000);
      });

      test('past revisions newest first, tombstones included', async (s) => {
        if (!s.capabilities.history) return;
        const a = await s.put('h', 'a');
        const b = await s.put('h', 'b');
        const d = await s.delete('h');
        const c = await s.put('h', 'c');
        const hist = await s.history('h');
        expect(hist.map((r) => r.revision)).toEqual([c.revision, d, b.revision, a.revision]);
        expect(isTombstone(hist[1])).toBe(true);
        expect((hist[0] as Entry).value).toBe('c');
        expect((await s.history('h', { limit: 2 })).length).toBe(2);
        expect(await s.history('nothing')).toEqual([]);
      });
    });

    describe('ttl', () => {
      test('an expired key reads as absent and can be created again', async (s) => {
        if (!s.capabilities.ttl) {
          expect(UnsupportedError.is(await s.put('ttl', 1, { ttlMs: 100 }).catch((x) => x))).toBe(true);
          return;
        }
        const e = await s.put('ttl', 1, { ttlMs: 300 });
        expect(e.expiresAt).toBeGreaterThan(Date.now());
        expect((await s.get('ttl'))?.value).toBe(1);
        await sleepMs(600);
        expect(await s.get('ttl')).toBeNull();
        expect((await s.list({ prefix: 'ttl' })).entries).toEqual([]);
        expect((await s.put('ttl', 2, { ifAbsent: true })).value).toBe(2);
      });
    });

    describe('keys, values and errors', () => {
      test('every valid key works: unicode, emoji, separators, __proto__, constructor', async (s) => {
        const keys = ['__proto__', 'constructor', 'toString', 'a b', 'ключ/значение', 'emoji/😀', 'dots.and*stars>', 'x'.repeat(1024), 'é/日本/%2F/+', '🙂'.repeat(256)];
        for (const [i, k] of keys.entries()) await s.put(k, { i });
        for (const [i, k] of keys.entries()) expect((await s.get(k))?.value).toEqual({ i });
        expect((await s.list({ prefix: 'emoji/' })).entries.map((e) => e.key)).toEqual(['emoji/😀']);
        const listed = (await s.list({ limit: 100 })).entries.map((e) => e.key);
        expect(new Set(listed)).toEqual(new Set(keys));
      });

      test('invalid keys are refused with InvalidKeyError and write nothing', async (s) => {
        for (const bad of ['', 'a\u0000b', 'tab\there', 'new\nline', 'x'.repeat(1025), '😀'.repeat(257), 'lone\ud800', 42 as unknown as string]) {
          const err = await s.put(bad, 1).catch((x) => x);
          expect(InvalidKeyError.is(err)).toBe(true);
          expect(toHttpStatus(err)).toBe(400);
        }
        expect((await s.list()).entries).toEqual([]);
      });

      test('values: empty, null, nested, __proto__ keys round-trip; oversized → TooLargeError', async (s) => {
        const values: unknown[] = ['', null, 0, false, [], {}, { __proto__: null, a: 1 }, JSON.parse('{"__proto__": {"polluted": true}}'), { deep: [[[{ x: 'y' }]]] }];
        for (const [i, v] of values.entries()) {
          await s.put(`val/${i}`, v);
          expect((await s.get(`val/${i}`))?.value).toEqual(v);
        }
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        const big = 'x'.repeat(1024 * 1024 + 1);
        const err = await s.put('big', big).catch((x) => x);
        expect(TooLargeError.is(err)).toBe(true);
        expect(err.limit).toBe(1024 * 1024);
        expect(toHttpStatus(err)).toBe(413);
        expect(await s.getRecord('big')).toBeNull();
        const err2 = await s.put('undef', undefined).catch((x) => x);
        expect(ValidationError.is(err2)).toBe(true);
        expect(await s.getRecord('undef')).toBeNull();
      });

      test('values JSON cannot carry as given (NaN, Infinity, bigint, functions, undefined in arrays, cycles, Date) → ValidationError naming the path; nothing written', async (s) => {
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        const bad: [unknown, string[]][] = [
          [NaN, []], [{ n: Infinity }, ['n']], [{ a: [1, { b: -Infinity }] }, ['a', '1', 'b']], [{ big: 1n }, ['big']],
          [{ f: () => 1 }, ['f']], [[undefined], ['0']], [{ c: cyclic }, ['c', 'self']], [{ at: new Date(0) }, ['at']],
        ];
        const before = await s.put('faithful/kept', { n: 1 });
        for (const [i, [value, path]] of bad.entries()) {
          for (const attempt of [() => s.put(`faithful/${i}`, value), () => s.update(`faithful/${i}`, () => value), () => s.update('faithful/kept', () => value)]) {
            const err = await attempt().catch((x) => x);
            expect(ValidationError.is(err), String(err)).toBe(true);
            expect(toHttpStatus(err)).toBe(422);
            expect((err as ValidationError).issues[0]?.path?.map(String)).toEqual(path);
          }
          expect(await s.getRecord(`faithful/${i}`)).toBeNull();
        }
        expect(await s.get('faithful/kept')).toMatchObject({ value: { n: 1 }, revision: before.revision });
        // What reads back as given is stored: a JS number need not be a safe integer; -0 is stored as 0.
        await s.put('faithful/ok', { n: 2 ** 60, z: -0, gone: undefined });
        expect((await s.get('faithful/ok'))?.value).toEqual({ n: 2 ** 60, z: 0 });
      });

      test('every error is a RevkitError with a stable code', async (s) => {
        const errors = await Promise.all([
          s.put('', 1).catch((x) => x),
          s.put('e', 1, { ifRevision: 99 }).catch((x) => x),
          s.put('e', 1, { ttlMs: -5 }).catch((x) => x),
          s.list({ limit: 0 }).catch((x) => x),
        ]);
        expect(errors.map((e) => e.code)).toEqual(['ERR_INVALID_KEY', 'ERR_CONFLICT', 'ERR_INVALID_ARGUMENT', 'ERR_INVALID_ARGUMENT']);
        for (const e of errors) expect(RevkitError.is(e)).toBe(true);
        expect(RevkitError.is(new Error('plain'))).toBe(false);
        expect(BackendError.is(errors[0])).toBe(false);
      });

      test('close is idempotent; operations after close fail with ERR_CLOSED', async (s) => {
        await s.put('c', 1);
        await s.close();
        await s.close();
        const err = await s.get('c').catch((x) => x);
        expect(ClosedError.is(err)).toBe(true);
      });
    });

    if (target.url) {
      const makeUrl = target.url;
      describe('multi-process', () => {
        it('4 processes × 16 update() writers incrementing counters lose nothing', async () => {
          const url = await makeUrl();
          const { openTarget } = await import('./open-target.js');
          const checker = await openTarget(url);
          try {
            // CI size (the canary store is caught at it: test/canary.test.ts); `npm run soak`
            // (bench/soak/counters.mjs) runs 20,000 with REVKIT_MP_INCREMENTS.
            const increments = Number(process.env.REVKIT_MP_INCREMENTS ?? CI_MULTI_PROCESS_INCREMENTS);
            const report = await runMultiProcessCounters(url, checker, { processes: 4, writers: 16, increments, ...target.multiProcess });
            expect({ lost: report.lost, duplicated: report.duplicated, failed: report.failed, errors: report.errors }).toEqual({ lost: 0, duplicated: 0, failed: 0, errors: [] });
            expect(report.succeeded).toBe(report.increments);
            console.log(`[${target.name}] multi-process: ${report.processes}×${report.writersPerProcess} writers, ${report.succeeded} increments in ${(report.elapsedMs / 1000).toFixed(1)} s, ${(report.attempts / report.succeeded).toFixed(2)} attempts per commit`);
          } finally {
            await checker.close();
          }
        }, 300_000);
      });
    }
  });
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function withTimeout<T>(p: Promise<T>, ms: number, describe: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${describe()}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
