import { describeConformance } from '../src/testing/vitest.js';
import { servedStore, storeTargets } from './server-helpers.js';
import { REDIS_URL, dropStoresAfterAll, freshPrefix } from './redis-helpers.js';

// The whole store contract, through HttpStore → HTTP → server → each backend.
for (const target of await storeTargets()) {
  describeConformance({ name: `http → ${target.name}`, create: () => servedStore(target.url()), timeoutMs: 30_000 });
}

dropStoresAfterAll();
describeConformance({ name: 'http → redis', create: () => servedStore(`${REDIS_URL}?prefix=${freshPrefix('srv')}`), timeoutMs: 30_000 });
