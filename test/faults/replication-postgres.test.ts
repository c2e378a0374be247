/**
 * PostgreSQL primary + streaming standby across failovers (issue 25), with the
 * shared workload (test/fixtures/replication/workload.mjs): worker processes
 * increment counters through update() and a watcher follows them while the
 * primary is SIGKILLed, the standby promoted and the old primary re-created
 * as the new one's standby — twice per run.
 *
 * - synchronous standby: nothing acknowledged is lost, nothing applied twice,
 *   the watch sees every change in order;
 * - asynchronous standby made to miss the last commits (its walsender
 *   SIGSTOPped before the kill): the loss is detected and reported exactly,
 *   no revision is handed out twice, the operator accepts it and the run
 *   goes on;
 * - the same with detection off (the test-only canary): the verdict catches it.
 *
 * The workers open the store by URL through open(); the cluster's members are
 * given in libpq's ?host=h1,h2&port=p1,p2 form.
 */
import { afterEach, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM launcher without types
import { startPostgresCluster } from '../support/clusters/postgres.mjs';
// @ts-expect-error plain ESM workload without types
import { durableViolations, lossyViolations, runReplicationWorkload } from '../fixtures/replication/workload.mjs';

interface Ctl { waitForAcks(n: number, ms?: number): Promise<boolean>; marked(label?: string): void; log(line: string): void }
interface Cluster { paramUrl: string; holdReplication(): number; failover(o: { log: (l: string) => void; mark: (l?: string) => void }): Promise<unknown>; stop(): Promise<void> }

const FAILOVERS = 2;
const lines: string[] = [];
const log = (line: string) => lines.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
let cluster: Cluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  delete process.env.REVKIT_TEST_PG_NO_LOSS_DETECTION;
  lines.length = 0;
});

/** Kills the primary FAILOVERS times, each after some acknowledged increments; `hold`: the standby misses the last ones. */
function failovers(c: Cluster, hold: boolean) {
  return async (ctl: Ctl) => {
    for (let i = 0; i < FAILOVERS; i++) {
      await ctl.waitForAcks(150);
      if (hold) {
        expect(c.holdReplication()).toBeGreaterThan(0);
        // These are acknowledged by the primary alone: the standby never gets them.
        await ctl.waitForAcks(40);
      }
      await c.failover({ log, mark: (label?: string) => ctl.marked(label) });
    }
    await ctl.waitForAcks(150);
  };
}

/** The run's figures, printed for the closing note and BENCHMARKS. */
function figures(name: string, f: { acked: number; stored: number | null; lost: number | null; reportedLost: number; appliedTwice: number | null; revisionsReused: number; takeoverMs: (number | null)[]; dataLost: { errors: number; accepted: number } }) {
  console.log(`[postgres replication] ${name}: failovers ${f.takeoverMs.length}, acked ${f.acked}, stored ${f.stored}, lost ${f.lost}, reported lost ${f.reportedLost}, applied twice ${f.appliedTwice}, revisions reused ${f.revisionsReused}, DataLostErrors ${f.dataLost.errors} (accepted ${f.dataLost.accepted}), takeover ms ${JSON.stringify(f.takeoverMs)}`);
}

const show = (f: unknown) => `${JSON.stringify(f, null, 1).slice(0, 3000)}\n${lines.join('\n')}`;

describe('PostgreSQL with a streaming standby, across failovers', () => {
  it('synchronous standby: every acknowledged increment stored once, the watch sees every change in order', async () => {
    cluster = (await startPostgresCluster({ synchronous: true, single: false, log })) as Cluster;
    const c = cluster;
    const f = await runReplicationWorkload({ url: c.paramUrl, processes: 3, loops: 3, keys: 4, fault: failovers(c, false), log });
    figures('synchronous', f);
    expect(durableViolations(f), show(f)).toEqual([]);
    expect(f.takeoverMs.length).toBe(FAILOVERS);
    expect(f.acked).toBeGreaterThan(300);
  });

  it('asynchronous standby that missed acknowledged commits: the loss is detected and reported exactly, no revision reused, accepted by the operator', async () => {
    cluster = (await startPostgresCluster({ synchronous: false, single: false, log })) as Cluster;
    const c = cluster;
    const f = await runReplicationWorkload({ url: c.paramUrl, processes: 3, loops: 3, keys: 4, fault: failovers(c, true), acceptLoss: true, log });
    figures('asynchronous', f);
    expect(lossyViolations(f), show(f)).toEqual([]);
    // The standby missed writes for sure: something was lost, and revkit said so.
    expect(f.lost, show(f)).toBeGreaterThan(0);
    expect(f.dataLost.errors).toBeGreaterThan(0);
    expect(f.dataLost.accepted).toBeGreaterThan(0);
  });

  it('canary: the same with loss detection off is caught by the verdict', async () => {
    process.env.REVKIT_TEST_PG_NO_LOSS_DETECTION = '1';
    cluster = (await startPostgresCluster({ synchronous: false, single: false, log })) as Cluster;
    const c = cluster;
    const f = await runReplicationWorkload({ url: c.paramUrl, processes: 3, loops: 3, keys: 4, fault: failovers(c, true), acceptLoss: true, log });
    figures('canary (detection off)', f);
    expect(f.lost, show(f)).toBeGreaterThan(0);
    expect(f.dataLost.errors).toBe(0);
    expect(lossyViolations(f).length, show(f)).toBeGreaterThan(0);
  });
});
