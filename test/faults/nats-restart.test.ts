/**
 * Kills a private nats-server (SIGKILL, then start again on the same port and
 * store dir) in the middle of a multi-process counter workload, with a
 * watcher and a default-options update() running across the outage. The
 * machine's own nats-server is never touched.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsStore } from '../../dist/nats/index.js';
import { startPrivateNats, type PrivateServer } from '../support/servers.js';
import { runRestartScenario } from '../support/restart-scenario.js';

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
    // 32 keys: a write whose acknowledgement the kill cut is looked for in its key's history
    // (64 revisions per key at most on NATS); with 8 hot keys the other writers could push it
    // out of reach, and update() then rightly answers ERR_OUTCOME_UNKNOWN instead of guessing.
    const { report, single } = await runRestartScenario({ name: 'nats', server, url: `${server.url}?bucket=${bucket}`, open: (url) => NatsStore.fromUrl(url), keys: 32 });
    // A write cut by the kill whose fate can no longer be established is reported as
    // ERR_OUTCOME_UNKNOWN, never applied again: it is the only failure allowed, it may have
    // committed (then it shows as one stored increment above the acknowledged ones) or not.
    expect(report.lost).toBe(0);
    expect(report.errors.every((e) => e.startsWith('ERR_OUTCOME_UNKNOWN'))).toBe(true);
    expect(report.failed).toBeLessThanOrEqual(3);
    expect(report.duplicated).toBeLessThanOrEqual(report.failed);
    expect(report.succeeded + report.failed).toBe(report.increments);
    expect(single).toMatchObject({ ok: true, value: 1 });
  }, 240_000);
});
