import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareIds } from '../src/redis/waker.js';

const part = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

describe('redis stream ids', () => {
  it('compareIds orders ids as their numbers do, parts up to 2^64 - 1', () => {
    fc.assert(fc.property(part, part, part, part, (am, as, bm, bs) => {
      const expected = am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
      expect(compareIds(`${am}-${as}`, `${bm}-${bs}`)).toBe(expected);
      expect(compareIds(`${am}-${as}`, `${am}-${as}`)).toBe(0);
    }), { numRuns: 2000 });
    expect(compareIds('9-18446744073709551615', '10-0')).toBe(-1);
    expect(compareIds('1700000000000-5', '1700000000000-12')).toBe(-1);
  });
});
