import { describeConformance } from '../src/testing/vitest.js';
import { servedStore, storeTargets } from './server-helpers.js';

// The whole store contract, through HttpStore → HTTP → server → each backend.
for (const target of await storeTargets()) {
  describeConformance({ name: `http → ${target.name}`, create: () => servedStore(target.url()), timeoutMs: 30_000 });
}
