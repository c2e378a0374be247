import { describe, expect } from 'vitest';
import { ConflictError, OutcomeUnknownError, RetryExhaustedError, RevkitError, SKIP, ValidationError, toHttpStatus } from '../../core/index.js';
import { raceChecks } from '../race-checks.js';
import { callerChecks } from '../caller-checks.js';
import { neighbourChecks } from '../neighbour-checks.js';
import type { RegisterStoreTest } from './harness.js';

export function describeUpdate(test: RegisterStoreTest): void {
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
}

export function describeUpdateUnderFaults(test: RegisterStoreTest): void {
  describe('update(): what each caller is told, under injected faults', () => {
    for (const [name, check] of Object.entries(callerChecks)) test(name, check);
    for (const [name, check] of Object.entries(neighbourChecks)) test(name, check);

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

    test('combined updates: a value a later caller replaces is refused as it would be alone (too large, not JSON)', async (s) => {
      const replace = (v: unknown) => () => v;
      const results = await Promise.allSettled([
        s.update('over', replace({ n: 1 })),
        s.update('over', replace({ big: 'x'.repeat(1024 * 1024 + 1) })),
        s.update('over', replace({ nan: Number.NaN })),
        s.update('over', (v) => ({ seen: v ?? null })),
        s.update('over', replace({ last: 1 })),
      ]);
      expect(results.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as RevkitError).code))).toEqual(['ok', 'ERR_TOO_LARGE', 'ERR_VALIDATION', 'ok', 'ok']);
      // The refused values were never the state: the caller after them saw the one before them
      // (HttpStore does not combine: there each caller runs its own loop, in no promised order).
      if (s.backend === 'http') return;
      expect((results[3] as PromiseFulfilledResult<unknown>).value).toMatchObject({ value: { seen: { n: 1 } } });
      expect((await s.get('over'))?.value).toEqual({ last: 1 });
    });

    test('combined updates: each caller gets an entry of its own, its value as a read returns it (review round 2)', async (s) => {
      const shared = { n: 1, z: -0 };
      const [a, b, c] = await Promise.all([s.update('own', () => shared), s.update('own', () => shared), s.update('own', () => ({ last: true }))]);
      expect(a).not.toBe(b);
      expect(a?.value).not.toBe(shared);
      expect(a?.value).not.toBe(b?.value);
      (a?.value as { n: number }).n = 99;
      expect(b?.value).toEqual({ n: 1, z: 0 });
      // JSON has no -0: alone the caller reads back 0, and so it does combined.
      expect(Object.is((a?.value as { z: number }).z, -0)).toBe(false);
      expect(c?.value).toEqual({ last: true });
    });
  });
}
