import { describe, expect, it } from 'vitest';
import { RevkitError } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { ADMIN, servedStore, startServer } from './server-helpers.js';
import { HttpStore } from '../src/http/index.js';
import { serve } from './support/revkit-process.js';

const nested = (depth: number): unknown => (depth === 0 ? 1 : [nested(depth - 1)]);

/**
 * Review round 2 (2026-12-06): HttpStore combined concurrent update()s of one key, and a value a later
 * caller's replaced was never sent — so a refusal only the server can make (its validate hook, its
 * store's own limit) became a success for that caller, and the next mutation built on the value.
 * Over HTTP an update() now runs its own loop unless the server says its limits are all it refuses a
 * value for (GET /v1/info combinableUpdates); then the client checks each replaced value against them.
 */
const outcome = (r: PromiseSettledResult<unknown>) => (r.status === 'fulfilled' ? 'ok' : (r.reason as RevkitError).code);

describe('HttpStore: concurrent update()s of one key are each told what the server tells them', () => {
  it('the server\'s validate hook refuses the middle one: that caller gets ERR_VALIDATION, the next builds on the first', async () => {
    const store = await servedStore('memory:', { validate: (_key, value) => (value === 'bad' ? 'no bad values' : undefined) });
    try {
      const results = await Promise.allSettled([
        store.update('k', () => 'good'),
        store.update('k', () => 'bad'),
        store.update('k', (v) => `after ${String(v)}`, { default: 'nothing' }),
      ]);
      expect(results.map(outcome)).toEqual(['ok', 'ERR_VALIDATION', 'ok']);
      expect(['after good', 'good']).toContain((await store.get('k'))?.value);
      expect(JSON.stringify((await store.history('k')).map((r) => (r as { value?: unknown }).value))).not.toContain('bad');
    } finally {
      await store.close();
    }
  });

  it('a store whose own limit the server does not report (100 bytes): the oversized one gets ERR_TOO_LARGE', async () => {
    const store = await servedStore('memory:', { store: new MemoryStore({ maxValueBytes: 100 }) });
    try {
      const results = await Promise.allSettled([
        store.update('k', () => 'small'),
        store.update('k', () => 'x'.repeat(200)),
        store.update('k', () => 'last'),
      ]);
      expect(results.map(outcome)).toEqual(['ok', 'ERR_TOO_LARGE', 'ok']);
    } finally {
      await store.close();
    }
  });

  it('a server whose limits are all it checks: update()s combine (one revision for many callers), and a replaced value over a limit is refused as alone', async () => {
    const store = await servedStore('memory:', { limits: { maxValueBytes: 100, maxJsonDepth: 8 } });
    try {
      await store.put('n', 0);
      const increments = await Promise.all(Array.from({ length: 16 }, () => store.update<number>('n', (v) => (v as number) + 1)));
      expect((await store.get('n'))?.value).toBe(16);
      expect(new Set(increments.map((e) => e?.revision)).size).toBeLessThan(16);
      const results = await Promise.allSettled([
        store.update('k', () => 'small'),
        store.update('k', () => 'x'.repeat(200)),
        store.update('k', () => nested(20)),
        store.update('k', (v) => ({ seen: v ?? null })),
      ]);
      expect(results.map(outcome)).toEqual(['ok', 'ERR_TOO_LARGE', 'ERR_INVALID_ARGUMENT', 'ok']);
      expect((await store.get('k'))?.value).toEqual({ seen: 'small' });
      // Alone, the server answers the same.
      expect((await Promise.allSettled([store.update('alone', () => nested(20))])).map(outcome)).toEqual(['ERR_INVALID_ARGUMENT']);
    } finally {
      await store.close();
    }
  });

  it('review round 4: a replaced value is checked in the order the server checks a PUT (body limit, depth, value limit)', async () => {
    const store = await servedStore('memory:', { limits: { maxValueBytes: 100, maxJsonDepth: 8, maxBodyBytes: 1000 } });
    try {
      const deepAndLarge = nested(20);
      (deepAndLarge as unknown[]).push('x'.repeat(200));
      const overBody = 'y'.repeat(2000);
      const alone = await Promise.allSettled([store.update('a1', () => deepAndLarge)]);
      const alone2 = await Promise.allSettled([store.update('a2', () => overBody)]);
      const combined = await Promise.allSettled([store.update('c', () => deepAndLarge), store.update('c', () => overBody), store.update('c', () => 'last')]);
      expect(combined.map(outcome)).toEqual([...alone.map(outcome), ...alone2.map(outcome), 'ok']);
      expect(((combined[1] as PromiseRejectedResult).reason as Error).message).toBe(((alone2[0] as PromiseRejectedResult).reason as Error).message);
    } finally {
      await store.close();
    }
  });

  it('review round 4: several servers (replicas may differ) — no combining; a client made without fromUrl checks without throwing a TypeError', async () => {
    const a = await startServer({ store: 'memory:' });
    const b = await startServer({ store: 'memory:' });
    const store = await HttpStore.fromUrl(`${a.url},${b.url}?token=${ADMIN}`);
    try {
      await store.put('n', 0);
      const increments = await Promise.all(Array.from({ length: 8 }, () => store.update<number>('n', (v) => (v as number) + 1)));
      expect(new Set(increments.map((e) => e?.revision)).size).toBe(8);
      const direct = new HttpStore({ url: a.url, token: ADMIN });
      expect(direct.checkValue({ x: 1 })).toEqual({ x: 1 });
      await direct.close();
    } finally {
      await store.close();
      await a.server.close();
      await b.server.close();
    }
  });

  it('review round 4: `revkit serve` (the CLI) tells clients they may combine', async () => {
    const s = await serve(['--store', 'memory:', '--port', '0', '--admin-token', ADMIN]);
    if (!s.started) throw new Error(`serve did not start: ${s.stderr}`);
    try {
      const info = (await (await fetch(`${s.url}/v1/info`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { combinableUpdates?: boolean };
      expect(info.combinableUpdates).toBe(true);
    } finally {
      await s.stop();
    }
  });

  it('review round 5: a client told a larger body limit than the server\'s still checks a replaced value against the server\'s', async () => {
    const { server, url } = await startServer({ store: 'memory:', limits: { maxValueBytes: 100_000, maxBodyBytes: 2_000 } });
    const store = await HttpStore.fromUrl(`${url}?token=${ADMIN}`, { maxBodyBytes: 10_000_000 });
    try {
      const alone = await Promise.allSettled([store.update('a', () => 'b'.repeat(5000))]);
      const combined = await Promise.allSettled([store.update('c', () => 'b'.repeat(5000)), store.update('c', () => 'small')]);
      expect(combined.map(outcome)).toEqual([...alone.map(outcome), 'ok']);
      expect(((combined[0] as PromiseRejectedResult).reason as Error).message).toBe(((alone[0] as PromiseRejectedResult).reason as Error).message);
    } finally {
      await store.close();
      await server.close();
    }
  });
});
