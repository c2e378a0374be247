import { describe, expect } from 'vitest';
import { ConflictError, InvalidArgumentError } from '../../core/index.js';
import type { RegisterStoreTest } from './harness.js';

export function describeConditions(test: RegisterStoreTest): void {
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
}
