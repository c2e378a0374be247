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
import { startPrivateRedis, type PrivateServer } from '../support/servers.js';
import { runRestartScenario } from '../support/restart-scenario.js';

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
    const probe = await RedisStore.fromUrl(url);
    expect(probe.capabilities.durability).toBe('fsync');
    await probe.close();
    const { report, single } = await runRestartScenario({ name: 'redis', server, url, open: (u) => RedisStore.fromUrl(u), keys: 32 });
    // Every write cut by the kill was recognised by its writer token: nothing failed, nothing
    // acknowledged is missing, nothing was applied twice.
    expect({ lost: report.lost, duplicated: report.duplicated, failed: report.failed, errors: report.errors }).toEqual({ lost: 0, duplicated: 0, failed: 0, errors: [] });
    expect(report.succeeded).toBe(report.increments);
    expect(single).toMatchObject({ ok: true, value: 1 });
  }, 240_000);
});
