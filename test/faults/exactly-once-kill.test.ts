// Kafka's transactions test, ported: stamped messages over a real JetStream
// stream, producers and consumers SIGKILLed at random and restarted; then
// every message's effect is in the store exactly once, in order per partition.
// CI size (file and PostgreSQL smaller: each process() is an fsync'd rewrite of the whole file or several round trips); the soak size is bench/soak/exactly-once-kill.mjs.
// Workers run the compiled library: `npm run build` first.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { open } from '../../src/open.js';
import { MemoryStore } from '../../dist/memory/index.js';
import { canary } from '../../dist/testing/index.js';
import { runKillTest } from '../fixtures/exactly-once/kill-run.mjs';
import { dropPgStores, pgPrefix, PG_URL, NATS_URL } from '../fixtures/exactly-once/stores.js';
import { tempDir } from '../helpers.js';

afterAll(dropPgStores, 60_000);
const dir = tempDir('eo-kill');
const size = { producers: 2, consumers: 2, partitions: 2, perPartition: 500, kills: 10, natsUrl: NATS_URL, log: console.log };

function expectExactlyOnce(run: Awaited<ReturnType<typeof runKillTest>>, kills: number, messages: number) {
  expect(run.failures).toEqual([]);
  expect(run.kills.producer + run.kills.consumer).toBeGreaterThanOrEqual(kills);
  expect(run.expected).toBe(messages);
  expect(run.counterSum).toBe(run.expected);
  expect({ listed: run.listed, duplicates: run.duplicates, missing: run.missing, misordered: run.misordered }).toEqual({ listed: run.expected, duplicates: 0, missing: 0, misordered: 0 });
}

describe('exactly-once under kills', () => {
  it('sqlite: 2,000 messages, 10 SIGKILLs of producers and consumers: no loss, no duplicate, order kept', async () => {
    // synchronous=normal: a killed process loses nothing with WAL (only an OS crash could), and it keeps CI fast.
    const url = `sqlite:${join(dir, 'kill.db')}?synchronous=normal`;
    const store = await open(url);
    try {
      expectExactlyOnce(await runKillTest({ ...size, storeUrl: url, store }), 10, 2_000);
    } finally {
      await store.close();
    }
  });

  // Each process() is ~5 PostgreSQL round trips with an fsync'd commit: a smaller run keeps CI near a minute; the soak runs 100,000.
  it('postgres: 400 messages, 10 SIGKILLs of producers and consumers: no loss, no duplicate, order kept', async () => {
    const url = `${PG_URL}?prefix=${pgPrefix()}`;
    const store = await open(url);
    try {
      expectExactlyOnce(await runKillTest({ ...size, perPartition: 100, ackWaitMs: 3_000, timeoutMs: 220_000, storeUrl: url, store }), 10, 400);
    } finally {
      await store.close();
    }
  });

  it('file: 400 messages, 10 SIGKILLs of producers and consumers: no loss, no duplicate, order kept', async () => {
    const url = `file:${join(dir, 'kill.json')}`;
    const store = await open(url);
    try {
      expectExactlyOnce(await runKillTest({ ...size, perPartition: 100, ackWaitMs: 3_000, timeoutMs: 220_000, storeUrl: url, store }), 10, 400);
    } finally {
      await store.close();
    }
  });

  it('memory (one process): 2,000 messages, 10 simulated crashes inside process(), before acks and after publishes', async () => {
    const store = new MemoryStore();
    expectExactlyOnce(await runKillTest({ ...size, inProcess: true, store, killEveryMs: [50, 200] }), 10, 2_000);
    await store.close();
  });

  it('the same kill test catches the broken canary store (check, then write without a condition): counters lose increments', async () => {
    const store = canary(new MemoryStore());
    const run = await runKillTest({ ...size, inProcess: true, store, killEveryMs: [50, 200], endWhenDrained: true });
    await store.close();
    expect(run.failures).toEqual([]);
    expect(run.counterSum).toBeLessThan(run.expected);
  });
});
