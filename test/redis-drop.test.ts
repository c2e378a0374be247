import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { InvalidArgumentError } from '../src/core/index.js';
import { RedisStore, dropRedisStore } from '../src/redis/index.js';
import { REDIS_URL, dropStoresAfterAll, freshPrefix, storeKeys } from './redis-helpers.js';

dropStoresAfterAll();

/**
 * dropRedisStore on the machine's Redis: a prefix holding glob characters
 * (which RedisStore accepts) must delete that store only. Every prefix here
 * starts with a unique literal part, so even the old, unescaped pattern
 * could only ever reach this test's own stores.
 */
describe('dropRedisStore matches the prefix literally', () => {
  // [the store dropped, its neighbour that must survive]
  const pairs: Array<[string, string]> = [
    ['a*', 'ab'],
    ['a?', 'ax'],
    ['a[b]', 'ab'],
    ['a[a-z]', 'am'],
    ['a\\', 'a'], // `\}` in a pattern is a literal `}`: the old pattern matched the store `a`
    ['a\\*', 'a\\x'], // the old pattern's `\*` is a literal `*`: it deleted nothing of the store itself
  ];

  for (const [glob, plain] of pairs) {
    it(`dropping "${glob}" deletes exactly its own keys and leaves the store "${plain}" whole`, async () => {
      const base = freshPrefix('glob');
      const dropped = `${base}${glob}`;
      const neighbour = `${base}${plain}`;
      const admin = new Redis(REDIS_URL);
      const a = await RedisStore.fromClient(admin, { prefix: dropped, sweepIntervalMs: 0 });
      const b = await RedisStore.fromClient(admin, { prefix: neighbour, sweepIntervalMs: 0 });
      try {
        await a.put('k', 'a');
        await b.put('k', 'b');
        await b.atomic().set('x/1', 1).set('x/2', 2).commit();
        const before = (await storeKeys(admin, neighbour)).sort();
        const mine = await storeKeys(admin, dropped);
        expect(before.length).toBeGreaterThanOrEqual(5);
        expect(mine.length).toBeGreaterThanOrEqual(5);

        expect(await dropRedisStore(admin, { prefix: dropped })).toBe(mine.length);

        expect(await storeKeys(admin, dropped)).toEqual([]);
        expect((await storeKeys(admin, neighbour)).sort()).toEqual(before);
        expect((await b.get('k'))?.value).toBe('b');
        expect((await b.get('x/2'))?.value).toBe(2);
      } finally {
        await a.close();
        await b.close();
        await dropRedisStore(admin, { prefix: dropped }).catch(() => undefined);
        await dropRedisStore(admin, { prefix: neighbour }).catch(() => undefined);
        admin.disconnect();
      }
    });
  }

  it('a prefix no store can have (empty, with { or }) is refused, not turned into a pattern', async () => {
    const admin = new Redis(REDIS_URL);
    try {
      for (const prefix of ['', 'a{b', 'a}:h:x', '}']) {
        const err = await dropRedisStore(admin, { prefix }).catch((e) => e);
        expect(InvalidArgumentError.is(err)).toBe(true);
        expect(err.code).toBe('ERR_INVALID_ARGUMENT');
      }
    } finally {
      admin.disconnect();
    }
  });
});
