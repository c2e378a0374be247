import { describe, expect } from 'vitest';
import { ConflictError, UnsupportedError, toHttpStatus } from '../../core/index.js';
import type { RegisterStoreTest } from './harness.js';

export function describeAtomic(test: RegisterStoreTest): void {
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
}
