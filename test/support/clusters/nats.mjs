/**
 * A private NATS JetStream cluster for failover tests, the soak and the bench:
 * three (or `size`) nats-server processes on free loopback ports, clustered by
 * routes to each other, each with its own store dir in one temp dir.
 *
 *   const cluster = await startNatsCluster({ bucket: 'rep', replicas: 3 });
 *   cluster.url          // nats://127.0.0.1:A,127.0.0.1:B,127.0.0.1:C/?bucket=rep&replicas=3
 *   cluster.singleUrl    // a private single server (no cluster) for the bench's baseline, started on first use
 *   await cluster.failover({ log, mark });   // SIGKILL the leader of KV_<bucket>, wait for writes, restart it
 *   await cluster.stop();                    // kill everything, remove the temp dir
 *
 * `failover({ wipe: true })` restarts the killed server with its store dir
 * emptied: the canary for a bucket with replicas=1, whose only copy goes.
 * Plain ESM JavaScript, so bench and soak scripts can import it as it is.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { freePort, until as untilReady } from './common.mjs';

const READY_TIMEOUT_MS = 60_000;
const CLUSTER_NAME = 'revkit-test';

/** Every child of every cluster of this process, killed when it exits however it exits. */
const children = new Set();
const killAll = () => {
  for (const c of children) c.kill('SIGKILL');
};
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    killAll();
    process.kill(process.pid, signal);
  });
}

