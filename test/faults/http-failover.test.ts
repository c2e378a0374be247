/**
 * HttpStore over three `revkit serve` replicas of one SQLite store (issue 25):
 * worker processes run update() increments and a watcher follows every change
 * through the several-server URL while the replica they all use is SIGKILLed
 * and started again, twice. The writes cut by a kill are resolved by writer
 * token on the next replica, the watch resumes there with Last-Event-ID.
 * Canary: the same run where each replica serves a store of its own (a
 * failover onto other data) is caught by the same verdicts.
 * The workload is test/fixtures/replication/workload.mjs, the cluster
 * test/support/clusters/http.mjs. Needs `npm run build`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { durableViolations, runReplicationWorkload } from '../fixtures/replication/workload.mjs';
import { startHttpCluster } from '../support/clusters/http.mjs';

const log = (line: string) => console.log(`[http-failover] ${line}`);
let cluster: Awaited<ReturnType<typeof startHttpCluster>> | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** Two kills of the replica in use, each once the workload is going. */
async function twoFailovers(ctl: { waitForAcks(n: number): Promise<boolean>; marked(label: string): void; log(line: string): void }) {
  for (let i = 0; i < 2; i++) {
    await ctl.waitForAcks(150);
    const moved = await cluster!.failover({ log: ctl.log, mark: (label: string) => ctl.marked(label) });
    ctl.log(`failover ${i + 1}: ${moved.old} → ${moved.new}`);
  }
  await ctl.waitForAcks(150);
}

describe('HttpStore failover between revkit serve replicas, SIGKILLed mid-update', () => {
  it('every acknowledged increment stored exactly once, no unknown outcome, the watch complete and in order', async () => {
    cluster = await startHttpCluster({ log });
    const f = await runReplicationWorkload({ url: cluster.url, log, fault: twoFailovers });
    log(`figures: ${JSON.stringify({ acked: f.acked, stored: f.stored, lost: f.lost, appliedTwice: f.appliedTwice, unknownOutcome: f.unknownOutcome, errorsByCode: f.errorsByCode, watch: f.watch, takeoverMs: f.takeoverMs })}`);
    expect(f.takeoverMs).toHaveLength(2);
    expect(f.takeoverMs.every((ms: number | null) => ms !== null)).toBe(true);
    expect(f.acked).toBeGreaterThanOrEqual(450);
    expect(durableViolations(f)).toEqual([]);
    expect(f.stored).toBe(f.acked);
  }, 300_000);

  it('canary: replicas over stores of their own (a failover onto other data) — the same verdicts catch it', async () => {
    cluster = await startHttpCluster({ log, splitBrain: true });
    const f = await runReplicationWorkload({ url: cluster.url, log, fault: twoFailovers });
    log(`canary figures: ${JSON.stringify({ acked: f.acked, stored: f.stored, lost: f.lost, wrongValues: f.wrongValues.length, watch: f.watch })}`);
    expect(durableViolations(f).length).toBeGreaterThan(0);
    expect(f.wrongValues.length + (f.lost ?? 0)).toBeGreaterThan(0);
  }, 300_000);
});
