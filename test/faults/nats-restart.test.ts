/**
 * Kills a private nats-server (SIGKILL, then start again on the same port and
 * store dir) in the middle of a multi-process counter workload, with a
 * watcher and a default-options update() running across the outage. The
 * machine's own nats-server is never touched.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsStore } from '../../dist/nats/index.js';
import { runMultiProcessCounters } from '../../dist/testing/index.js';
import { startPrivateNats, type PrivateServer } from '../support/servers.js';

let server: PrivateServer;

beforeAll(async () => {
  server = await startPrivateNats();
});

afterAll(async () => {
  await server?.stop();
}, 60_000);

describe('nats: server restart during a multi-process workload', () => {
  it('no acknowledged write is lost, update() rides out the outage, the watch neither loses nor repeats', async () => {
    const bucket = `rk_fault_${process.pid}_${randomBytes(4).toString('hex')}`;
    const url = `${server.url}?bucket=${bucket}`;
    const checker = await NatsStore.fromUrl(url);
    const watcherStore = await NatsStore.fromUrl(url);
    const controller = new AbortController();
    const prefix = 'restart/';
    const seen: number[] = [];
    const watching = (async () => {
      for await (const ev of watcherStore.watch({ prefix, fromRevision: 0, signal: controller.signal })) seen.push(ev.revision);
    })();
    let outage = { stoppedAt: 0, startedAt: 0 };
    let duringOutage: Promise<unknown> | undefined;
    const progress = setInterval(() => console.log(`[nats restart] watch saw ${seen.length}`), 2000);
    try {
      // 32 keys: a write whose acknowledgement the kill cut is looked for in its key's history
      // (64 revisions per key at most on NATS); with 8 hot keys the other writers could push it
      // out of reach, and update() then rightly answers ERR_OUTCOME_UNKNOWN instead of guessing.
      const workload = runMultiProcessCounters(url, checker, { processes: 4, writers: 8, increments: 8000, keys: 32, keyPrefix: prefix, deadlineMs: 120_000 });
      // Kill the server once every worker process is surely connected and writing: a
      // quarter of the increments committed (open() itself fails fast when no server is up).
      const killAt = Date.now() + 60_000;
      while (seen.length < 2000 && Date.now() < killAt) await new Promise((r) => setTimeout(r, 50));
      await server.kill('SIGKILL');
      outage.stoppedAt = Date.now();
      // An update() with default options (30 s deadline, 64 attempts) issued while the server is down.
      duringOutage = checker.update<number>('restart-single', (n) => (n ?? 0) + 1).then(
        (e) => ({ ok: true, value: e?.value, at: Date.now() }),
        (err) => ({ ok: false, err: String(err?.code ?? err), at: Date.now() }),
      );
      await new Promise((r) => setTimeout(r, 2000));
      await server.restart();
      outage.startedAt = Date.now();
      const report = await workload;
      console.log('[nats restart] workload done');
      const single = (await duringOutage) as { ok: boolean; value?: number; at: number };
      // A write cut by the kill whose fate can no longer be established is reported as
      // ERR_OUTCOME_UNKNOWN, never applied again: it is the only failure allowed, it may have
      // committed (then it shows as one stored increment above the acknowledged ones) or not.
      expect(report.lost).toBe(0);
      expect(report.errors.every((e) => e.startsWith('ERR_OUTCOME_UNKNOWN'))).toBe(true);
      expect(report.failed).toBeLessThanOrEqual(3);
      expect(report.duplicated).toBeLessThanOrEqual(report.failed);
      expect(report.succeeded + report.failed).toBe(report.increments);
      expect(single).toMatchObject({ ok: true, value: 1 });
      // The watcher sees every committed increment exactly once, in order.
      const total = report.succeeded + report.duplicated;
      const until = Date.now() + 30_000;
      while (seen.length < total && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
      expect(seen.length).toBe(total);
      console.log(`[nats restart] ${report.processes}×${report.writersPerProcess} writers, ${report.succeeded} increments in ${(report.elapsedMs / 1000).toFixed(1)} s `
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