function findNatsServer() {
  for (const d of [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/sbin', '/usr/bin', '/usr/local/bin']) {
    if (existsSync(join(d, 'nats-server'))) return join(d, 'nats-server');
  }
  throw new Error('nats-server not found (looked in PATH, /usr/sbin, /usr/bin, /usr/local/bin): install it to run this test');
}

const until = (what, probe, timeoutMs = READY_TIMEOUT_MS) => untilReady('nats cluster', what, probe, timeoutMs);

/**
 * @param {{ size?: number, bucket?: string, replicas?: number, log?: (line: string) => void }} [options]
 */
export async function startNatsCluster(options = {}) {
  const size = options.size ?? 3;
  const bucket = options.bucket ?? 'rep';
  const replicas = options.replicas ?? 3;
  const log = options.log ?? (() => undefined);
  const bin = findNatsServer();
  const root = mkdtempSync(join(tmpdir(), 'revkit-nats-cluster-'));
  const members = [];
  for (let i = 0; i < size; i++) {
    const name = `n${i + 1}`;
    members.push({ name, port: await freePort(), clusterPort: await freePort(), dir: join(root, name), child: undefined });
  }
  let single;
  let stopped = false;

  const launch = async (m) => {
    mkdirSync(m.dir, { recursive: true });
    const routes = members.filter((o) => o !== m).map((o) => `nats://127.0.0.1:${o.clusterPort}`).join(',');
    const args = ['-a', '127.0.0.1', '-p', String(m.port), '-n', m.name, '-js', '-sd', join(m.dir, 'js'),
      '--cluster_name', CLUSTER_NAME, '--cluster', `nats://127.0.0.1:${m.clusterPort}`, '--routes', routes];
    const out = openSync(join(root, `${m.name}.log`), 'a');
    try {
      m.child = spawn(bin, args, { stdio: ['ignore', out, out] });
    } finally {
      closeSync(out);
    }
    const child = m.child;
    children.add(child);
    child.once('exit', () => children.delete(child));
  };

  const kill = async (m) => {
    const c = m.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };

  /** A JetStream manager on one member's port only (no reconnect elsewhere), for `fn`. */
  const onMember = async (m, fn) => {
    const nc = await connect({ servers: `127.0.0.1:${m.port}`, timeout: 1000, reconnect: false });
    try {
      return await fn(await jetstreamManager(nc, { timeout: 2000 }), nc);
    } finally {
      await nc.close().catch(() => undefined);
    }
  };

  /** JetStream answers on this member (the meta group has a leader it knows). */
  const serving = (m) => onMember(m, async (jsm) => {
    await jsm.getAccountInfo();
    return true;
  });

  const alive = () => members.filter((m) => m.child && m.child.exitCode === null && m.child.signalCode === null);

  /** The stream's cluster info as a live member reports it. */
  const streamCluster = async () => {
    let lastErr;
    for (const m of alive()) {
      try {
        return await onMember(m, async (jsm) => (await jsm.streams.info(`KV_${bucket}`)).cluster);
      } catch (err) {
        lastErr = err;
      }
    }
    throw lastErr ?? new Error('no member is running');
  };

  /** One probe write to the bucket (a key outside rep/, not a revkit record), on a live member. */
  const probeWrite = async () => {
    const m = alive()[0];
    const nc = await connect({ servers: `127.0.0.1:${m.port}`, timeout: 1000, reconnect: false });
    try {
      const { jetstream } = await import('@nats-io/jetstream');
      const ack = await jetstream(nc, { timeout: 1000 }).publish(`$KV.${bucket}._cluster_probe`, new Uint8Array(0));
      return ack.seq > 0;
    } finally {
      await nc.close().catch(() => undefined);
    }
  };

  try {
    // A port picked free can be taken by another process before nats-server binds it (busy CI runs
    // start many servers): a member that does not come up is started again, on new ports.
    for (let attempt = 1; ; attempt++) {
      for (const m of members) await launch(m);
      try {
        for (const m of members) await until(`${m.name} serves JetStream`, () => serving(m), attempt < 3 ? 20_000 : READY_TIMEOUT_MS);
        // The meta group has a leader that creates streams (account info answers before it does). Seen on a
        // loaded CI run: every member served, yet "no suitable peers for placement" for a minute (routes not
        // formed): such a cluster is started again too.
        await until('the cluster creates a stream', () => onMember(members[0], async (jsm) => {
          await jsm.streams.add({ name: 'revkit_cluster_probe', subjects: ['revkit.cluster.probe'], num_replicas: Math.min(3, size) });
          await jsm.streams.delete('revkit_cluster_probe');
          return true;
        }), attempt < 3 ? 30_000 : READY_TIMEOUT_MS);
        break;
      } catch (err) {
        for (const m of members) await kill(m);
        if (attempt >= 3) throw err;
        log(`nats cluster did not come up (${err.message}); again on new ports`);
        rmSync(root, { recursive: true, force: true });
        for (const m of members) Object.assign(m, { port: await freePort(), clusterPort: await freePort() });
      }
    }
    log(`nats cluster up: ${members.map((m) => `${m.name}=127.0.0.1:${m.port}`).join(' ')} (${root})`);
  } catch (err) {
    for (const m of members) await kill(m);
    rmSync(root, { recursive: true, force: true });
    throw err;
  }

  const hosts = members.map((m) => `127.0.0.1:${m.port}`).join(',');
  const cluster = {
    bucket,
    replicas,
    members,
    url: `nats://${hosts}/?bucket=${bucket}&replicas=${replicas}`,
    /** A private one-server JetStream (not clustered) with the same bucket name: the bench's baseline. */
    get singleUrl() {
      if (!single) throw new Error('call await cluster.startSingle() first');
      return single.url;
    },
    async startSingle() {
      if (single) return single.url;
      const m = { name: 'single', port: await freePort(), dir: join(root, 'single') };
      mkdirSync(m.dir, { recursive: true });
      const out = openSync(join(root, 'single.log'), 'a');
      try {
        m.child = spawn(bin, ['-a', '127.0.0.1', '-p', String(m.port), '-js', '-sd', join(m.dir, 'js')], { stdio: ['ignore', out, out] });
      } finally {
        closeSync(out);
      }
      children.add(m.child);
      await until('single server serves JetStream', () => serving(m));
      single = { ...m, url: `nats://127.0.0.1:${m.port}/?bucket=${bucket}` };
      return single.url;
    },
    /** The member leading KV_<bucket> now (by its server name), or undefined while none does. */
    async leader() {
      const c = await streamCluster();
      return members.find((m) => m.name === c?.leader);
    },
    streamCluster,
    /**
     * SIGKILLs the stream leader (mark('kill') at that instant), waits until another member leads the
     * stream and a write is stored, then starts the killed one again on the same store dir (emptied with
     * `wipe`) and waits until it is a current replica again (or, for replicas=1, until writes succeed).
     */
    async failover({ log: say = log, mark = () => undefined, wipe = false } = {}) {
      const old = await until('the stream has a leader', () => cluster.leader());
      await kill(old);
      mark('kill');
      say(`nats: killed stream leader ${old.name} (127.0.0.1:${old.port})${wipe ? ', wiping its store' : ''}`);
      if (wipe) rmSync(old.dir, { recursive: true, force: true });
      let next;
      if (replicas > 1) {
        next = await until('a new stream leader', async () => {
          const m = await cluster.leader();
          return m && m !== old ? m : undefined;
        });
        await until('a write is stored after the failover', probeWrite);
        say(`nats: ${next.name} leads KV_${bucket}; restarting ${old.name}`);
      }
      await launch(old);
      await until(`${old.name} serves JetStream again`, () => serving(old));
      if (replicas > 1) {
        await until(`${old.name} is a current replica again`, async () => {
          const c = await streamCluster();
          return c?.leader && (c.replicas ?? []).some((r) => r.name === old.name && r.current);
        });
      } else {
        await until('a write is stored after the restart', probeWrite);
        next = await cluster.leader();
      }
      say(`nats: ${old.name} back; leader ${next?.name}`);
      return { old: old.name, new: next?.name };
    },
    /** SIGSTOPs one member by name (a paused server: its peers see it gone, it does not know). */
    pause(name) {
      const m = members.find((x) => x.name === name);
      if (m?.child && m.child.exitCode === null) process.kill(m.child.pid, 'SIGSTOP');
    },
    /** SIGCONTs a member paused by pause(). */
    resume(name) {
      const m = members.find((x) => x.name === name);
      if (m?.child && m.child.exitCode === null) process.kill(m.child.pid, 'SIGCONT');
    },
    /** Kills one member by name (without restarting it). */
    async kill(name) {
      const m = members.find((x) => x.name === name);
      if (m) await kill(m);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const m of members) {
        // A paused member would never see its SIGKILL handled before it is resumed.
        if (m.child && m.child.exitCode === null) process.kill(m.child.pid, 'SIGCONT');
        await kill(m);
      }
      if (single) await kill(single);
      rmSync(root, { recursive: true, force: true });
    },
  };
  return cluster;
}
