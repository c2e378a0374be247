/**
 * Redis with a replica and three Sentinels (test/support/clusters/redis.mjs,
 * private servers on free ports), the primary SIGKILLed and replaced while
 * worker processes run update() increments and a watcher follows every change
 * (test/fixtures/replication/workload.mjs). Needs `npm run build`.
 *
 * - wait=1: a write is acknowledged once WAIT confirms the replica has it, so
 *   the promoted replica has every acknowledged increment: 0 lost, 0 applied
 *   twice, the watch complete, over two failovers.
 * - no wait, and the replica made to miss writes for sure (SIGSTOPped, its
 *   link cut with CLIENT KILL, writes acknowledged by the primary alone, then
 *   the primary killed): the loss is detected — exactly the acknowledged
 *   increments lost are reported lost — no revision is handed out twice (a
 *   process opened after the failover gets revisions above every one
 *   acknowledged before it), and once an operator accepts, the run goes on.
 * - the canary: the same with loss detection off (lossDetection=off, the old
 *   per-process guard) — the same verdict catches it.
 * - WAIT short (the replica stopped): a write that committed on the primary
 *   is not acknowledged (ambiguous), a read is not answered (transient).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, DataLostError, OutcomeUnknownError, RetryExhaustedError } from '../../src/core/index.js';
import { RedisStore } from '../../src/redis/index.js';
import { durableViolations, lossyViolations, runReplicationWorkload } from '../fixtures/replication/workload.mjs';
import { startRedisCluster } from '../support/clusters/redis.mjs';

type Cluster = Awaited<ReturnType<typeof startRedisCluster>>;
type Ctl = { log(line: string): void; waitForAcks(n: number, ms?: number): Promise<boolean>; marked(label?: string): void };
type Node = { port: number; name: string; signal(sig: NodeJS.Signals): void };

const log = (line: string) => console.log(`[redis-replication] ${line}`);
let cluster: Cluster;

beforeAll(async () => {
  cluster = await startRedisCluster({ replicas: 1 });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

/**
 * Two failovers in which the replica misses writes. Around each, a probe: a
 * store that writes (acknowledged by the primary alone) just before the kill,
 * and a store opened after the failover — a process that never saw those
 * revisions — that writes once the new primary serves. A revision the second
 * is handed at or below the first's was handed out twice.
 */
async function lossyRun(url: string, patienceMs: number, watch: boolean) {
  const probes: Array<{ before: number; after: number }> = [];
  const f = await runReplicationWorkload({
    url, processes: 3, loops: 3, keys: 4, acceptLoss: true, watch, log,
    fault: async (ctl: Ctl) => {
      try {
        // Bounded waits: in the canary the workers stop for good (each process latches on its own),
        // so its waits run out (patienceMs); with detection on, they never do.
        for (let i = 0; i < 2; i++) {
          await ctl.waitForAcks(40, patienceMs);
          let before = 0;
          await cluster.failover({
            log: ctl.log, mark: () => ctl.marked('kill'),
            missWrites: async () => {
              await ctl.waitForAcks(15, patienceMs);
              // A store of its own each time: without detection a store that saw a loss stays latched.
              const early = await RedisStore.fromUrl(url);
              try {
                before = (await early.put('probe/early', i)).revision;
              } finally {
                await early.close();
              }
            },
          });
          const late = await RedisStore.fromUrl(url);
          try {
            probes.push({ before, after: await putPast(late, 'probe/late', i) });
          } finally {
            await late.close();
          }
        }
        await ctl.waitForAcks(40, patienceMs);
      } finally {
        for (const n of cluster.nodes as Node[]) n.signal('SIGCONT');
      }
    },
  });
  const reused = probes.filter((p) => p.after <= p.before);
  const verdict = [...lossyViolations(f), ...reused.map((p) => `revision ${p.after} handed to a process opened after the failover, ${p.before} acknowledged before it`)];
  log(`figures: ${JSON.stringify({ acked: f.acked, stored: f.stored, lost: f.lost, reportedLost: f.reportedLost, dataLost: f.dataLost, revisionsReused: f.revisionsReused, wrongValues: f.wrongValues.length, watch: f.watch, takeoverMs: f.takeoverMs, probes, errorsByCode: f.errorsByCode })}`);
  return { f, verdict };
}

