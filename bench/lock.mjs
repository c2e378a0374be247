#!/usr/bin/env node
// revkit/lock against etcd 3.4's lock service: acquire + fenced write + release per second.
//
// One cycle: take the lock NAME (waiting in arrival order), write a counter under the lock's
// fence, release. Cells, side by side in one run, in alternating order round by round:
//   - 1 client (uncontended) and N contenders (default 16: N sessions, each looping
//     acquire → fenced write of the counter → release on the SAME lock name);
//   - revkit (ttlMs 10,000) on memory:, sqlite: (a temp file), postgres:// (a unique
//     ?prefix=, dropped afterwards), redis:// (a unique ?prefix=, dropped afterwards), and
//     over HTTP: a revkit server (dist/server, in this process) on SQLite, HttpStore clients.
//     Each contender opens its own store (connection), as N replicas would; memory: is
//     one store for all (--stores shared: one store for every contender on each backend).
//     PostgreSQL stores use ?poolSize=2 so that 16 of them stay well inside max_connections;
//   - etcd 3.4 (a private server on free ports, data in a temp folder, fsync on), in this
//     process through its JSON gateway with undici, one keep-alive connection per
//     contender, one lease (TTL 10 s, kept alive every 3 s) per contender:
//       POST /v3/lock/lock {name, lease} → the lock key; POST /v3/kv/range on it → its
//       create_revision (the fence: the gateway does not return it); POST /v3/kv/txn
//       comparing the lock key's create_revision, then the put; POST /v3/lock/unlock.
//     A reference row (--no-reference leaves it out) skips the range: the txn compares
//     that the lock key still exists (it is unique to the lease, so that is as safe) and
//     reads the fence back in the same txn — 3 requests per cycle, etcd's cheapest fence.
// Every cell checks itself: no two holders at once (a flag in this process), and the stored
// counter equals the number of acknowledged fenced writes.
//
// Then, process by process (skipped with a message while `revkit lock` is not in the CLI):
//   etcdctl lock NAME -- etcdctl put KEY V   vs   revkit --store sqlite:… lock NAME -- revkit --store sqlite:… put KEY V
// each as 1 client and N contenders, with the child command alone (no lock) as a reference.
//
// Nothing here asserts a speed: the script prints what it measured (and exits non-zero only
// on errors, overlaps or a counter that does not match). ops/s = completed cycles per second
// of the cell; p50/p99 = time per cycle from asking for the lock to the release's answer
// (with contenders, the wait in line included); ×etcd = revkit ops/s / etcd lock-service
// ops/s, median of the per-round ratios.
//
// Usage: npm run build && node bench/lock.mjs [--quick] [--seconds 10 (per cell, split over the rounds)]
//          [--rounds 3] [--contenders 16] [--only memory,sqlite,postgres,redis,http,etcd,process]
//          [--stores own|shared] [--no-reference] [--no-process] [--etcd /usr/bin/etcd] [--out DIR] [--json PATH]
// JSON (lock.json) goes to --out DIR or --json PATH, or, when run by bench/all.mjs, to its output folder.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from 'undici';
import { open } from '../dist/index.js';
import { openSession } from '../dist/lock/index.js';
import { createServer, HttpStore } from '../dist/server/index.js';
import { freePort, spawnServer, table, cpuSeconds } from './lib/http-client.mjs';
import { median, percentile } from './lib/stats.mjs';
import { output } from './lib/out.mjs';
import * as pgTarget from './targets/postgres.mjs';
import * as redisTarget from './targets/redis.mjs';

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const value = (name) => {
  const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return undefined;
  return argv[i].includes('=') ? argv[i].slice(argv[i].indexOf('=') + 1) : argv[i + 1];
};
const QUICK = flag('quick');
const ROUNDS = Number(value('rounds') ?? (QUICK ? 2 : 3));
const CELL_SECONDS = Number(value('seconds') ?? (QUICK ? 3 : 10));
const ROUND_MS = Math.max(200, Math.round((CELL_SECONDS * 1000) / ROUNDS));
const WARMUP_MS = QUICK ? 300 : 1000;
const CONTENDERS = Number(value('contenders') ?? 16);
const SHARED = value('stores') === 'shared';
const ONLY = value('only')?.split(',').map((s) => s.trim()).filter(Boolean);
const wanted = (name) => !ONLY || ONLY.includes(name);
const REFERENCE = !flag('no-reference');
const TTL_MS = 10_000;
const TOKEN = 'bench-lock-admin-token-0123456789';
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (![ROUNDS, CELL_SECONDS, CONTENDERS].every((n) => Number.isFinite(n) && n > 0)) {
  console.error('usage: node bench/lock.mjs [--quick] [--seconds 10] [--rounds 3] [--contenders 16] [--only a,b] [--stores own|shared] [--no-reference] [--no-process] [--etcd PATH] [--out DIR] [--json PATH]');
  process.exit(2);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const b64 = (text) => Buffer.from(text, 'utf8').toString('base64');
const unb64 = (text) => Buffer.from(text, 'base64').toString('utf8');
const findOnPath = (name) => {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : undefined;
};

// ---------------------------------------------------------------- the measuring loop

/**
 * Runs `clients` loops of `cell.cycle(i, state)` for `ms`; cycles in flight at the end are
 * finished and counted. `state` is shared by the contenders of a cell: `holding` catches two
 * holders at once, `acked` counts fenced writes acknowledged (the counter's expected value).
 */
async function drive(cell, clients, ms, { record = true, pids = [] } = {}) {
  const state = cell.state;
  const latencies = [];
  const errors = {};
  let cycles = 0;
  const cpuBefore = process.cpuUsage();
  const serverBefore = pids.map(cpuSeconds);
  const started = performance.now();
  const deadline = started + ms;
  await Promise.all(Array.from({ length: clients }, async (_, i) => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        await cell.cycle(i, state);
        cycles++;
        if (record) latencies.push(performance.now() - t0);
      } catch (err) {
        const code = err?.code ?? err?.name ?? 'error';
        errors[code] = (errors[code] ?? 0) + 1;
        if (!errors.first) Object.defineProperty(errors, 'first', { value: err, enumerable: false });
        await sleep(20);
      }
    }
  }));
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const serverCpu = pids.map((pid, k) => (cpuSeconds(pid) ?? Number.NaN) - (serverBefore[k] ?? Number.NaN));
  const sorted = Float64Array.from(latencies).sort();
  return {
    cycles, elapsedMs, errors,
    perSec: cycles / (elapsedMs / 1000),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    nodeCpuUs: cycles > 0 ? (cpu.user + cpu.system) / cycles : Number.NaN,
    serverCpuUs: pids.length > 0 && cycles > 0 ? (serverCpu.reduce((a, b) => a + b, 0) * 1e6) / cycles : undefined,
  };
}

