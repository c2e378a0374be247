import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ADMIN, startServer, storeTargets } from './server-helpers.js';

// Needs `npm run build` (the worker imports dist/server).
const worker = fileURLToPath(new URL('./fixtures/http-counter-worker.mjs', import.meta.url));
const PROCESSES = 4;
const WRITERS = 16;
// CI size; `npm run soak` (bench/soak/counters.mjs) runs 4,000 with REVKIT_HTTP_MP_INCREMENTS.
const INCREMENTS = Number(process.env.REVKIT_HTTP_MP_INCREMENTS ?? 600);
const KEYS = Number(process.env.REVKIT_MP_KEYS ?? 16);

function run(config: object): Promise<{ succeeded: Record<string, number>; failed: number; errors: string[]; retries: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [worker, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`worker exited with ${code}: ${err}`));
      resolve(JSON.parse(out.trim().split('\n').pop() as string));
    });
  });
}

describe('the same check catches the canary: blind GET → PUT loops (no If-Match) through the server', () => {
  it(`${PROCESSES} client processes × ${WRITERS} loops at the CI size lose increments`, async () => {
    const { server, url } = await startServer({ store: 'memory:' });
    try {
      const keys = Array.from({ length: KEYS }, (_, i) => `mp/counter-${i}`);
      const startAt = Date.now() + 1000;
      const results = await Promise.all(Array.from({ length: PROCESSES }, (_, i) =>
        run({ url, token: ADMIN, keys, writers: WRITERS, increments: INCREMENTS / PROCESSES + (i < INCREMENTS % PROCESSES ? 1 : 0), startAt, blind: true })));
      let acknowledged = 0;
      let stored = 0;
      for (const key of keys) {
        acknowledged += results.reduce((s, r) => s + (r.succeeded[key] ?? 0), 0);
        stored += (await server.store.get<number>(key))?.value ?? 0;
      }
      expect(acknowledged).toBe(INCREMENTS);
      expect(stored).toBeLessThan(acknowledged);
    } finally {
      await server.close();
    }
  }, 300_000);
});

for (const target of await storeTargets()) {
  describe(`multi-process through the server → ${target.name}`, () => {
    it(`${PROCESSES} client processes × ${WRITERS} concurrent If-Match increment loops lose nothing`, async () => {
      const { server, url } = await startServer({ store: target.url() });
      try {
        const keys = Array.from({ length: KEYS }, (_, i) => `mp/counter-${i}`);
        const startAt = Date.now() + 1000;
        const started = performance.now();
        const results = await Promise.all(Array.from({ length: PROCESSES }, (_, i) =>
          run({ url, token: ADMIN, keys, writers: WRITERS, increments: INCREMENTS / PROCESSES + (i < INCREMENTS % PROCESSES ? 1 : 0), startAt })));
        const elapsed = (performance.now() - started - 1000) / 1000;
        const failed = results.reduce((s, r) => s + r.failed, 0);
        expect({ failed, errors: results.flatMap((r) => r.errors) }).toEqual({ failed: 0, errors: [] });
        let total = 0;
        for (const key of keys) {
          const succeeded = results.reduce((s, r) => s + (r.succeeded[key] ?? 0), 0);
          total += succeeded;
          expect({ key, stored: (await server.store.get<number>(key))?.value ?? 0 }).toEqual({ key, stored: succeeded });
        }
        expect(total).toBe(INCREMENTS);
        const retries = results.reduce((s, r) => s + r.retries, 0);
        const metrics = server.metrics.render();
        expect(metrics).toMatch(/revkit_http_requests_total\{route="\/v1\/kv\/\*",method="PUT",status="412"\} \d+/);
        console.log(`[${target.name}] ${PROCESSES}×${WRITERS} HTTP writers: ${INCREMENTS} increments in ${elapsed.toFixed(1)} s, ${retries} retries on 412`);
      } finally {
        await server.close();
      }
    }, 300_000);
  });
}
