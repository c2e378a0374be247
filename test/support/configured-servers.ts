/**
 * Private servers with settings of the test's choosing (servers.ts starts
 * them with fixed ones): a PostgreSQL with a tiny max_connections, a Redis
 * that requires a password. Each runs on a free loopback port with its data
 * in a fresh temp dir; the machine's own servers are never touched.
 *
 *   const pg = await startConfiguredPostgres({ max_connections: 5, superuser_reserved_connections: 2 });
 *   const redis = await startConfiguredRedis(['--requirepass', 'pw']);
 *   await pg.kill('SIGQUIT'); // immediate shutdown: every connection is cut
 *   await pg.stop();          // stops it and deletes its data (afterAll)
 *
 * PostgreSQL refuses to run as root: as root, initdb and pg_ctl run as the
 * `postgres` OS user (runuser). Binaries as in servers.ts.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './servers.js';

export interface ConfiguredServer {
  /** postgres://postgres@127.0.0.1:<port>/test or redis://127.0.0.1:<port> (no password in it). */
  readonly url: string;
  readonly port: number;
  /** Sends `signal` (PostgreSQL: to the postmaster; SIGQUIT is an immediate shutdown) and waits until it is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Sends `signal` and returns at once (SIGSTOP, SIGCONT). */
  signal(signal: NodeJS.Signals): void;
  /** Stops it if running and deletes its data directory. Safe to call twice. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;
const running = new Set<() => void>();
process.once('exit', () => {
  for (const killNow of running) killNow();
});

/** A PostgreSQL 127.0.0.1:<free port> with database `test`, trust auth, and these settings (`-c name=value`). */
export async function startConfiguredPostgres(settings: Record<string, string | number>): Promise<ConfiguredServer> {
  const binDir = postgresBinDir();
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'revkit-pgconf-'));
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
  const extra = Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`).join(' ');
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off ${extra}`;
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
  running.add(killNow);
  let stopped = false;
  const stop = async () => {
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
  };
  try {
    run('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-o', options, '-w', '-t', '60', 'start']);
    await waitFor(() => pgQuery(port, 'postgres', 'SELECT 1'));
    await pgQuery(port, 'postgres', 'CREATE DATABASE test');
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/test`,
    port,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      const pid = postmasterPid();
      if (pid) signalPid(pid, signal);
      await waitGone(pid);
    },
    signal(signal: NodeJS.Signals) {
      const pid = postmasterPid();
      if (pid) signalPid(pid, signal);
    },
    stop,
  };
}

/** A redis-server 127.0.0.1:<free port>, no persistence, with these extra arguments (e.g. `--requirepass pw`). */
export async function startConfiguredRedis(args: string[] = []): Promise<ConfiguredServer> {
  const bin = findBinary('redis-server', ['/usr/bin', '/usr/sbin', '/usr/local/bin']);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'revkit-redisconf-'));
  const log = openSync(join(dir, 'server.log'), 'a');
  let child: ChildProcess;
  try {
    child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...args], { stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
  const c = child;
  const killNow = () => c.kill('SIGKILL');
  running.add(killNow);
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    await exited;
  };
  const signal = (sig: NodeJS.Signals) => {
    if (c.exitCode === null && c.signalCode === null) c.kill(sig);
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await kill('SIGKILL');
    running.delete(killNow);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => redisPing(port));
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `redis://127.0.0.1:${port}`, port, kill, signal, stop };
}

// ---------------------------------------------------------------------- helpers

function findBinary(name: string, dirs: string[]): string {
  for (const d of [...(process.env.PATH ?? '').split(':').filter(Boolean), ...dirs]) {
    if (existsSync(join(d, name))) return join(d, name);
  }
  throw new Error(`${name} not found (looked in PATH and ${dirs.join(', ')}): install it to run this test`);
}

function postgresBinDir(): string {
  if (process.env.REVKIT_PG_BIN) return process.env.REVKIT_PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions[0]) return join(root, versions[0], 'bin');
  return findBinary('initdb', []).slice(0, -'/initdb'.length);
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

/** Runs one statement as `postgres` on a connection of its own. */
export async function pgQuery(port: number, database: string, sql: string): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database, connectionTimeoutMillis: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Any answer to PING (+PONG, or -NOAUTH from a server with a password) means it serves. */
async function redisPing(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(1000, () => socket.destroy(new Error('timeout')));
    socket.once('error', reject);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (b) => {
      socket.destroy();
      if (/^(\+PONG|-NOAUTH)/.test(b.toString())) resolve();
      else reject(new Error(`redis answered ${b.toString().trim()}`));
    });
  });
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
