// The replicated setups the soak (bench/soak/replication.mjs) and the bench
// (bench/replication-figures.mjs) run, each a private cluster of
// test/support/clusters/: `durable` where the configuration promises that no
// acknowledged write is lost (synchronous standby, JetStream R3, Redis wait=1,
// revkit serve replicas over one store), `lossy` where it does not and the
// fault makes the promoted member miss acknowledged writes for sure, so that
// revkit has a loss to detect and report.
import { Redis } from 'ioredis';
import { startHttpCluster } from '../../test/support/clusters/http.mjs';
import { startNatsCluster } from '../../test/support/clusters/nats.mjs';
import { startPostgresCluster } from '../../test/support/clusters/postgres.mjs';
import { startRedisCluster } from '../../test/support/clusters/redis.mjs';

const plainFailover = (cluster, { log, mark }) => cluster.failover({ log, mark });

/** Redis: the primary's replicas stopped and its replica links cut, some writes acknowledged by it alone, then the kill. */
async function redisLossyFailover(cluster, { log, mark, ctl }) {
  const resume = () => cluster.nodes.forEach((n) => n.signal('SIGCONT'));
  try {
    await cluster.failover({
      log, mark,
      beforeKill: async (old) => {
        for (const n of cluster.nodes) if (n !== old) n.signal('SIGSTOP');
        const admin = new Redis({ port: old.port, maxRetriesPerRequest: 1 });
        try {
          await admin.call('CLIENT', 'KILL', 'TYPE', 'replica');
        } finally {
          admin.disconnect();
        }
        await ctl.waitForAcks(15);
      },
      afterKill: async () => resume(),
    });
  } finally {
    resume();
  }
}

export const SETUPS = [
  {
    engine: 'postgres', variant: 'durable', note: 'primary + synchronous standby (synchronous_commit on)',
    start: (o = {}) => startPostgresCluster({ synchronous: true, single: o.single ?? false, kill: o.pgKill }),
    url: (c) => c.paramUrl, failover: plainFailover,
  },
  {
    engine: 'postgres', variant: 'lossy', note: 'primary + asynchronous standby, its walsender stopped before the kill',
    start: (o = {}) => startPostgresCluster({ synchronous: false, single: o.single ?? false, kill: o.pgKill }),
    url: (c) => c.paramUrl,
    failover: async (c, { log, mark, ctl }) => {
      c.holdReplication();
      await ctl.waitForAcks(40);
      await c.failover({ log, mark });
    },
  },
  {
    engine: 'nats', variant: 'durable', note: 'three nats-server, bucket replicas=3',
    start: async (o = {}) => {
      const cluster = await startNatsCluster({ replicas: 3 });
      if (o.single) await cluster.startSingle();
      return cluster;
    },
    url: (c) => c.url, failover: plainFailover,
  },
  {
    engine: 'redis', variant: 'durable', note: 'primary + replica + 3 Sentinels, wait=1',
    start: (o = {}) => startRedisCluster({ replicas: 1, single: o.single ?? false }),
    url: (c) => `${c.url}?prefix=durable&wait=1&waitTimeoutMs=1000&historyDepth=2000`, failover: plainFailover,
  },
  {
    engine: 'redis', variant: 'lossy', note: 'primary + replica + 3 Sentinels, no wait, the replica stopped before the kill',
    start: (o = {}) => startRedisCluster({ replicas: 1, single: o.single ?? false }),
    url: (c) => `${c.url}?prefix=lossy`, failover: redisLossyFailover,
  },
  {
    engine: 'http', variant: 'durable', note: 'three revkit serve over one SQLite file, HttpStore over all three',
    start: () => startHttpCluster({ replicas: 3 }), url: (c) => c.url, failover: plainFailover,
  },
];
