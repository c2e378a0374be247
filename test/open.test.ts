import { describe, expect, it } from 'vitest';
import { open } from '../src/open.js';
import { createServer } from '../src/server/index.js';

describe('open(url)', () => {
  it('refuses an unknown scheme or a malformed URL with ERR_INVALID_ARGUMENT', async () => {
    for (const bad of ['', 'mongodb://x', 'no-scheme', 'postgres://[bad']) {
      const err = await open(bad).catch((e) => e);
      expect(err.code, bad).toBe('ERR_INVALID_ARGUMENT');
    }
  });

  it('opens memory: and a revkit server by http:// URL', async () => {
    const server = await createServer({ store: 'memory:', adminToken: 'a-long-enough-admin-token' });
    await server.listen({ host: '127.0.0.1', port: 0 });
    try {
      const remote = await open(`${server.url}?token=a-long-enough-admin-token`);
      const e = await remote.put('via/http', { ok: true }, { ifAbsent: true });
      expect((await remote.update<{ ok: boolean; n?: number }>('via/http', (v) => ({ ...v!, n: 1 })))?.revision).toBeGreaterThan(e.revision);
      expect((await server.store.get('via/http'))?.value).toEqual({ ok: true, n: 1 });
      await remote.close();
    } finally {
      await server.close();
    }
  });
});
