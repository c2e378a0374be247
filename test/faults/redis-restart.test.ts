/**
 * Kills a private redis-server (SIGKILL; append-only file with appendfsync
 * always, so an acknowledged write is on disk) and starts it again on the
 * same port and data, in the middle of a 4-process update() workload, with a
 * watcher and a default-options update() issued during the outage. The
 * machine's own redis-server is never touched. Run after `npm run build`
 * (the workers run dist/).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RedisStore } from '../../dist/redis/index.js';
import { runMultiProcessCounters } from '../../dist/testing/index.js';
import { startPrivateRedis, type PrivateServer } from '../support/servers.js';

let server: PrivateServer;

beforeAll(async () => {
  server = await startPrivateRedis();
  const admin = new Redis(server.url);
  try {
    await admin.config('SET', 'appendfsync', 'always');
  } finally {
    admin.disconnect();
  }
}, 120_000);

afterAll(async () => {
  await server?.stop();
}, 60_000);

describe('redis: server restart during a multi-process workload', () => {
  it('0 false successes, none applied twice, every cut write resolved by its writer token; update() rides out the outage; the watch neither loses nor repeats', async () => {
    // update() looks for a write whose acknowledgement the kill cut in its key's history. While
    // the writers back off through the outage, others may write a key a hundred times over:
    // a history deep enough to reach back lets every such write be resolved by its token.
    const url = `${server.url}?prefix=restart_${process.pid}&historyDepth=2000`;
    const checker = await RedisStore.fromUrl(url);
    const watcherStore = await RedisStore.fromUrl(url);
    expect(checker.capabilities.durability).toBe('fsync');
    const controller = new AbortController();
    const prefix = 'restart/';
    const seen: number[] = [];
    const watching = (async () => {
      for await (const ev of watcherStore.watch({ prefix, fromRevision: 0, signal: controller.signal })) seen.push(ev.revision);
    })();
    const outage = { stoppedAt: 0, startedAt: 0 };
    const progress = setInterval(() => console.log(`[redis restart] watch saw ${seen.length}`), 2000);
    try {
      const workload = runMultiProcessCounters(url, checker, { processes: 4, writers: 8, increments: 8000, keys: 32, keyPrefix: prefix, deadlineMs: 120_000 });
      // Kill once every worker is surely connected and writing: a quarter of the increments committed.
      const killAt = Date.now() + 60_000;
      while (seen.length < 2000 && Date.now() < killAt) await new Promise((r) => setTimeout(r, 50));
      await server.kill('SIGKILL');
      outage.stoppedAt = Date.now();
      // An update() with default options (30 s deadline, 64 attempts) issued while the server is down.
      const duringOutage = checker.update<number>('restart-single', (n) => (n ?? 0) + 1).then(
        (e) => ({ ok: true, value: e?.value, at: Date.now() }),
        (err) => ({ ok: false, err: String(err?.code ?? err), at: Date.now() }),
      );
      await new Promise((r) => setTimeout(r, 2000));
      await server.restart();
      outage.startedAt = Date.now();
      const report = await workload;
      const single = (await duringOutage) as { ok: boolean; value?: number; at: number };
      // Every write cut by the kill was recognised by its writer token: nothing failed, nothing
      // acknowledged is missing, nothing was applied twice.
      expect({ lost: report.lost, duplicated: report.duplicated, failed: report.failed, errors: report.errors }).toEqual({ lost: 0, duplicated: 0, failed: 0, errors: [] });
      expect(report.succeeded).toBe(report.increments);
      expect(single).toMatchObject({ ok: true, value: 1 });
      // The watcher sees every committed increment exactly once, in order.
      const total = report.succeeded + report.duplicated;
      const until = Date.now() + 30_000;
      while (seen.length < total && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
      expect(seen.length).toBe(total);
      console.log(`[redis restart] ${report.processes}×${report.writersPerProcess} writers, ${report.succeeded} increments in ${(report.elapsedMs / 1000).toFixed(1)} s `
        + `(server down ${((outage.startedAt - outage.stoppedAt) / 1000).toFixed(1)} s), ${(report.attempts / report.succeeded).toFixed(2)} attempts per commit, `
        + `update() issued during the outage committed ${((single.at - outage.stoppedAt) / 1000).toFixed(1)} s after the kill; watch saw ${seen.length} events`);
    } finally {
      clearInterval(progress);
      controller.abort();
      await watching.catch(() => undefined);
      await watcherStore.close();
      await checker.close();
    }
  }, 240_000);
});
