/**
 * Private database servers for tests that need a fault (a kill, a restart):
 * each one runs on a free loopback port with its data in a fresh temp dir,
 * so a test can kill it without touching the machine's own servers.
 *
 *   const nats = await startPrivateNats();      // nats-server -js
 *   const pg = await startPrivatePostgres();    // initdb + pg_ctl, trust auth, database `test`
 *   const redis = await startPrivateRedis();    // redis-server, append-only file
 *   await nats.kill();       // SIGKILL (or another signal); waits for the process to be gone
 *   await nats.restart();    // same port, same data; resolves once it serves again
 *   await nats.stop();       // stops it and deletes its data (call it in afterAll / finally)
 *
 * A missing binary fails with an Error naming it. Servers still running when
 * the test process exits are killed then. PostgreSQL refuses to run as root:
 * as root, initdb and pg_ctl run as the `postgres` OS user (runuser).
 * Binaries: `nats-server`, `redis-server` from PATH (or /usr/sbin, /usr/bin);
 * PostgreSQL from REVKIT_PG_BIN, else the newest /usr/lib/postgresql/<v>/bin, else PATH.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PrivateServer {
  /** How to connect: nats://127.0.0.1:<port>, postgres://postgres@127.0.0.1:<port>/test, redis://127.0.0.1:<port>. */
  readonly url: string;
  /** Sends `signal` (default SIGKILL) to the server and waits until its processes are gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again (after kill) on the same port and data; resolves when it serves requests. */
  restart(): Promise<void>;
  /** Stops it if running and deletes its data directory. Safe to call twice. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;
const running = new Set<() => void>();
process.once('exit', () => {
  for (const killNow of running) killNow();
});
// A worker stopped by a signal (Ctrl-C reaches every process of the group) runs no 'exit' handlers:
// pg_ctl's postmaster has left our process group, and would outlive the run.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    for (const killNow of running) killNow();
    process.kill(process.pid, signal);
  });
}

export async function startPrivateNats(): Promise<PrivateServer> {
  const bin = findBinary('nats-server', ['/usr/sbin', '/usr/bin', '/usr/local/bin']);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'revkit-nats-'));
  return childServer(`nats://127.0.0.1:${port}`, dir, () => spawnLogged(bin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], dir), () => natsReady(port));
}

export async function startPrivateRedis(): Promise<PrivateServer> {
  const bin = findBinary('redis-server', ['/usr/bin', '/usr/sbin', '/usr/local/bin']);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'revkit-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--daemonize', 'no'];
  return childServer(`redis://127.0.0.1:${port}`, dir, () => spawnLogged(bin, args, dir), () => redisReady(port));
}

export async function startPrivatePostgres(): Promise<PrivateServer> {
  const binDir = postgresBinDir();
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'revkit-pg-'));
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  const run = (tool: string, args: string[]) => {
    const cmd = join(binDir, tool);
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
    execFileSync(file, argv, { stdio: 'pipe', cwd: dir });
  };
  const port = await freePort();
  try {
    run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${String((err as { stderr?: unknown }).stderr ?? err)}`);
  }
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=200`;
  const start = () => run('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-o', options, '-w', '-t', '60', 'start']);
  const postmasterPid = (): number | undefined => {
    try {
      return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return undefined;
    }
  };
  const killNow = () => {
    const pid = postmasterPid();
    if (pid) signalPid(pid, 'SIGQUIT');
  };
  const waitGone = async (pid: number | undefined) => {
    const until = Date.now() + READY_TIMEOUT_MS;
    while (pid !== undefined && alive(pid) && Date.now() < until) await sleep(50);
  };
  const url = `postgres://postgres@127.0.0.1:${port}/test`;
  const ready = () => waitFor(() => pgQuery(port, 'postgres', 'SELECT 1'));
  start();
  running.add(killNow);
  await ready();
  await pgQuery(port, 'postgres', 'CREATE DATABASE test');
  let stopped = false;
  return {
    url,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      const pid = postmasterPid();
      if (pid) signalPid(pid, signal);
      await waitGone(pid);
    },
    async restart() {
      // Backends outlive a SIGKILLed postmaster for a moment, and a new one
      // refuses to start while they hold the old shared memory: try again.
      await waitFor(async () => start());
      await ready();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      running.delete(killNow);
      const pid = postmasterPid();
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
      } catch {
        // already down
      }
      await waitGone(pid);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------- helpers

function findBinary(name: string, dirs: string[]): string {
  for (const d of [...(process.env.PATH ?? '').split(':').filter(Boolean), ...dirs]) {
    if (existsSync(join(d, name))) return join(d, name);
  }
  throw new Error(`${name} not found (looked in PATH and ${dirs.join(', ')}): install it to run this test`);
}

function postgresBinDir(): string {
  if (process.env.REVKIT_PG_BIN) {
    if (!existsSync(join(process.env.REVKIT_PG_BIN, 'initdb'))) throw new Error(`initdb not found in REVKIT_PG_BIN=${process.env.REVKIT_PG_BIN}`);
    return process.env.REVKIT_PG_BIN;
  }
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions[0]) return join(root, versions[0], 'bin');
  const initdb = findBinary('initdb', []);
  return initdb.slice(0, -'/initdb'.length);
}

/** A server this process spawns directly: kill() signals the child and waits for its exit. */
async function childServer(url: string, dir: string, spawnIt: () => ChildProcess, ready: () => Promise<void>): Promise<PrivateServer> {
  let child: ChildProcess | undefined;
  let stopped = false;
  const killNow = () => child?.kill('SIGKILL');
  const launch = async () => {
    const c = spawnIt();
    child = c;
    const failed = new Promise<never>((_, reject) => c.once('exit', (code, sig) => reject(new Error(`${url}: server exited at start (${code ?? sig}); see ${dir}/server.log`))));
    failed.catch(() => undefined);
    await Promise.race([ready(), failed]);
  };
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    await exited;
  };
  running.add(killNow);
  try {
    await launch();
  } catch (err) {
    killNow();
    running.delete(killNow);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    kill,
    async restart() {
      await kill('SIGKILL');
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await kill('SIGKILL');
      running.delete(killNow);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function spawnLogged(bin: string, args: string[], dir: string): ChildProcess {
  const log = openSync(join(dir, 'server.log'), 'a');
  try {
    return spawn(bin, args, { stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(probe: () => Promise<unknown>): Promise<void> {
  const until = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    try {
      await probe();
      return;
    } catch (err) {
      if (Date.now() > until) throw err;
      await sleep(100);
    }
  }
}

async function natsReady(port: number): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  await waitFor(async () => {
    const nc = await connect({ servers: `127.0.0.1:${port}`, timeout: 1000, reconnect: false });
    try {
      await (await jetstreamManager(nc, { timeout: 1000 })).getAccountInfo();
    } finally {
      await nc.close();
    }
  });
}

async function redisReady(port: number): Promise<void> {
  await waitFor(() => new Promise<void>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(1000, () => socket.destroy(new Error('timeout')));
    socket.once('error', reject);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (b) => {
      socket.destroy();
      if (b.toString().startsWith('+PONG')) resolve();
      else reject(new Error(`redis answered ${b.toString().trim()}`));
    });
  }));
}

async function pgQuery(port: number, database: string, sql: string): Promise<void> {
  const pg = (await import('pg')).default;
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database, connectionTimeoutMillis: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
