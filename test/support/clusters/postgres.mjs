/**
 * A private PostgreSQL primary + streaming standby on free loopback ports, in
 * a temp dir (never the machine's PostgreSQL on 5432), for failover tests,
 * the soak and the bench. Plain ESM so scripts can import it.
 *
 *   const cluster = await startPostgresCluster({ synchronous: true });
 *   cluster.url         // postgres://postgres@127.0.0.1:P1,127.0.0.1:P2/test (both members; revkit writes to the primary)
 *   cluster.paramUrl    // the same as postgres:///test?user=postgres&host=127.0.0.1,127.0.0.1&port=P1,P2
 *   cluster.singleUrl   // postgres://postgres@127.0.0.1:<a standalone server, same build and settings>/test
 *   cluster.holdReplication();            // SIGSTOP the primary's walsenders: commits from now on never reach the standby
 *   await cluster.failover({ log, mark }); // SIGKILL the primary (and its children), promote the standby,
 *                                          // re-create the old one as a standby of the new one (fresh pg_basebackup)
 *   await cluster.stop();
 *
 * synchronous: true sets synchronous_standby_names = '*' (synchronous_commit
 * on): a commit waits for the standby's flush, and with one standby the
 * promoted primary accepts no commit until the re-created standby attaches —
 * failover() waits for that, so its takeover time includes the rebuild.
 * synchronous: false is plain asynchronous streaming.
 * PostgreSQL refuses to run as root: as root, every tool runs as the
 * `postgres` OS user (runuser), as test/support/servers.ts does.
 */
