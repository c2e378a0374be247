import { describe, expect, it } from 'vitest';
import { RevkitError } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { servedStore } from './server-helpers.js';

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
});