/** Mutual exclusion as seen from this process: called right after acquiring, and right before releasing. */
function enter(state) {
  if (state.holding) state.overlaps++;
  state.holding = true;
}
function leave(state) {
  state.holding = false;
}

// ---------------------------------------------------------------- revkit cells

/**
 * A cell on revkit: `clients` sessions (each on its own store unless shared), each cycle
 * lock → atomic().set(counter, acked + 1).commit() → release. `place(tag)` gives every cell
 * a fresh, empty store ({ openStore, dispose }): every acquire leaves its waiter key behind
 * as a tombstone, so a store reused from cell to cell would make each cell slower than the last.
 */
function revkitTarget(name, label, { place, shared = SHARED }) {
  return {
    name, label, kind: 'revkit',
    async cell(clients, tag) {
      const where = await place(tag);
      const stores = [];
      const sessions = [];
      const close = async () => {
        await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
        await Promise.all(stores.map((s) => s.close().catch(() => undefined)));
        await where.dispose?.();
      };
      try {
        for (let i = 0; i < (shared ? 1 : clients); i++) stores.push(await where.openStore());
        for (let i = 0; i < clients; i++) sessions.push(await openSession(stores[shared ? 0 : i], { ttlMs: TTL_MS, prefix: 'locks/' }));
      } catch (err) {
        await close();
        throw err;
      }
      const lockName = `bench-${tag}`;
      const counter = `bench/counter-${tag}`;
      return {
        state: { holding: false, overlaps: 0, acked: 0 },
        async cycle(i, state) {
          const lock = await sessions[i].lock(lockName);
          enter(state);
          try {
            await lock.atomic().set(counter, state.acked + 1).commit();
            state.acked++;
          } finally {
            leave(state);
            await lock.release();
          }
        },
        async stored() {
          return (await stores[0].get(counter))?.value ?? 0;
        },
        close,
      };
    },
  };
}

