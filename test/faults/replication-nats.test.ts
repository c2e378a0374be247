/**
 * NATS JetStream cluster failovers (issue 25): three private nats-server
 * processes clustered on loopback (test/support/clusters/nats.mjs), the shared
 * replication workload (worker processes incrementing counters through
 * open(cluster.url), a watcher process), and the server that holds the
 * bucket's stream SIGKILLed and started again, twice per run.
 *
 * - replicas=1 in the cluster: the bucket lives on one server; while it is down
 *   writes wait (update() rides it out), and it comes back with its store:
 *   0 lost, 0 applied twice, the watch complete and in order.
 * - canary: the same with that server's store dir wiped on restart (the only
 *   copy goes): the verdict must catch the loss.
 * - replicas=3 needs nats-server 2.9.21+ (nats-io/nats-server#4320): on an older
 *   server revkit refuses the bucket, and a canary shows why (the server lets
 *   concurrent compare-and-swaps all land). On 2.9.21+ the durable run with
 *   stream-leader kills runs instead.
 */
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NatsStore } from '../../dist/nats/index.js';
import { open } from '../../dist/open.js';
import { startNatsCluster } from '../support/clusters/nats.mjs';
import { durableViolations, runReplicationWorkload } from '../fixtures/replication/workload.mjs';

type Cluster = Awaited<ReturnType<typeof startNatsCluster>>;

const version = /v?(\d+)\.(\d+)\.(\d+)/.exec(execFileSync('nats-server', ['--version'], { encoding: 'utf8' })) ?? [];
const [major, minor, patch] = version.slice(1).map(Number) as [number, number, number];
/** nats-server 2.9.21 made Nats-Expected-Last-Subject-Sequence hold on replicated streams. */
const replicatedCas = major > 2 || (major === 2 && (minor > 9 || (minor === 9 && patch >= 21)));

const log = (line: string) => console.log(`[nats-cluster] ${line}`);
let cluster: Cluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
}, 60_000);

async function runWithFailovers(c: Cluster, failovers: number, wipe = false) {
  return runReplicationWorkload({
    // 16 keys: a write cut by a kill is looked for in its key's history (64 revisions per key on
    // NATS); on a few hot keys the other writers push it out of reach, and update() then rightly
    // answers ERR_OUTCOME_UNKNOWN instead of guessing (as in nats-restart.test.ts).
    url: c.url, processes: 3, loops: 3, keys: 16, watch: true, log,
    fault: async (ctl: { waitForAcks(n: number): Promise<boolean>; marked(label: string): void }) => {
      await ctl.waitForAcks(200);
      for (let i = 0; i < failovers; i++) {
        const r = await c.failover({ log, mark: () => ctl.marked('kill'), wipe });
        log(`failover ${i + 1}: ${JSON.stringify(r)}`);
        // Writes must go on after the member came back, not only until it did.
        expect(await ctl.waitForAcks(200), 'no writes after the failover').toBe(true);
      }
    },
  });
}

describe('nats: a JetStream cluster losing the server of the bucket stream', () => {
  it('replicas=1: two kills of the stream server and restarts on its store; nothing lost or applied twice, the watch complete', async () => {
    cluster = await startNatsCluster({ bucket: 'rep1', replicas: 1, log });
    const f = await runWithFailovers(cluster, 2);
    log(`replicas=1: acked ${f.acked}, stored ${f.stored}, unknown ${f.unknownOutcome}, takeover ms ${JSON.stringify(f.takeoverMs)}, watch ${JSON.stringify(f.watch)}`);
    // An outcome reported unknown (never applied twice: appliedTwice counts it) is the one failure allowed.
    expect(durableViolations(f).filter((v: string) => !/outcomes unknown$/.test(v))).toEqual([]);
    expect(f.unknownOutcome).toBeLessThanOrEqual(2);
    expect(f.acked).toBeGreaterThan(400);
    expect(f.takeoverMs.every((ms: number | null) => ms !== null)).toBe(true);
  });

  it('canary: the same with the stream server\'s store wiped on restart loses writes, and the verdict says so', async () => {
    cluster = await startNatsCluster({ bucket: 'rep1w', replicas: 1, log });
    const f = await runWithFailovers(cluster, 1, true);
    log(`wiped: acked ${f.acked}, stored ${f.stored}, lost ${f.lost}, revisions reused ${f.revisionsReused}, DataLostErrors ${f.dataLost.errors}`);
    expect(f.lost).toBeGreaterThan(0);
    expect(durableViolations(f).some((v: string) => /acknowledged increments not stored/.test(v))).toBe(true);
  });

  it.skipIf(replicatedCas)('replicas=3 on nats-server < 2.9.21: refused, and a canary with the refusal disabled loses concurrent updates', async () => {
    cluster = await startNatsCluster({ bucket: 'rep3', replicas: 3, log });
    await expect(open(cluster.url)).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringMatching(/2\.9\.21.*replicas=1/s) });
    // The canary: one connection per server, the refusal disabled, concurrent update()s on two keys.
    const ncs: NatsConnection[] = [];
    try {
      for (const m of cluster.members) ncs.push(await connect({ servers: `127.0.0.1:${m.port}` }));
      const stores = await Promise.all(ncs.map((nc) => NatsStore.open(nc, { bucket: 'rep3', unsafeReplicatedCas: true })));
      let acked = 0;
      let stored = 0;
      // A race, so it is looked for round after round; the first round has always shown it here.
      for (let round = 0; round < 20 && acked === stored; round++) {
        const keys = [`c${round}a`, `c${round}b`];
        await Promise.all(Array.from({ length: 9 }, async (_, i) => {
          const store = stores[i % stores.length] as NatsStore;
          for (let j = 0; j < 40; j++) {
            await store.update<number>(keys[j % 2] as string, (n) => n + 1, { default: 0, combine: false });
            acked++;
          }
        }));
        for (const k of keys) stored += (await stores[0]!.get<number>(k))?.value ?? 0;
      }
      log(`replicas=3 with the refusal disabled: ${acked} increments acknowledged, ${stored} stored`);
      expect(stored).toBeLessThan(acked);
      await Promise.all(stores.map((s) => s.close()));
    } finally {
      await Promise.all(ncs.map((nc) => nc.close().catch(() => undefined)));
    }
  });

  it.runIf(replicatedCas)('replicas=3: two stream-leader kills; nothing lost or applied twice, the watch complete, a new leader each time', async () => {
    cluster = await startNatsCluster({ bucket: 'rep3', replicas: 3, log });
    const f = await runWithFailovers(cluster, 2);
    log(`replicas=3: acked ${f.acked}, stored ${f.stored}, unknown ${f.unknownOutcome}, takeover ms ${JSON.stringify(f.takeoverMs)}`);
    expect(durableViolations(f).filter((v: string) => !/outcomes unknown$/.test(v))).toEqual([]);
    expect(f.unknownOutcome).toBeLessThanOrEqual(2);
    const store = await open(cluster.url);
    try {
      const state = await store.replication!();
      expect(state.durability).toBe('replicated');
      expect(state.members.filter((m) => m.role === 'leader')).toHaveLength(1);
    } finally {
      await store.close();
    }
  });
});