import { execFile, execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { HOST, freePort, sleep, until as untilReady } from './common.mjs';

const execFileAsync = promisify(execFile);

const asRoot = process.getuid?.() === 0;
const running = new Set();
process.once('exit', () => {
  for (const killNow of running) killNow();
});

/** The newest PostgreSQL server binaries installed (REVKIT_PG_BIN overrides). */
export function binDir() {
  if (process.env.REVKIT_PG_BIN) return process.env.REVKIT_PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error('PostgreSQL binaries not found under /usr/lib/postgresql (set REVKIT_PG_BIN)');
  return join(root, versions[0], 'bin');
}

const until = (what, probe, timeoutMs) => untilReady('postgres cluster', what, probe, timeoutMs);

/** One short-lived admin query; answers the rows. */
async function query(port, sql, database = 'postgres', options) {
  const client = new pg.Client({ host: HOST, port, user: 'postgres', database, connectionTimeoutMillis: 2000, ...(options ? { options } : {}) });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.query(sql)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function signal(pid, sig) {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Running (a zombie counts as gone: pid 1 of a container may reap it late). */
function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The direct children of a process (PostgreSQL's backends, walsenders, …), from /proc. */
function childrenOf(pid) {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may hold spaces and parentheses, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/**
 * @param {{ synchronous?: boolean, synchronousCommit?: string, single?: boolean, kill?: 'machine' | 'postmaster-first', log?: (line: string) => void }} [options]
 *   single: false skips the standalone server behind singleUrl (tests that do not need it start faster).
 *   kill: 'machine' (default) stops every process of the server, then kills them; 'postmaster-first'
 *   kills the postmaster, then its children one by one (the OOM killer's choice of the postmaster):
 *   its backends live on a moment, and one waiting for a synchronous standby commits locally.
 */
export async function startPostgresCluster(options = {}) {
  const synchronous = options.synchronous ?? true;
  const log = options.log ?? (() => undefined);
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'revkit-pgcluster-'));
  const uid = asRoot ? Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()) : undefined;
  const gid = asRoot ? Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()) : undefined;
  if (asRoot) chownSync(dir, uid, gid);
  // Asynchronous: the test process (and any store it runs) goes on while a tool runs.
  const run = async (tool, args) => {
    const cmd = join(bin, tool);
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
    try {
      return (await execFileAsync(file, argv, { cwd: dir, encoding: 'utf8' })).stdout;
    } catch (err) {
      throw new Error(`${tool} ${args.join(' ')} failed: ${String(err.stderr ?? err.message)}`);
    }
  };
  const settings = [
    "listen_addresses = '127.0.0.1'",
    'max_connections = 200',
    'wal_level = replica',
    'max_wal_senders = 10',
    'hot_standby = on',
    'wal_keep_size = 64MB',
    `synchronous_standby_names = '${synchronous ? '*' : ''}'`,
    `synchronous_commit = ${options.synchronousCommit ?? 'on'}`,
    "log_min_messages = 'warning'",
  ];
  let seq = 0;
  /** One member: its port is kept across rebuilds (the URL names it); its data dir is new each time. */
  const makeNode = async (name) => ({ name, port: await freePort(), data: undefined });
  const pidOf = (node) => {
    try {
      return Number(readFileSync(join(node.data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return undefined;
    }
  };
  const start = async (node) => {
    const opts = `-p ${node.port} -k ${dir}`;
    // A SIGKILLed postmaster's children may hold the port a moment: try again.
    await until(`${node.name} to start`, async () => {
      await run('pg_ctl', ['-D', node.data, '-l', join(dir, `${node.name}.log`), '-o', opts, '-w', '-t', '60', 'start']);
      return true;
    });
    await until(`${node.name} to answer`, () => query(node.port, 'SELECT 1'));
  };
  /**
   * The machine dies: every process of the server at once. All are stopped first, then killed: a
   * postmaster killed before its children lets them see its death, and a backend waiting for the
   * synchronous standby then ends its wait and commits locally — for a moment other sessions of the
   * dying server see a commit the standby never got (docs/replication-postgres.md). That is
   * PostgreSQL's behaviour when the postmaster alone dies, not a crash of the machine.
   */
  const killNode = async (node, mark) => {
    const pid = pidOf(node);
    if (!pid) return;
    if (options.kill === 'postmaster-first') {
      const children = childrenOf(pid);
      signal(pid, 'SIGKILL');
      mark?.('kill');
      for (const c of children) signal(c, 'SIGKILL');
      await until(`${node.name} to die`, () => !alive(pid) && children.every((c) => !alive(c)), 30_000);
      return;
    }
    signal(pid, 'SIGSTOP'); // a stopped postmaster forks no more children, and they do not notice it stopped
    const children = childrenOf(pid);
    for (const c of children) signal(c, 'SIGSTOP');
    signal(pid, 'SIGKILL');
    mark?.('kill');
    for (const c of children) signal(c, 'SIGKILL');
    await until(`${node.name} to die`, () => !alive(pid) && children.every((c) => !alive(c)), 30_000);
  };
  const standbyOf = async (node, primary) => {
    node.data = join(dir, `${node.name}-${++seq}`);
    await run('pg_basebackup', ['-h', HOST, '-p', String(primary.port), '-U', 'postgres', '-D', node.data, '-R', '-X', 'stream', '-c', 'fast', '--no-sync']);
    // Named, so pg_stat_replication tells the members apart.
    appendFileSync(join(node.data, 'postgresql.auto.conf'), `primary_conninfo = 'host=${HOST} port=${primary.port} user=postgres application_name=${node.name}'\nrecovery_target_timeline = 'latest'\n`);
    await start(node);
    await until(`${node.name} to stream from ${primary.name}`, async () => (await query(primary.port, `SELECT 1 FROM pg_stat_replication WHERE application_name = '${node.name}' AND state = 'streaming'`)).length === 1);
  };

  const a = await makeNode('pg-a');
  const b = await makeNode('pg-b');
  const nodes = [a, b];
  const killAll = () => {
    for (const n of nodes) {
      const pid = n.data && pidOf(n);
      if (pid) {
        for (const c of childrenOf(pid)) signal(c, 'SIGKILL');
        signal(pid, 'SIGKILL');
      }
    }
  };
  running.add(killAll);
  let single;
  try {
    a.data = join(dir, `${a.name}-${++seq}`);
    await run('initdb', ['-D', a.data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
    appendFileSync(join(a.data, 'postgresql.conf'), `\n${settings.join('\n')}\n`);
    // Without a standby yet, a synchronous primary would hold CREATE DATABASE's commit: create it first, asynchronously.
    await start(a);
    await query(a.port, 'CREATE DATABASE test', 'postgres', '-c synchronous_commit=local');
    await standbyOf(b, a);
    if (options.single !== false) single = await startSingle(bin, dir, run, settings.filter((s) => !s.startsWith('synchronous_standby_names')));
  } catch (err) {
    killAll();
    running.delete(killAll);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let primary = a;
  let standby = b;
  let stopped = false;
  log(`postgres cluster: primary ${a.name} :${a.port}, standby ${b.name} :${b.port} (${synchronous ? 'synchronous' : 'asynchronous'})`);

  const walsenders = () => {
    const pid = pidOf(primary);
    return pid ? childrenOf(pid).filter((c) => /walsender/.test(cmdline(c))) : [];
  };

  return {
    url: `postgres://postgres@${HOST}:${a.port},${HOST}:${b.port}/test`,
    /** The same members in libpq's other form (?host=h1,h2&port=p1,p2): a URL that WHATWG URL parsing accepts. */
    paramUrl: `postgres:///test?user=postgres&host=${HOST},${HOST}&port=${a.port},${b.port}`,
    singleUrl: single?.url,
    dir,
    get primary() {
      return { name: primary.name, port: primary.port };
    },
    get standby() {
      return { name: standby.name, port: standby.port };
    },
    /** The standby gets no more WAL: the primary's walsenders are SIGSTOPped (failover() kills them). Answers how many. */
    holdReplication() {
      const pids = walsenders();
      for (const p of pids) signal(p, 'SIGSTOP');
      log(`postgres cluster: walsender(s) ${pids.join(', ')} of ${primary.name} stopped`);
      return pids.length;
    },
    /** An admin query on the current primary (or `port`). */
    query: (sql, port = primary.port) => query(port, sql, 'test'),
    async failover({ log: say = log, mark } = {}) {
      const old = primary;
      const next = standby;
      const t0 = Date.now();
      await killNode(old, mark);
      say(`postgres cluster: ${old.name} :${old.port} SIGKILLed`);
      await run('pg_ctl', ['-D', next.data, '-w', '-t', '60', 'promote']);
      await until(`${next.name} to leave recovery`, async () => (await query(next.port, 'SELECT pg_is_in_recovery() AS r'))[0].r === false);
      say(`postgres cluster: ${next.name} :${next.port} promoted after ${Date.now() - t0} ms`);
      primary = next;
      standby = old;
      rmSync(old.data, { recursive: true, force: true });
      await standbyOf(old, next);
      say(`postgres cluster: ${old.name} :${old.port} back as a standby of ${next.name} after ${Date.now() - t0} ms`);
      return { old: `${HOST}:${old.port}`, new: `${HOST}:${next.port}` };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      killAll();
      await single?.stop();
      running.delete(killAll);
      for (const n of nodes) {
        const pid = n.data && pidOf(n);
        if (pid) await until(`${n.name} to stop`, () => !alive(pid), 30_000).catch(() => undefined);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A standalone server of the same build and settings (no standby), for the bench's single-server baseline. */
async function startSingle(bin, dir, run, settings) {
  const port = await freePort();
  const data = join(dir, 'single');
  await run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
  appendFileSync(join(data, 'postgresql.conf'), `\n${settings.join('\n')}\n`);
  await run('pg_ctl', ['-D', data, '-l', join(dir, 'single.log'), '-o', `-p ${port} -k ${dir}`, '-w', '-t', '60', 'start']);
  await until('the single server to answer', () => query(port, 'SELECT 1'));
  await query(port, 'CREATE DATABASE test');
  const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const killNow = () => signal(pid, 'SIGKILL');
  running.add(killNow);
  return {
    url: `postgres://postgres@${HOST}:${port}/test`,
    async stop() {
      running.delete(killNow);
      for (const c of childrenOf(pid)) signal(c, 'SIGKILL');
      signal(pid, 'SIGKILL');
      await until('the single server to stop', () => !alive(pid), 30_000).catch(() => undefined);
    },
  };
}

