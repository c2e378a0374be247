import { describeConformance } from '../src/testing/vitest.js';
import { REDIS_URL, dropStoresAfterAll, freshPrefix, freshStore } from './redis-helpers.js';

dropStoresAfterAll();

describeConformance({
  name: 'redis',
  create: () => freshStore({ sweepIntervalMs: 50 }),
  url: async () => `${REDIS_URL}?prefix=${freshPrefix('mp')}`,
  timeoutMs: 30_000,
});
