import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { RevkitError } from '../src/core/index.js';
import { NatsStore } from '../src/nats/index.js';
import { NATS_PORT, natsBucketsThisFileMakes } from './support/nats-buckets.js';

const made = natsBucketsThisFileMakes();
const outcome = (r: PromiseSettledResult<unknown>) => (r.status === 'fulfilled' ? 'ok' : (r.reason as RevkitError).code);

/**
 * Review round 2 (2026-12-06): a value under maxValueBytes but over NATS' message limit once its
 * headers count was refused alone (TooLargeError) and passed as a combined update()'s value that a
 * later caller's replaced — its caller told success, the next mutation built on it.
 */
describe('nats: combined update()s and the message limit with headers', () => {
  it('the value over the limit with headers is refused in a combined write as alone; the next builds on the one before', async () => {
    const bucket = `rk_climit_${process.pid}_${randomBytes(4).toString('hex')}`;
    made.push(bucket);
    const store = await NatsStore.fromUrl(`nats://127.0.0.1:${NATS_PORT}?bucket=${bucket}`);
    try {
      const big = 'x'.repeat(1024 * 1024 - 100);
      expect((await Promise.allSettled([store.update('alone', () => big)])).map(outcome)).toEqual(['ERR_TOO_LARGE']);
      const results = await Promise.allSettled([
        store.update('k', () => 'small'),
        store.update('k', () => big),
        store.update('k', (v) => ({ seenLength: (v as string).length })),
      ]);
      expect(results.map(outcome)).toEqual(['ok', 'ERR_TOO_LARGE', 'ok']);
      expect((await store.get('k'))?.value).toEqual({ seenLength: 'small'.length });
    } finally {
      await store.close();
    }
  });
});
