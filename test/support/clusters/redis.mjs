/**
 * A private Redis primary + replica(s) + three Sentinels on free loopback
 * ports, in a temp dir (never the machine's redis on 6379), for failover
 * tests, the soak and the bench. Plain ESM so scripts can import it.
 *
 *   const cluster = await startRedisCluster({ replicas: 1 });
 *   cluster.url         // redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/revkit
 *   cluster.singleUrl   // redis://127.0.0.1:<a standalone server of the same build and settings>
 *   await cluster.failover({ log, mark }); // SIGKILL the primary, wait for a promoted one, old one back as a replica
 *   await cluster.failover({ log, mark, missWrites: () => ctl.waitForAcks(20) }); // the same, losing acknowledged writes
 *   await cluster.stop();
 *
 * Sentinels: quorum 2, down-after-milliseconds 2000 (downAfterMs; at 1000, one PING answered late on a
 * loaded machine made the sentinels fail a healthy new primary over again), failover-timeout 3000.
 * Every node runs with appendonly yes / appendfsync everysec, no RDB snapshots.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { HOST, freePort, sleep, until as untilReady } from './common.mjs';

const running = new Set();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function findRedisServer() {
  for (const dir of ['/usr/bin', '/usr/local/bin', '/usr/sbin']) if (existsSync(join(dir, 'redis-server'))) return join(dir, 'redis-server');
  return 'redis-server';
}

const until = (what, probe, timeoutMs) => untilReady('redis cluster', what, probe, timeoutMs);

/** One short-lived admin command to 127.0.0.1:port (no retries, no offline queue). */
async function command(port, ...args) {
  const c = new Redis({ host: HOST, port, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return await c.call(...args);
  } finally {
    c.disconnect();
  }
}

function info(text) {
  const out = {};
  for (const line of String(text).split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

class Node {
  constructor(bin, root, name, port, extra) {
    this.bin = bin;
    this.name = name;
    this.port = port;
    this.dir = join(root, name);
    this.extra = extra;
    this.child = undefined;
    mkdirSync(this.dir, { recursive: true });
  }

  get address() {
    return `${HOST}:${this.port}`;
  }

  get alive() {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process; `args` are the server's arguments after the port and dir. */
  async start(args) {
    const log = openSync(join(this.dir, 'server.log'), 'a');
    let child;
    try {
      child = spawn(this.bin, args, { stdio: ['ignore', log, log], cwd: this.dir });
    } finally {
      closeSync(log);
    }
    this.child = child;
    running.add(child);
    child.once('exit', () => running.delete(child));
    await until(`${this.name} on ${this.port} to answer PING`, async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${this.name} exited at start; see ${this.dir}/server.log`);
      return (await command(this.port, 'PING')) === 'PONG';
    });
  }

  signal(sig) {
    if (this.alive) this.child.kill(sig);
  }

  async kill() {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGCONT');
    c.kill('SIGKILL');
    await exited;
  }
}

class DataNode extends Node {
  /** Starts (or restarts with its data) as a primary, or as a replica of `primary` (a Node). */
  async launch(primary) {
    const args = ['--port', String(this.port), '--bind', HOST, '--dir', this.dir, '--save', '', '--appendonly', 'yes',
      '--daemonize', 'no', '--repl-diskless-sync', 'no', ...this.extra];
    if (primary) args.push('--replicaof', HOST, String(primary.port));
    await this.start(args);
  }
}

class SentinelNode extends Node {
  async launch(masterName, primary, downAfterMs, failoverTimeoutMs) {
    const conf = join(this.dir, 'sentinel.conf');
    // Sentinel rewrites its config file as it learns the topology: it must be writable and its own.
    writeFileSync(conf, [
      `port ${this.port}`, `bind ${HOST}`, `dir ${this.dir}`, 'daemonize no',
      `sentinel monitor ${masterName} ${HOST} ${primary.port} 2`,
      `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
      `sentinel failover-timeout ${masterName} ${failoverTimeoutMs}`,
      `sentinel parallel-syncs ${masterName} 1`, '',
    ].join('\n'));
    await this.start([conf, '--sentinel']);
  }
}

/**
 * Starts the cluster. Options: replicas (1), masterName ('revkit'),
 * downAfterMs (2000), failoverTimeoutMs (3000), serverArgs (extra redis-server arguments for every data node),
 * single (true: also start a standalone server for singleUrl).
 */
export async function startRedisCluster(options = {}) {
  const { replicas = 1, masterName = 'revkit', downAfterMs = 2000, failoverTimeoutMs = 3000, serverArgs = [], single = true } = options;
  const bin = findRedisServer();
  const root = mkdtempSync(join(tmpdir(), 'revkit-redis-cluster-'));
  const data = [];
  const sentinels = [];
  let standalone;
  const all = () => [...data, ...sentinels, ...(standalone ? [standalone] : [])];
  let failovers = 0;
  try {
    for (let i = 0; i <= replicas; i++) data.push(new DataNode(bin, root, `data${i}`, await freePort(), serverArgs));
    await data[0].launch(undefined);
    for (const node of data.slice(1)) await node.launch(data[0]);
    for (let i = 0; i < 3; i++) sentinels.push(new SentinelNode(bin, root, `sentinel${i}`, await freePort(), []));
    for (const s of sentinels) await s.launch(masterName, data[0], downAfterMs, failoverTimeoutMs);
    if (single) {
      standalone = new DataNode(bin, root, 'single', await freePort(), serverArgs);
      await standalone.launch(undefined);
    }
    await settled();
  } catch (err) {
    await Promise.all(all().map((n) => n.kill()));
    rmSync(root, { recursive: true, force: true });
    throw err;
  }

  /** The primary every sentinel names (and that says it is one), as a DataNode. */
  async function primary() {
    const names = await Promise.all(sentinels.map((s) => command(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName).catch(() => null)));
    const ports = new Set(names.map((n) => (n ? Number(n[1]) : -1)));
    if (ports.size !== 1 || ports.has(-1)) return undefined;
    const node = data.find((n) => n.port === [...ports][0]);
    if (!node || !node.alive) return undefined;
    const role = info(await command(node.port, 'INFO', 'replication'));
    return role.role === 'master' ? node : undefined;
  }

  /**
   * Every sentinel agrees on the primary, sees every other live data node as its replica in good
   * standing (no s_down, link up) and knows the other sentinels; each replica is in sync (link up).
   * Then a kill of the primary can be failed over.
   */
  async function settled(timeoutMs = 60_000) {
    return until('the cluster to settle', async () => {
      const p = await primary();
      if (!p) return undefined;
      const others = data.filter((n) => n !== p && n.alive);
      for (const s of sentinels) {
        const replicaList = await command(s.port, 'SENTINEL', 'REPLICAS', masterName);
        const known = replicaList.map((flat) => {
          const o = {};
          for (let i = 0; i < flat.length; i += 2) o[flat[i]] = flat[i + 1];
          return o;
        });
        for (const r of others) {
          const k = known.find((o) => Number(o.port) === r.port);
          if (!k || k.flags !== 'slave' || k['master-link-status'] !== 'ok') return undefined;
        }
        const master = await command(s.port, 'SENTINEL', 'MASTER', masterName);
        const m = {};
        for (let i = 0; i < master.length; i += 2) m[master[i]] = master[i + 1];
        if (Number(m['num-other-sentinels']) < sentinels.length - 1 || m.flags !== 'master') return undefined;
      }
      for (const r of others) {
        const i = info(await command(r.port, 'INFO', 'replication'));
        if (i.role !== 'slave' || i.master_link_status !== 'up' || Number(i.master_port) !== p.port) return undefined;
      }
      return p;
    }, timeoutMs);
  }

  const sentinelHosts = sentinels.map((s) => s.address).join(',');
  return {
    url: `redis+sentinel://${sentinelHosts}/${masterName}`,
    singleUrl: standalone ? `redis://${standalone.address}` : undefined,
    masterName,
    sentinels: sentinels.map((s) => ({ host: HOST, port: s.port })),
    dir: root,
    /** The data nodes: { name, port, address, alive, signal(sig) }. */
    nodes: data,
    primary: () => settled(),
    replicas: async () => {
      const p = await settled();
      return data.filter((n) => n !== p);
    },
    settled,
    get failovers() {
      return failovers;
    },
    /**
     * SIGKILLs the primary (mark('kill') at that instant), waits until the sentinels have promoted
     * a replica that serves writes, restarts the killed one with its data as a replica of the new
     * primary, and waits until the cluster has settled (so the next failover can run).
     * `beforeKill(old)` runs just before the kill, `afterKill(old)` right after it.
     * `missWrites()`: the replicas are made to miss writes for sure — SIGSTOPped, their links cut
     * (CLIENT KILL TYPE replica on the primary, which then acknowledges alone) — while it runs (wait
     * for some acknowledgements there), then the primary is killed and the replicas resumed: what
     * the primary acknowledged meanwhile is lost in the failover.
     */
    async failover({ log = () => undefined, mark = () => undefined, beforeKill, afterKill, missWrites } = {}) {
      const old = await settled();
      if (beforeKill) await beforeKill(old);
      const others = data.filter((n) => n !== old);
      if (missWrites) {
        for (const n of others) n.signal('SIGSTOP');
        try {
          await command(old.port, 'CLIENT', 'KILL', 'TYPE', 'replica');
          await missWrites();
        } catch (err) {
          for (const n of others) n.signal('SIGCONT');
          throw err;
        }
      }
      const started = Date.now();
      await old.kill();
      mark('kill');
      log(`redis cluster: SIGKILLed primary ${old.name} (${old.address})${missWrites ? ', its replicas having missed writes' : ''}`);
      if (missWrites) for (const n of others) n.signal('SIGCONT');
      if (afterKill) await afterKill(old);
      const fresh = await until('a promoted primary', async () => {
        const p = await primary();
        return p && p !== old ? p : undefined;
      }, 90_000);
      log(`redis cluster: ${fresh.name} (${fresh.address}) promoted after ${Date.now() - started} ms`);
      await old.launch(fresh);
      await settled(90_000);
      failovers++;
      log(`redis cluster: ${old.name} back as a replica; settled ${Date.now() - started} ms after the kill`);
      return { old: old.address, new: fresh.address };
    },
    /** SIGKILLs every sentinel: the whole Sentinel deployment down (the data nodes go on). */
    async killSentinels() {
      await Promise.all(sentinels.map((s) => s.kill()));
    },
    /** Starts the sentinels again, monitoring `primary` (a data node, by default the first); resolves once the cluster has settled. */
    async startSentinels(primary = data[0]) {
      for (const s of sentinels) await s.launch(masterName, primary, downAfterMs, failoverTimeoutMs);
      return settled(90_000);
    },
    async stop() {
      await Promise.all(all().map((n) => n.kill()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}