/** A put by a probe that may be told of the last failover's loss first (the workload's operator accepts it). */
async function putPast(store: RedisStore, key: string, value: unknown): Promise<number> {
  for (let i = 0; ; i++) {
    try {
      return (await store.put(key, value)).revision;
    } catch (err) {
      if (!DataLostError.is(err) || i > 200) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('redis with Sentinel: failovers under the replication workload', () => {
  it('wait=1: every acknowledged increment survives two failovers, once; the watch is complete', async () => {
    const f = await runReplicationWorkload({
      // historyDepth: a write cut by the kill is resolved by its writer token in the key's history; while its loop backs
      // off (the new primary waits for a replica), the others may write a key more than the default 64 times.
      url: `${cluster.url}?prefix=durable&wait=1&waitTimeoutMs=1000&historyDepth=2000`, processes: 3, loops: 3, keys: 4, log,
      fault: async (ctl: Ctl) => {
        for (let i = 0; i < 2; i++) {
          await ctl.waitForAcks(40);
          await cluster.failover({ log: ctl.log, mark: () => ctl.marked('kill') });
        }
        await ctl.waitForAcks(40);
      },
    });
    log(`figures: ${JSON.stringify({ acked: f.acked, stored: f.stored, lost: f.lost, appliedTwice: f.appliedTwice, unknownOutcome: f.unknownOutcome, dataLost: f.dataLost, watch: f.watch, takeoverMs: f.takeoverMs, errorsByCode: f.errorsByCode })}`);
    expect(f.takeoverMs).toHaveLength(2);
    expect(f.acked).toBeGreaterThanOrEqual(120);
    expect(durableViolations(f)).toEqual([]);
  }, 240_000);

  it('no wait, the replica made to miss acknowledged writes: the loss is detected and reported exactly, no revision reused, the run goes on once accepted', async () => {
    const { f, verdict } = await lossyRun(`${cluster.url}?prefix=lossy`, 60_000, true);
    expect(verdict).toEqual([]);
    // The losses really happened, were reported, and accepted; the run went on after them.
    expect(f.lost).toBeGreaterThan(0);
    expect(f.reportedLost).toBe(f.lost);
    expect(f.dataLost.errors).toBeGreaterThan(0);
    expect(f.dataLost.accepted).toBeGreaterThan(0);
    expect(f.takeoverMs.every((ms: number | null) => ms !== null)).toBe(true);
  }, 240_000);

  // Without the watcher: with detection off its process latches on its own and never catches up (a minute's wait).
  it('canary: the same run with loss detection off is caught by the same verdict', async () => {
    const { verdict } = await lossyRun(`${cluster.url}?prefix=canary&lossDetection=off`, 5_000, false);
    expect(verdict.length).toBeGreaterThan(0);
    expect(verdict.join('\n')).toMatch(/handed out twice|handed to a process opened after the failover|reported lost/);
  }, 240_000);
});

describe('redis wait=N against a stopped replica', () => {
  it('capabilities say replicated only with wait; a write the replica did not confirm is ambiguous, a read is not answered; update() never says ok', async () => {
    const plain = await RedisStore.fromUrl(`${cluster.url}?prefix=waiting`);
    const store = await RedisStore.fromUrl(`${cluster.url}?prefix=waiting&wait=1&waitTimeoutMs=300`);
    const [replica] = (await cluster.replicas()) as Node[];
    let first = { revision: 0 };
    try {
      expect(plain.capabilities.durability).not.toBe('replicated');
      expect(store.capabilities.durability).toBe('replicated');
      expect(store.durabilityNote).toMatch(/WAIT 1 300/);
      first = await store.put('k', 1);
      replica?.signal('SIGSTOP');
      const cut = await store.put('k', 2).catch((e: unknown) => e);
      expect(BackendError.is(cut) && cut.ambiguous && cut.transient).toBe(true);
      expect((cut as Error).message).toMatch(/only 0 of 1 replicas confirmed.*committed on the master/);
      const read = await store.get('k').catch((e: unknown) => e);
      expect(BackendError.is(read) && !read.ambiguous && read.transient).toBe(true);
      const upd = await store.update('k', (v: number) => v + 1, { maxAttempts: 2 }).catch((e: unknown) => e);
      expect(OutcomeUnknownError.is(upd) || RetryExhaustedError.is(upd)).toBe(true);
      // Without wait the same store answers at once: the write is on the master, not yet on the replica.
      expect((await plain.put('k', 'fast')).revision).toBeGreaterThan(first.revision);
    } finally {
      replica?.signal('SIGCONT');
    }
    // Once the replica is back, the ambiguous write is there (it committed on the master).
    const after = await store.getRecord('k');
    expect(after?.revision).toBeGreaterThan(first.revision);
    const replication = await store.replication();
    expect(replication.serving).toBe((await cluster.primary()).address);
    expect(replication.members.map((m) => m.role).sort()).toEqual(['master', 'replica', 'sentinel', 'sentinel', 'sentinel']);
    expect(replication.durability).toBe('replicated');
    expect(replication.lost).toBeUndefined();
    await Promise.all([store.close(), plain.close()]);
  }, 120_000);

  it('a DataLostError carries the range and the store address, never a password, and latches every process until acceptLoss()', async () => {
    const url = `${cluster.url}?prefix=latch`;
    const a = await RedisStore.fromUrl(url);
    const b = await RedisStore.fromUrl(url);
    try {
      for (let i = 0; i < 3; i++) await a.put('k', i);
      let acked = 0;
      await cluster.failover({
        log,
        missWrites: async () => {
          acked = (await a.put('k', 'lost')).revision;
        },
      });
      // b never saw the lost revision: it goes on, above it.
      const fromB = await b.put('other', 1);
      expect(fromB.revision).toBeGreaterThan(acked);
      const err = await a.get('k').catch((e: unknown) => e);
      expect(DataLostError.is(err)).toBe(true);
      expect((err as DataLostError).details).toMatchObject({ after: acked - 1, upTo: acked, store: expect.stringMatching(/^redis\+sentinel:\/\/127\.0\.0\.1:\d+,/) });
      // Latched for every process, b too, and reported by replication().
      expect(DataLostError.is(await b.get('other').catch((e: unknown) => e))).toBe(true);
      expect((await b.replication()).lost).toMatchObject({ after: acked - 1, upTo: acked });
      await b.acceptLoss();
      expect((await a.get('k'))?.value).toBe(2);
      expect((await a.put('k', 'again')).revision).toBeGreaterThan(fromB.revision);
      expect((await b.replication()).lost).toBeUndefined();
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 120_000);
});