// ---------------------------------------------------------------- etcd cells

async function etcdCall(client, path, body) {
  const res = await client.request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.body.text();
  if (res.statusCode !== 200) {
    throw Object.assign(new Error(`etcd ${path}: HTTP ${res.statusCode} ${text.slice(0, 300)}`), { code: `HTTP_${res.statusCode}` });
  }
  return JSON.parse(text);
}

/**
 * etcd's lock service through the JSON gateway. `fence: 'range'` (the lock-service row):
 * lock, range the lock key for its create_revision, txn comparing it, unlock — 4 requests.
 * `fence: 'exists'` (the reference row): lock, txn comparing that the lock key exists (and
 * reading its create_revision back in the same txn), unlock — 3 requests.
 */
function etcdTarget(name, label, etcd, fence) {
  return {
    name, label, kind: 'etcd', pids: () => [etcd.child.pid],
    async cell(clients, tag) {
      const conns = Array.from({ length: clients }, () => new Client(etcd.origin, { pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 }));
      const side = new Client(etcd.origin, { pipelining: 1, keepAliveTimeout: 60_000 });
      const leases = [];
      for (let i = 0; i < clients; i++) leases.push((await etcdCall(side, '/v3/lease/grant', { TTL: TTL_MS / 1000 })).ID);
      // the counterpart of a session's keepalive: every lease refreshed every 3 s, on a connection of its own
      const keepalive = setInterval(() => {
        for (const ID of leases) etcdCall(side, '/v3/lease/keepalive', { ID }).catch(() => undefined);
      }, 3000);
      const lockName = b64(`bench-${tag}`);
      const counter = b64(`bench/counter-${tag}`);
      return {
        state: { holding: false, overlaps: 0, acked: 0 },
        async cycle(i, state) {
          const conn = conns[i];
          const { key } = await etcdCall(conn, '/v3/lock/lock', { name: lockName, lease: leases[i] });
          enter(state);
          try {
            const put = { request_put: { key: counter, value: b64(String(state.acked + 1)) } };
            let txn;
            if (fence === 'range') {
              const got = await etcdCall(conn, '/v3/kv/range', { key });
              const fenceRev = got.kvs?.[0]?.create_revision;
              if (fenceRev === undefined) throw Object.assign(new Error('the lock key is gone'), { code: 'LOCK_KEY_GONE' });
              txn = { compare: [{ key, target: 'CREATE', result: 'EQUAL', create_revision: fenceRev }], success: [put] };
            } else {
              txn = { compare: [{ key, target: 'VERSION', result: 'GREATER', version: '0' }], success: [put, { request_range: { key } }] };
            }
            const r = await etcdCall(conn, '/v3/kv/txn', txn);
            if (!r.succeeded) throw Object.assign(new Error('fenced txn: compare failed'), { code: 'FENCE_FAILED' });
            if (fence === 'exists' && r.responses?.[1]?.response_range?.kvs?.[0]?.create_revision === undefined) {
              throw Object.assign(new Error('no fence read back'), { code: 'NO_FENCE' });
            }
            state.acked++;
          } finally {
            leave(state);
            await etcdCall(conn, '/v3/lock/unlock', { key });
          }
        },
        async stored() {
          const r = await etcdCall(side, '/v3/kv/range', { key: counter });
          return r.kvs?.[0] ? Number(unb64(r.kvs[0].value)) : 0;
        },
        async close() {
          clearInterval(keepalive);
          await Promise.all(leases.map((ID) => etcdCall(side, '/v3/lease/revoke', { ID }).catch(() => undefined)));
          await Promise.all([...conns, side].map((c) => c.close().catch(() => undefined)));
        },
      };
    },
  };
}

