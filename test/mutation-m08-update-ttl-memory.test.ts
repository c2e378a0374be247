// M08 (src/core/update-now.ts): an update() with its own ttlMs (or retry policy) is not combined and, on memory,
// runs at once with its own policy. Its write must carry the TTL: the key expires (DESIGN §3 put/update ttlMs).
import { expect, it } from 'vitest';
import { MemoryStore } from '../src/memory/index.js';

it('M08: memory update({ ttlMs }) writes a value that expires', async () => {
  const s = new MemoryStore({ sweepIntervalMs: 20 });
  const e = await s.update<number>('session', () => 1, { ttlMs: 50 });
  await new Promise((r) => setTimeout(r, 150));
  const later = await s.get('session');
  console.log('M08: update answered', JSON.stringify(e), '| 150 ms later get() ->', JSON.stringify(later));
  expect(e?.expiresAt).toBeDefined();
  expect(later).toBeNull();
  await s.close();
});
