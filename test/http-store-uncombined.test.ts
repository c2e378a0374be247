import { describe, expect, it } from 'vitest';
import { RevkitError } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { servedStore } from './server-helpers.js';

/**
 * Review round 2 (2026-12-06): HttpStore combined concurrent update()s of one key, and a value a later
 * caller's replaced was never sent — so a refusal only the server can make (its validate hook, its
 * store's own limit) became a success for that caller, and the next mutation built on the value.
 * Over HTTP each update() now runs its own loop: each caller is told what it would be told alone.
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
});