async function startEtcd(binary, dir) {
  const [client, peer] = [await freePort(), await freePort()];
  const version = spawnSync(binary, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0].replace(/^etcd Version: /, '');
  const server = await spawnServer(binary, [
    '--name', 'bench-lock', '--data-dir', join(dir, 'etcd'),
    '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `bench-lock=http://127.0.0.1:${peer}`, '--initial-cluster-state', 'new',
  ], /ready to serve client requests/);
  return { ...server, origin: `http://127.0.0.1:${client}`, version };
}

// ---------------------------------------------------------------- process-level cells

/** `revkit lock` exists in this build when its own help answers (an unknown command prints the general help). */
function cliLockCheck() {
  const r = spawnSync(process.execPath, [CLI, 'lock', '--help'], { encoding: 'utf8', timeout: 30_000 });
  const ok = r.status === 0 && /Usage: revkit lock\b/.test(r.stdout ?? '');
  return { ok, why: ok ? '' : `\`node dist/cli/main.js lock --help\` ${r.status === 0 ? 'printed the general help, not the lock command\'s' : `exited ${r.status ?? r.signal}`}` };
}

function runProcess(command, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(Object.assign(new Error(`${command} ${args.join(' ')} exited ${code ?? signal}: ${stderr.trim().slice(0, 300)}`), { code: `EXIT_${code ?? signal}` }));
    });
  });
}

function processTarget(name, label, argsFor, { env, locked = true } = {}) {
  return {
    name, label, kind: 'process',
    async cell(_clients, tag) {
      return {
        state: { holding: false, overlaps: 0, acked: 0 },
        async cycle() {
          const [command, args] = argsFor(tag);
          await runProcess(command, args, env);
        },
        stored: undefined,
        close: async () => undefined,
        locked,
      };
    },
  };
}

// ---------------------------------------------------------------- running the cells

/** One round over `targets`, each at each client count, order alternating round by round. */
async function measure(targets, counts, { round, results }) {
  const order = round % 2 === 0 ? targets : [...targets].reverse();
  for (const clients of counts) {
    for (const t of order) {
      const tag = `${t.name}-c${clients}-r${round}`;
      let cell;
      try {
        cell = await t.cell(clients, tag);
      } catch (err) {
        console.error(`lock: ${t.label} (${clients} clients) did not open: ${err?.message ?? err}`);
        (results[`${t.name}/${clients}`] ??= []).push({ failedToOpen: String(err?.message ?? err) });
        continue;
      }
      try {
        await drive(cell, clients, WARMUP_MS, { record: false });
        const before = cell.state.acked;
        const run = await drive(cell, clients, ROUND_MS, { pids: t.pids?.() ?? [] });
        const stored = cell.stored ? await cell.stored() : undefined;
        run.acked = cell.state.acked - before;
        run.overlaps = cell.state.overlaps;
        run.counterOk = stored === undefined ? undefined : stored === cell.state.acked;
        if (run.counterOk === false) run.counter = { stored, acked: cell.state.acked };
        const first = run.errors.first;
        if (first) console.error(`lock: ${t.label}, ${clients} clients, round ${round + 1}: ${Object.entries(run.errors).map(([k, n]) => `${n}× ${k}`).join(', ')}; first: ${first.message}`);
        (results[`${t.name}/${clients}`] ??= []).push(run);
        process.stderr.write(`  round ${round + 1}/${ROUNDS} ${t.label.padEnd(38)} ${String(clients).padStart(2)} clients ${run.perSec.toFixed(0).padStart(6)}/s\n`);
      } finally {
        await cell.close();
      }
    }
  }
}

