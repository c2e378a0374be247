// A private PostgreSQL server for the growth benchmarks (bench/growth-*.mjs): millions of rows
// must never go into the machine's shared server on 5432. initdb in a temp dir, pg_ctl start on a
// free loopback port with the socket in that dir, stop() stops it and deletes the data.
// As root, PostgreSQL's tools run as the `postgres` OS user (runuser), as test/support does.
//
// Settings: PostgreSQL's defaults except what a real deployment of a store of this size sets
// (SETTINGS below, also written to the results): more shared_buffers than the 128 MB default,
// a larger max_wal_size so bulk writes are not checkpoint-bound, maintenance_work_mem for
// index builds and VACUUM, effective_cache_size telling the planner about the OS cache.
// fsync, synchronous_commit, full_page_writes and autovacuum stay on (the defaults).
import { execFile, execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { HOST, freePort, sleep } from '../../test/support/clusters/common.mjs';
import { binDir } from '../../test/support/clusters/postgres.mjs';

const execFileAsync = promisify(execFile);

export const SETTINGS = [
  "listen_addresses = '127.0.0.1'",
  'shared_buffers = 1GB',
  'effective_cache_size = 8GB',
  'maintenance_work_mem = 512MB',
  'max_wal_size = 8GB',
  'checkpoint_completion_target = 0.9',
  "log_min_messages = 'warning'",
];

/** Starts the server; answers { url(database), port, dir, version, settings, client(), stop() }. */
export async function startPrivatePostgres({ database = 'growth', log = () => undefined } = {}) {
  const bin = binDir();
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'revkit-growth-pg-'));
  const data = join(dir, 'data');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  const run = async (tool, args) => {
    const cmd = join(bin, tool);
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
    try {
      return (await execFileAsync(file, argv, { cwd: dir, encoding: 'utf8' })).stdout;
    } catch (err) {
      throw new Error(`${tool} ${args.join(' ')} failed: ${String(err.stderr ?? err.message)}`);
    }
  };
  const port = await freePort();
  let started = false;
  const stop = async () => {
    if (started) {
      started = false;
      await run('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '120', 'stop']).catch((err) => log(`pg_ctl stop: ${err.message}`));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
    appendFileSync(join(data, 'postgresql.conf'), `\n# revkit growth benchmark\n${SETTINGS.join('\n')}\n`);
    await run('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-o', `-p ${port} -k ${dir}`, '-w', '-t', '120', 'start']);
    started = true;
    const admin = new pg.Client({ host: HOST, port, user: 'postgres', database: 'postgres' });
    for (let i = 0; ; i++) {
      try {
        await admin.connect();
        break;
      } catch (err) {
        if (i > 100) throw err;
        await sleep(100);
      }
    }
    await admin.query(`CREATE DATABASE ${database}`);
    const version = (await admin.query('SHOW server_version')).rows[0].server_version;
    await admin.end();
    log(`private PostgreSQL ${version} on 127.0.0.1:${port} (${data})`);
    const url = `postgres://postgres@${HOST}:${port}/${database}`;
    return {
      url,
      port,
      dir,
      version,
      settings: SETTINGS,
      /** A connected pg.Client on the benchmark database (the caller ends it). */
      async client() {
        const c = new pg.Client({ connectionString: url });
        c.on('error', () => undefined);
        await c.connect();
        return c;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Watches PostgreSQL's activity every `everyMs` for the stores' background sweep (its prune statement,
 * "SELECT DISTINCT key FROM <prefix>changes") and answers, per table prefix, how often it was seen
 * running and the longest run seen: what the sweep costs while the stores are in use.
 */
export function sweepSampler(server, prefixes, everyMs = 200) {
  const stats = Object.fromEntries(prefixes.map((p) => [p, { samples: 0, seenRunning: 0, longestMs: 0 }]));
  let client;
  let stopped = false;
  const loop = (async () => {
    client = await server.client();
    while (!stopped) {
      const rows = (await client.query(`SELECT query, extract(epoch FROM clock_timestamp() - query_start) * 1000 AS running FROM pg_stat_activity
        WHERE state = 'active' AND query LIKE '%SELECT DISTINCT key FROM%' AND pid <> pg_backend_pid()`)).rows;
      for (const p of prefixes) {
        const s = stats[p];
        s.samples++;
        const row = rows.find((r) => r.query.includes(`"${p}changes"`));
        if (row) {
          s.seenRunning++;
          s.longestMs = Math.max(s.longestMs, Math.round(Number(row.running)));
        }
      }
      await sleep(everyMs);
    }
    await client.end();
  })();
  return {
    async stop() {
      stopped = true;
      await loop.catch(() => undefined);
      return Object.fromEntries(Object.entries(stats).map(([p, s]) => [p, { ...s, busyFraction: s.samples ? Math.round((s.seenRunning / s.samples) * 1000) / 1000 : null }]));
    },
  };
}
