/**
 * Restarts a private PostgreSQL (immediate stop: SIGQUIT to the postmaster,
 * then start on the same port and data) in the middle of a multi-process
 * counter workload, with a watcher and a default-options update() loop
 * running across the outage. The machine's own PostgreSQL is never touched.
 * Run after `npm run build` (the workers run dist/).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, ConflictError, type WatchEvent } from '../../dist/core/index.js';
import { PostgresStore } from '../../dist/postgres/index.js';
import { runMultiProcessCounters } from '../../dist/testing/index.js';
import { startPrivatePostgres, type PrivateServer } from '../support/servers.js';

const prefix = `rk_restart_${process.pid.toString(36)}_${Date.now().toString(36)}_`;
let server: PrivateServer;

beforeAll(async () => {
  server = await startPrivatePostgres();
}, 120_000);

afterAll(async () => {
  await server?.stop();
}, 120_000);

describe('postgres restart', () => {
  it('immediate stop + start during a multi-process workload: no acknowledged write lost, none doubled, update() rides it out', async () => {
    // A writer whose acknowledgement the restart cut looks for its token in the key's history once the server is back;
    // other processes may move the key on by more than the default 64 kept versions meanwhile, and then the honest
    // answer is ERR_OUTCOME_UNKNOWN (seen in CI). Keeping 2,000 lets the test require that every cut write is resolved.
    const url = `${server.url}?prefix=${prefix}&historyDepth=2000`;
    const verify = await PostgresStore.fromUrl(url);
    const watcher = await PostgresStore.fromUrl(url);
    const solo = await PostgresStore.fromUrl(url);
    const controller = new AbortController();
    const events: WatchEvent[] = [];
    try {
      const from = (await verify.put('start', 0)).revision;
      const watching = (async () => {
        for await (const ev of watcher.watch({ prefix: 'rs/', fromRevision: from, signal: controller.signal })) events.push(ev);
      })();
      // In-process update() with default options (maxAttempts 64, deadline 30 s) all through the outage.
      const soloErrors: unknown[] = [];
      let soloDone = 0;
      let stopSolo = false;
      const soloLoop = (async () => {
        while (!stopSolo) {
          await solo.update<number>('solo', (n) => (n ?? 0) + 1, { onRetry: (i) => soloErrors.push(i.error) });
          soloDone++;
        }
      })();
      const workload = runMultiProcessCounters(url, verify, { processes: 4, writers: 8, increments: 6000, keys: 8, keyPrefix: 'rs/', maxAttempts: 10_000, deadlineMs: 120_000 });
      // Restart once every worker process is surely connected and writing: a quarter of
      // the increments committed (open() itself fails fast when no server is up).
      const restartAt = Date.now() + 90_000;
      while (events.length < 1500 && Date.now() < restartAt) await new Promise((r) => setTimeout(r, 50));
      await server.kill('SIGQUIT');
      await new Promise((r) => setTimeout(r, 1500));
      await server.restart();
      const report = await workload;
      stopSolo = true;
      await soloLoop;
      expect({ lost: report.lost, duplicated: report.duplicated, failed: report.failed, errors: report.errors }).toEqual({ lost: 0, duplicated: 0, failed: 0, errors: [] });
      expect(report.succeeded).toBe(6000);
      expect((await verify.get('solo'))?.value).toBe(soloDone);
      // Errors seen during the outage were transient BackendErrors (or ordinary conflicts).
      expect(soloErrors.length).toBeGreaterThan(0);
      for (const e of soloErrors) expect((BackendError.is(e) && e.transient) || ConflictError.is(e)).toBe(true);
      // The watcher survived the restart and saw every committed increment exactly once.
      const stored = Object.values(report.perKey).reduce((sum, k) => sum + k.stored, 0);
      const deadline = Date.now() + 30_000;
      while (events.length < stored && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 300));
      controller.abort();
      await watching;
      expect(new Set(events.map((e) => `${e.key}@${e.revision}`)).size).toBe(events.length);
      const perKey: Record<string, number> = {};
      for (const e of events) perKey[e.key] = (perKey[e.key] ?? 0) + 1;
      for (const [key, k] of Object.entries(report.perKey)) expect(perKey[key] ?? 0).toBe(k.stored);
      console.log(`[postgres restart] ${report.succeeded} increments in ${(report.elapsedMs / 1000).toFixed(1)} s across the restart, ${(report.attempts / report.succeeded).toFixed(2)} attempts per commit; solo update() ${soloDone} ok with ${soloErrors.length} retries; watcher saw ${events.length} changes`);
    } finally {
      controller.abort();
      await Promise.all([verify.close(), watcher.close(), solo.close()].map((p) => p.catch(() => undefined)));
    }
  }, 240_000);
});