function summarise(target, clients, runs, etcdRuns) {
  const ok = runs.filter((r) => !r.failedToOpen);
  if (ok.length === 0) return { target: target.name, label: target.label, clients, failed: runs[0]?.failedToOpen ?? 'no runs' };
  const ratios = etcdRuns ? ok.map((r, i) => (etcdRuns[i] && !etcdRuns[i].failedToOpen ? r.perSec / etcdRuns[i].perSec : Number.NaN)).filter((x) => !Number.isNaN(x)) : [];
  return {
    target: target.name, label: target.label, clients,
    opsPerSec: median(ok.map((r) => r.perSec)),
    rounds: ok.map((r) => Math.round(r.perSec)),
    p50Ms: median(ok.map((r) => r.p50Ms ?? Number.NaN)),
    p99Ms: median(ok.map((r) => r.p99Ms ?? Number.NaN)),
    nodeCpuUs: median(ok.map((r) => r.nodeCpuUs)),
    serverCpuUs: ok[0].serverCpuUs === undefined ? undefined : median(ok.map((r) => r.serverCpuUs)),
    cycles: ok.reduce((s, r) => s + r.cycles, 0),
    errors: ok.reduce((s, r) => s + Object.values(r.errors).reduce((a, b) => a + b, 0), 0),
    errorCodes: ok.reduce((all, r) => {
      for (const [code, n] of Object.entries(r.errors)) all[code] = (all[code] ?? 0) + n;
      return all;
    }, {}),
    overlaps: ok.reduce((s, r) => s + r.overlaps, 0),
    counterMismatches: ok.filter((r) => r.counterOk === false).map((r) => r.counter),
    ratioToEtcd: ratios.length > 0 ? median(ratios) : undefined,
    ratios,
  };
}

const fmt = (x, d = 2) => (x === undefined || x === null || Number.isNaN(x) ? '–' : x.toFixed(d));

function printTable(title, rows, { cpu = true, checks = true } = {}) {
  const head = ['target', 'clients', 'ops/s (median)', 'rounds', 'cycles', 'p50 ms', 'p99 ms', '× etcd'];
  if (cpu) head.push('node CPU µs/cycle', 'etcd CPU µs/cycle');
  head.push('errors');
  if (checks) head.push('overlaps', 'counter');
  console.log(`\n${title}`);
  console.log(table([
    head,
    ...rows.map((s) => {
      if (s.failed) return [s.label, s.clients, 'did not run', ...head.slice(3).map(() => '')];
      const row = [s.label, s.clients, s.opsPerSec.toFixed(0), s.rounds.join(' / '), s.cycles, fmt(s.p50Ms), fmt(s.p99Ms), s.ratioToEtcd === undefined ? '' : `${s.ratioToEtcd.toFixed(2)}×`];
      if (cpu) row.push(fmt(s.nodeCpuUs, 0), s.serverCpuUs === undefined ? '' : fmt(s.serverCpuUs, 0));
      row.push(s.errors);
      if (checks) row.push(s.overlaps, s.counterMismatches.length === 0 ? 'ok' : `${s.counterMismatches.length} wrong`);
      return row;
    }),
  ]));
}

// ---------------------------------------------------------------- main

const dir = mkdtempSync(join(tmpdir(), 'revkit-lock-bench-'));
const cleanups = [];
let etcd;
const cleanupAll = async () => {
  for (const c of cleanups.reverse()) await c().catch((err) => console.error(`lock: cleanup: ${err?.message ?? err}`));
  cleanups.length = 0;
  if (etcd) await etcd.stop().catch(() => undefined);
  etcd = undefined;
  rmSync(dir, { recursive: true, force: true });
};
process.once('SIGINT', () => {
  etcd?.child.kill('SIGKILL');
  cleanupAll().finally(() => process.exit(130));
});

