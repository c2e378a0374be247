/**
 * update() may start from what this process's last update() of the key wrote instead of reading it
 * (src/core/last-writes.ts): every case here is a way that guess can be wrong, and checks the caller is
 * told what a fresh read would have told it. Two store objects on one store stand for two processes.
 * On every backend (SQLite and memory decide inside their write and never guess: the cases hold there too).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { open } from '../src/open.js';
import { SKIP, type Store } from '../src/core/index.js';
import { backends } from './checkpoints-backends.js';

const opened: Store[] = [];
afterAll(async () => {
  for (const s of opened) await s.close().catch(() => undefined);
});
async function twoProcesses(url: string): Promise<[Store, Store]> {
  const a = await open(url);
  const b = await open(url);
  opened.push(a, b);
  return [a, b];
}
const increment = (n: number | null) => (n ?? 0) + 1;

for (const backend of backends('last-write')) {
  describe(`update() after its own write, on ${backend.name}`, () => {
    it.skipIf(!backend.crossProcess)('another process wrote since: the update builds on its value, not on ours (no lost update)', async () => {
      const [a, b] = await twoProcesses(backend.freshUrl());
      await a.update('n', increment);
      await b.put('n', 100);
      expect((await a.update('n', increment))?.value).toBe(101);
      await b.delete('n');
      expect((await a.update('n', increment))?.value).toBe(1);
      expect((await b.get('n'))?.value).toBe(1);
    });

    it.skipIf(!backend.crossProcess)('a mutation that SKIPs or throws decides on the value as it is, not on our last write', async () => {
      const [a, b] = await twoProcesses(backend.freshUrl());
      await a.update('job', () => ({ state: 'open' }));
      await b.put('job', { state: 'closed' });
      // On our last write ('open') this throws; on the value as it is it SKIPs.
      const seen = await a.update<{ state: string }>('job', (job) => {
        if (job?.state === 'closed') return SKIP;
        throw new Error(`still ${job?.state}`);
      });
      expect(seen?.value).toEqual({ state: 'closed' });
      await a.update('job', () => ({ state: 'open' }));
      await b.put('job', { state: 'done' });
      // On our last write this SKIPs; on the value as it is it throws.
      const err = await a.update<{ state: string }>('job', (job) => {
        if (job?.state === 'open') return SKIP;
        throw new Error(`found ${job?.state}`);
      }).then(() => 'answered', (e: unknown) => e);
      expect(String(err)).toMatch(/found done/);
    });

    it('an entry the caller was answered with and then changed is not what the next update starts from', async () => {
      const [a] = await twoProcesses(backend.freshUrl());
      const answered = await a.update<{ n: number }>('obj', () => ({ n: 1 }));
      (answered?.value as { n: number }).n = 999;
      expect((await a.update<{ n: number }>('obj', (v) => ({ n: (v?.n ?? 0) + 1 })))?.value).toEqual({ n: 2 });
    });

    it('a value written with a TTL that expired is absent to the next update', async () => {
      const [a] = await twoProcesses(backend.freshUrl());
      if (!a.capabilities.ttl) return;
      await a.update('lease', increment, { ttlMs: 200 });
      // However long the expiry takes to show: a state, not a time.
      while ((await a.get('lease')) !== null) await new Promise((r) => setTimeout(r, 50));
      expect((await a.update('lease', increment))?.value).toBe(1);
    });

    it('a put of the key by this process in between: the update builds on the put', async () => {
      const [a] = await twoProcesses(backend.freshUrl());
      await a.update('n', increment);
      await a.put('n', 50);
      expect((await a.update('n', increment))?.value).toBe(51);
    });
  });
}
