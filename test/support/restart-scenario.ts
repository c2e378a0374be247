/**
 * The server-restart fault scenario the NATS and Redis tests share: a
 * multi-process counter workload and a watch run against a private server,
 * which is SIGKILLed once a quarter of the increments committed; an update()
 * with default options is issued while it is down; the server is started
 * again. Each test asserts on the report for its own backend's guarantees.
 */
import { expect } from 'vitest';
import type { Store } from '../../dist/core/index.js';
import { runMultiProcessCounters } from '../../dist/testing/index.js';
import type { PrivateServer } from './servers.js';

export interface RestartRun {
  report: Awaited<ReturnType<typeof runMultiProcessCounters>>;
  /** The update() issued during the outage. */
  single: { ok: boolean; value?: number; err?: string; at: number };
  /** Revisions the watch delivered, in order. */
  seen: number[];
  outage: { stoppedAt: number; startedAt: number };
}

export async function runRestartScenario(opts: {
  name: string;
  server: PrivateServer;
  url: string;
  open: (url: string) => Promise<Store>;
  keys: number;
}): Promise<RestartRun> {
  const checker = await opts.open(opts.url);
  const watcherStore = await opts.open(opts.url);
  const controller = new AbortController();
  const prefix = 'restart/';
  const seen: number[] = [];
  const watching = (async () => {
    for await (const ev of watcherStore.watch({ prefix, fromRevision: 0, signal: controller.signal })) seen.push(ev.revision);
  })();
  const outage = { stoppedAt: 0, startedAt: 0 };
  const progress = setInterval(() => console.log(`[${opts.name} restart] watch saw ${seen.length}`), 2000);
  try {
    const workload = runMultiProcessCounters(opts.url, checker, { processes: 4, writers: 8, increments: 8000, keys: opts.keys, keyPrefix: prefix, deadlineMs: 120_000 });
    // Kill once every worker process is surely connected and writing: a quarter of the
    // increments committed (open() itself fails fast when no server is up).
    const killAt = Date.now() + 60_000;
    while (seen.length < 2000 && Date.now() < killAt) await new Promise((r) => setTimeout(r, 50));
    await opts.server.kill('SIGKILL');
    outage.stoppedAt = Date.now();
    // An update() with default options (30 s deadline, 64 attempts) issued while the server is down.
    const duringOutage: Promise<RestartRun['single']> = checker.update<number>('restart-single', (n) => (n ?? 0) + 1).then(
      (e) => ({ ok: true, value: e?.value, at: Date.now() }),
      (err) => ({ ok: false, err: String(err?.code ?? err), at: Date.now() }),
    );
    await new Promise((r) => setTimeout(r, 2000));
    await opts.server.restart();
    outage.startedAt = Date.now();
    const report = await workload;
    const single = await duringOutage;
    // The watcher sees every committed increment exactly once, in order.
    const total = report.succeeded + report.duplicated;
    const until = Date.now() + 30_000;
    while (seen.length < total && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen.length).toBe(total);
    console.log(`[${opts.name} restart] ${report.processes}×${report.writersPerProcess} writers, ${report.succeeded} increments in ${(report.elapsedMs / 1000).toFixed(1)} s `
      + `(server down ${((outage.startedAt - outage.stoppedAt) / 1000).toFixed(1)} s), ${(report.attempts / report.succeeded).toFixed(2)} attempts per commit, `
      + `update() issued during the outage committed ${((single.at - outage.stoppedAt) / 1000).toFixed(1)} s after the kill; watch saw ${seen.length} events`);
    return { report, single, seen, outage };
  } finally {
    clearInterval(progress);
    controller.abort();
    await watching.catch(() => undefined);
    await watcherStore.close();
    await checker.close();
  }
}