const report = { at: new Date().toISOString(), node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, contenders: CONTENDERS, rounds: ROUNDS, roundMs: ROUND_MS, warmupMs: WARMUP_MS, ttlMs: TTL_MS, stores: SHARED ? 'shared' : 'own', skipped: [] };
let failed = false;
try {
  const counts = [...new Set([1, CONTENDERS])];
  const targets = [];
  const skip = (what) => {
    report.skipped.push(what);
    console.log(`skipped: ${what}`);
  };

  if (wanted('memory')) {
    // memory: lives in one store object: its contenders share it (a fresh one per cell)
    targets.push(revkitTarget('memory', 'revkit memory:', { place: async () => ({ openStore: () => open('memory:') }), shared: true }));
  }
  const sqliteFile = (tag) => {
    const file = join(dir, `${tag}.db`);
    return { file, dispose: async () => { for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true }); } };
  };
  if (wanted('sqlite')) {
    targets.push(revkitTarget('sqlite', 'revkit sqlite: (WAL, FULL)', {
      place: async (tag) => {
        const { file, dispose } = sqliteFile(tag);
        return { openStore: () => open(`sqlite:${file}`), dispose };
      },
    }));
  }
  if (wanted('postgres')) {
    if (await pgTarget.available()) {
      cleanups.push(() => pgTarget.cleanup());
      targets.push(revkitTarget('postgres', `revkit postgres${SHARED ? '' : ' (poolSize=2)'}`, {
        place: async () => {
          const url = `${await pgTarget.freshUrl()}${SHARED ? '' : '&poolSize=2'}`;
          return { openStore: () => open(url) };
        },
      }));
    } else skip('postgres: nothing answers at 127.0.0.1:5432 (REVKIT_PG_URL)');
  }
  if (wanted('redis')) {
    if (await redisTarget.available()) {
      cleanups.push(() => redisTarget.cleanup());
      targets.push(revkitTarget('redis', 'revkit redis', {
        place: async () => {
          const url = await redisTarget.freshUrl();
          return { openStore: () => open(url) };
        },
      }));
    } else skip('redis: nothing answers at 127.0.0.1:6379 (REVKIT_REDIS_URL)');
  }
  if (wanted('http')) {
    // `revkit serve` in this process (dist/server), a fresh one per cell on a fresh SQLite file
    targets.push(revkitTarget('http', 'revkit HttpStore → serve (SQLite, in-proc)', {
      place: async (tag) => {
        const { file, dispose } = sqliteFile(tag);
        const server = await createServer({ adminToken: TOKEN, store: `sqlite:${file}` });
        const origin = await server.listen({ host: '127.0.0.1', port: 0 });
        return { openStore: () => HttpStore.fromUrl(`${origin}?token=${TOKEN}`), dispose: async () => { await server.close(); await dispose(); } };
      },
    }));
  }

  const etcdBinary = value('etcd') ?? findOnPath('etcd');
  const etcdTargets = [];
  if (wanted('etcd') || wanted('process')) {
    if (etcdBinary === undefined) skip('etcd: no etcd binary on PATH (Debian: apt-get install etcd-server etcd-client); no ratio to etcd');
    else {
      etcd = await startEtcd(etcdBinary, dir);
      report.etcd = etcd.version;
    }
  }
  if (etcd && wanted('etcd')) {
    etcdTargets.push(etcdTarget('etcd', `etcd ${etcd.version} lock service`, etcd, 'range'));
    if (REFERENCE) etcdTargets.push(etcdTarget('etcd-exists', `etcd ${etcd.version}, 3-request fence (ref.)`, etcd, 'exists'));
  }
  const all = [...etcdTargets, ...targets];

  console.log(`revkit/lock vs etcd: acquire + fenced write + release, ${counts.join(' and ')} client(s) on one lock name; ${ROUNDS} alternating rounds of ${(ROUND_MS / 1000).toFixed(1)} s per cell (+ ${WARMUP_MS} ms warm-up, not counted); ttlMs ${TTL_MS}; stores: ${SHARED ? 'one per backend, shared by the contenders' : 'one per contender (memory: one)'}; node ${process.version}, ${report.cpus} cores`);
  const results = {};
  for (let round = 0; round < ROUNDS; round++) await measure(all, counts, { round, results });

  const summary = [];
  for (const clients of counts) {
    const etcdRuns = etcdTargets.length > 0 ? results[`etcd/${clients}`] : undefined;
    for (const t of all) summary.push(summarise(t, clients, results[`${t.name}/${clients}`] ?? [], t.kind === 'revkit' ? etcdRuns : undefined));
  }
  report.inProcess = summary;
  for (const clients of counts) printTable(`${clients === 1 ? 'uncontended: 1 client' : `${clients} contenders on one lock name`} (cycle = acquire + fenced write + release)`, summary.filter((s) => s.clients === clients));
  if (etcdTargets.length > 0) {
    console.log('\n× etcd = revkit ops/s ÷ etcd lock-service ops/s (4 requests a cycle: lock, range for the fence, txn, unlock), median of the per-round ratios.');
    const ref = summary.filter((s) => s.target === 'etcd-exists');
    if (ref.length > 0) console.log(`etcd's 3-request fence (reference): ${ref.map((s) => `${s.clients} client(s) ${s.opsPerSec?.toFixed(0)} ops/s`).join(', ')}.`);
  }
  failed ||= summary.some((s) => s.failed || s.errors > 0 || s.overlaps > 0 || s.counterMismatches.length > 0);

  // ---- process by process
  if (wanted('process') && !flag('no-process')) {
    const cli = cliLockCheck();
    if (!cli.ok) skip(`process-level (etcdctl lock vs revkit lock): the revkit CLI has no \`lock\` command in this build (${cli.why}); run \`npm run build\` once it has`);
    else if (!etcd || !findOnPath('etcdctl')) skip('process-level: needs etcd and etcdctl on PATH (Debian: etcd-server etcd-client)');
    else {
      const etcdctl = findOnPath('etcdctl');
      const store = `sqlite:${join(dir, 'cli.db')}`;
      const envEtcd = { ...process.env, ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: etcd.origin };
      const envRevkit = { ...process.env, REVKIT_STORE: store };
      const putEtcd = (tag) => [etcdctl, 'put', `bench/proc-${tag}`, 'v'];
      const putRevkit = (tag) => [process.execPath, CLI, '--store', store, 'put', `bench/proc-${tag}`, '1'];
      const procTargets = [
        processTarget('etcdctl-lock', `etcdctl lock -- etcdctl put`, (tag) => [etcdctl, ['lock', `proc-${tag}`, '--', ...putEtcd(tag)]], { env: envEtcd }),
        processTarget('revkit-lock', `revkit lock -- revkit put (sqlite:)`, (tag) => [process.execPath, [CLI, '--store', store, 'lock', `proc-${tag}`, '--', ...putRevkit(tag)]], { env: envRevkit }),
      ];
      const childOnly = [
        processTarget('etcdctl-put', `etcdctl put alone (ref., no lock)`, (tag) => [etcdctl, putEtcd(tag).slice(1)], { env: envEtcd, locked: false }),
        processTarget('revkit-put', `revkit put alone (ref., no lock)`, (tag) => [process.execPath, putRevkit(tag).slice(1)], { env: envRevkit, locked: false }),
      ];
      console.log(`\nprocess by process: one process tree per cycle; ${ROUNDS} alternating rounds of ${(ROUND_MS / 1000).toFixed(1)} s per cell`);
      const presults = {};
      for (let round = 0; round < ROUNDS; round++) {
        await measure(procTargets, counts, { round, results: presults });
        await measure(childOnly, [1], { round, results: presults });
      }
      const psummary = [];
      for (const clients of counts) {
        for (const t of procTargets) psummary.push(summarise(t, clients, presults[`${t.name}/${clients}`] ?? [], t.name === 'revkit-lock' ? presults[`etcdctl-lock/${clients}`] : undefined));
        if (clients === 1) for (const t of childOnly) psummary.push(summarise(t, 1, presults[`${t.name}/1`] ?? []));
      }
      report.processLevel = psummary;
      printTable('process by process (× etcd = revkit lock ÷ etcdctl lock, median of the per-round ratios)', psummary, { cpu: false, checks: false });
      failed ||= psummary.some((s) => s.failed || s.errors > 0);
    }
  }
} catch (err) {
  console.error(`lock: ${err?.stack ?? err}`);
  failed = true;
} finally {
  await cleanupAll();
}

const outDir = value('out');
const jsonPath = value('json') ?? (outDir || process.env.REVKIT_BENCH_OUT || process.env.REVKIT_BENCH_PUBLISH === '1' ? join(output(outDir ? { out: outDir } : {}).dir, 'lock.json') : undefined);
if (jsonPath) {
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, `${JSON.stringify(report, null, 1)}\n`);
  console.log(`\nwrote ${jsonPath}`);
}
if (failed) {
  console.error('lock: some cell failed to open, threw errors, saw two holders at once, or stored a counter other than the acknowledged writes (above)');
  process.exitCode = 1;
}
// keep-alive sockets and store timers must not hold the process open
setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
