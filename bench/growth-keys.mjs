// Issue 26, "Growth" — keys: how revkit's cost grows with the number of keys in a store.
//
// At 1 thousand, 100 thousand, 1 million and 10 million keys, on SQLite (synchronous=FULL, the
// embedded default), PostgreSQL (a private server started here, never the machine's shared one)
// and the JSON-file backend (up to the size its design allows, see below):
//   - writes/s: update() of random existing keys, one process, 16 concurrent callers and 1 caller;
//   - p50/p99 latency of get() (one caller) and of update() (one caller; 16 callers too);
//   - list(): a 1,000-key page starting 90% of the way through the key space
//     (list({ after: <key at 90%>, limit: 1000 })), without and with a prefix, and the first page;
//   - disk bytes per key: SQLite the database file plus WAL after a TRUNCATE checkpoint,
//     PostgreSQL pg_total_relation_size of the store's kv + changes + meta tables, file the file;
//   - PostgreSQL: the background sweep's first pass after a store opens (its prune statement,
//     timed with EXPLAIN ANALYZE before the measured stores open, and observed on the store).
// Sizes are measured side by side: every round runs each phase on every size in turn (the order
// rotating per round), so the machine's load drifts over all sizes alike; rates are the median
// of the rounds, latency percentiles pool the rounds' samples. The load average is recorded per
// phase.
//
// How the stores are filled (bench/lib/growth-load.mjs): directly in each backend's own schema —
// SQLite and PostgreSQL rows inserted with SQL, the file written by the backend's own serializer —
// as if every key had been written once by put() (revision i for key i, no writer token), then the
// change log trimmed by the store's own rule (SQLite: the newest 100,000 revisions; PostgreSQL:
// every key keeps its one change, historyDepth 64; file: the newest 4,096 changes). Through the
// stores' own API a 10-million-key fill took hours at synchronous=FULL; before measuring, every run
// fills a small store both ways and checks that the rows are identical (updated_at aside).
// The stores are then opened by URL with their defaults.
//
// The file backend rewrites its whole file on every commit and keeps the whole store in one
// JavaScript string: it is measured up to 1 million keys (where one commit already takes seconds),
// and 10 million keys would make a file longer than the longest string the engine can hold
// (MAX_STRING_LENGTH), which the store refuses to write (TooLargeError): computed, not attempted.
//
//   npm run build && node bench/growth-keys.mjs [--sizes 1000,100000,1000000,10000000]
//       [--backends sqlite,postgres,file] [--file-max 1000000] [--rounds 3] [--duration 2500]
//       [--quick] [--note TEXT] [--built-from COMMIT] [--publish | --out DIR]
//   npm run build && node bench/growth-keys.mjs --charts-from RESULTS.json [--built-from COMMIT] [--out DIR]: draw the
//       charts and print the tables again from a results file, measuring nothing.
//   --quick: sizes 1000,100000, one round, short phases (a smoke run of a minute or two).
// Results: growth-keys.json and growth-keys-*.svg in bench/out/ (or bench/results/ with --publish).
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { constants } from 'node:buffer';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { open } from '../dist/open.js';
import { listSql, getSql } from '../dist/postgres/sql/read.js';
import { putRevisionSql } from '../dist/postgres/sql/cas.js';
import { PRUNE_SPAN, pruneSql } from '../dist/postgres/sql/sweep.js';
import { fixed, int, ms, textTable } from './lib/format.mjs';
import { checkFidelity, keyOf, loadFile, loadPostgres, loadSqlite, pgNames, valueOf } from './lib/growth-load.mjs';
import { latencySummary, load, median, reloadResults, round, runCallers, sleep, slopes, sqliteBytes, timeEach } from './lib/growth-measure.mjs';
import { SETTINGS as PG_SETTINGS, startPrivatePostgres, sweepSampler } from './lib/growth-pg.mjs';
import { lineChart, sizeLabel } from './lib/growth-svg.mjs';
import { machineInfo } from './lib/machine.mjs';
import { output } from './lib/out.mjs';

// ------------------------------------------------------------------ options
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const opt = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined && !argv[i + 1].startsWith('--') ? argv[i + 1] : fallback;
};
const quick = flag('quick');
const sizes = opt('sizes', quick ? '1000,100000' : '1000,100000,1000000,10000000').split(',').map(Number).sort((a, b) => a - b);
const backends = opt('backends', 'sqlite,postgres,file').split(',');
const fileMax = Number(opt('file-max', 1_000_000));
const rounds = Number(opt('rounds', quick ? 1 : 3));
const durationMs = Number(opt('duration', quick ? 800 : 2500));
const getOps = quick ? 300 : 1500;
const listReps = quick ? 5 : 15;
const CALLERS = 16;
const out = output({ publish: flag('publish'), out: opt('out', undefined) });
for (const n of sizes) if (!Number.isSafeInteger(n) || n < 10) throw new Error(`--sizes: ${n} is not a key count`);

const log = (...a) => console.log(...a);
const say = (m) => process.stdout.write(`  ${m}\n`);
const machine = machineInfo();
const startedAt = new Date().toISOString();
const tmp = mkdtempSync(join(tmpdir(), 'revkit-growth-keys-'));
let pg;
const cleanup = async () => {
  if (pg) await pg.stop().catch(() => undefined);
  pg = undefined;
  rmSync(tmp, { recursive: true, force: true });
};
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

const randomKey = (n) => keyOf(1 + Math.floor(Math.random() * n));
const bump = (v) => ({ ...(v ?? valueOf(0)), n: (v?.n ?? 0) + 1 });

// ------------------------------------------------------------------ the run
const results = {
  benchmark: 'growth-keys',
  issue: 26,
  startedAt,
  machine,
  dist: fileURLToPath(new URL('../dist/', import.meta.url)),
  note: opt('note', undefined),
  builtFrom: opt('built-from', undefined),
  settings: { sizes, backends, rounds, phaseDurationMs: durationMs, callers: CALLERS, getOpsPerRound: getOps, listRepsPerRound: listReps, quick },
  layout: 'keys k/00000001 … (zero-padded), each written once (revision i for key i, no writer token), values {"n":i,"pad":"x"×32} (~50 bytes of JSON); update() increments n',
  fill: 'directly in the backend schema (bench/lib/growth-load.mjs): rows identical to what put() writes, checked on every run (fidelity); SQLite kv + the newest 100,000 changes (historyRetention default) + pruned_below; PostgreSQL kv + one change per key + the revision sequence, then VACUUM (ANALYZE); file through src/file/format.ts serialize, newest 4,096 changes',
  backends: {},
};

const chartsFrom = opt('charts-from', undefined);
if (chartsFrom) {
  try {
    // Draw the charts (and print the tables) again from a results file, e.g. after a change to the charts.
    reloadResults(results, { from: chartsFrom, resultsFile: join(out.dir, 'growth-keys.json'), builtFrom: opt('built-from', undefined) });
    writeCharts();
    printTables();
    log(`\nwrote ${join(out.dir, 'growth-keys.json')} and the charts, from ${chartsFrom}`);
  } finally {
    await cleanup();
  }
} else try {
  log(`growth-keys: sizes ${sizes.map(sizeLabel).join(', ')} · backends ${backends.join(', ')} · ${rounds} round(s) · load ${load().join(' ')}`);
  if (backends.includes('postgres')) {
    pg = await startPrivatePostgres({ log: say });
    results.postgres = { version: pg.version, settings: PG_SETTINGS, note: 'private server in a temp dir, stopped and deleted at the end; PostgreSQL defaults otherwise (fsync, synchronous_commit, full_page_writes, autovacuum, jit on)' };
  }
  log('fidelity: a small store filled by put() against the same filled by the loaders');
  results.fidelity = await checkFidelity({ dir: tmp, pg });
  say(JSON.stringify(results.fidelity));

  // ---------------------------------------------------------------- fill
  const cells = []; // { backend, keys, url, store, ... }
  const fileSizes = sizes.filter((n) => n <= fileMax);
  for (const backend of backends) {
    results.backends[backend] = { sizes: [] };
    for (const keys of backend === 'file' ? fileSizes : sizes) {
      const t = performance.now();
      let url;
      let loadSeconds;
      const progress = (m) => process.stdout.write(`\r  fill ${backend} ${sizeLabel(keys)}: ${m}        `);
      if (backend === 'sqlite') {
        const path = join(tmp, `keys-${keys}.db`);
        loadSeconds = await loadSqlite(path, keys, 1, { onProgress: progress });
        url = `sqlite:${path}`;
      } else if (backend === 'postgres') {
        const c = await pg.client();
        try {
          loadSeconds = await loadPostgres(pg.url, c, `g${keys}_`, keys, 1, { onProgress: progress });
        } finally {
          await c.end();
        }
        url = `${pg.url}?prefix=g${keys}_`;
      } else if (backend === 'file') {
        const path = join(tmp, `keys-${keys}.json`);
        loadSeconds = loadFile(path, keys, 1);
        url = `file:${path}`;
      } else throw new Error(`unknown backend ${backend}`);
      process.stdout.write('\n');
      const cell = { backend, keys, url, fillSeconds: round(loadSeconds, 1), samples: { get: [], update1: [], update16: [] }, rates: { w1: [], w16: [] }, list: { deep: [], deepPrefix: [], first: [] }, loadAvg: [] };
      cell.bytesAfterFill = await diskBytes(cell);
      say(`${backend} ${sizeLabel(keys)} filled in ${fixed((performance.now() - t) / 1000, 1)} s, ${int(cell.bytesAfterFill.total)} bytes (${fixed(cell.bytesAfterFill.total / keys, 1)} per key)`);
      cells.push(cell);
    }
  }

  // ---------------------------------------------------------------- PostgreSQL: the first sweep after open
  if (backends.includes('postgres')) {
    log('postgres: the sweep\'s prune statement with its first-pass parameters (mark 0), EXPLAIN (ANALYZE, BUFFERS, TIMING OFF), rolled back');
    const c = await pg.client();
    try {
      for (const cell of cells.filter((x) => x.backend === 'postgres')) {
        const n = await pgNames(`g${cell.keys}_`);
        await c.query('BEGIN');
        const t = performance.now();
        const plan = (await c.query(`EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) ${pruneSql(n)}`, [0, 64, 60000, PRUNE_SPAN])).rows.map((r) => r['QUERY PLAN']);
        const wall = performance.now() - t;
        await c.query('ROLLBACK');
        cell.firstSweep = { explainMs: round(wall, 1), executionMs: round(Number(/Execution Time: ([\d.]+)/.exec(plan.join('\n'))?.[1]), 1) };
        if (cell.keys === sizes[sizes.length - 1]) cell.firstSweep.plan = plan;
        say(`g${cell.keys}_: first sweep's prune ${ms(cell.firstSweep.executionMs)} ms`);
      }
    } finally {
      await c.end();
    }
  }

  // ---------------------------------------------------------------- open
  for (const cell of cells) {
    const t = performance.now();
    cell.store = await open(cell.url);
    await cell.store.get(keyOf(1)); // the file store reads and parses its file on first use
    cell.openMs = round(performance.now() - t, 1);
    if (cell.backend === 'postgres') {
      cell.firstSweepObserved = await waitFirstSweep(cell);
      say(`postgres ${sizeLabel(cell.keys)}: opened; the store's own first sweep ${cell.firstSweepObserved.ms === null ? 'finished between polls (< 50 ms)' : `ran ${ms(cell.firstSweepObserved.ms)} ms`}`);
    } else say(`${cell.backend} ${sizeLabel(cell.keys)}: opened in ${ms(cell.openMs)} ms`);
    await cell.store.update(randomKey(cell.keys), bump); // warm up the write path
  }

  // ---------------------------------------------------------------- rounds
  const sampler = backends.includes('postgres') ? sweepSampler(pg, cells.filter((c) => c.backend === 'postgres').map((c) => `g${c.keys}_`)) : undefined;
  for (let r = 0; r < rounds; r++) {
    log(`round ${r + 1}/${rounds} · load ${load().join(' ')}`);
    for (const backend of backends) {
      const bc = cells.filter((c) => c.backend === backend);
      const order = bc.map((_, i) => bc[(i + r) % bc.length]);
      for (const cell of order) await measureCell(cell);
    }
  }

  if (sampler) {
    const seen = await sampler.stop();
    for (const cell of cells.filter((c) => c.backend === 'postgres')) cell.sweepDuringRounds = seen[`g${cell.keys}_`];
  }

  // ---------------------------------------------------------------- plans, sizes, close
  if (backends.includes('postgres')) {
    const pcs = cells.filter((c) => c.backend === 'postgres');
    for (const cell of pcs) await postgresPlans(cell, cell === pcs.at(-1));
  }
  if (backends.includes('sqlite')) sqlitePlans(cells.filter((c) => c.backend === 'sqlite').at(-1));
  for (const cell of cells) {
    await cell.store.close();
    cell.bytesAfterRun = await diskBytes(cell);
  }

  // ---------------------------------------------------------------- summarise
  for (const cell of cells) results.backends[cell.backend].sizes.push(summary(cell));
  for (const backend of backends) {
    const b = results.backends[backend];
    b.url = { sqlite: 'sqlite:/tmp/…/keys-N.db (defaults: synchronous=FULL, WAL, group commit, historyRetention 100000)', postgres: 'postgres://…?prefix=gN_ (defaults: pool 5, group commit, historyDepth 64, sweep every 1 s)', file: 'file:/tmp/…/keys-N.json (defaults: fsync, group commit, changeLog 4096)' }[backend];
    const metric = (f) => b.sizes.map((s) => [s.keys, f(s)]);
    b.slopes = {
      writesPerSec16: slopes(metric((s) => s.writes16.opsPerSec)),
      writesPerSec1: slopes(metric((s) => s.writes1.opsPerSec)),
      getP50: slopes(metric((s) => s.get.p50Ms)),
      updateP50: slopes(metric((s) => s.update1.p50Ms)),
      listDeep: slopes(metric((s) => s.list.deep.medianMs)),
      bytesPerKey: slopes(metric((s) => s.bytesPerKeyAfterFill)),
    };
    if (backend === 'postgres') b.slopes.firstSweep = slopes(metric((s) => s.firstSweep?.executionMs));
  }
  if (backends.includes('file')) {
    const f = results.backends.file;
    const largest = f.sizes.at(-1);
    for (const keys of sizes.filter((n) => n > fileMax)) {
      const predicted = largest ? Math.round((largest.bytesAfterRun / largest.keys) * keys) : null;
      f.notMeasured = f.notMeasured ?? [];
      f.notMeasured.push({
        keys,
        predictedFileBytes: predicted,
        maxFileLength: constants.MAX_STRING_LENGTH,
        why: predicted !== null && predicted > constants.MAX_STRING_LENGTH
          ? `the file would be ~${int(predicted)} bytes (${fixed(largest.bytesAfterRun / largest.keys, 1)} bytes per key at ${sizeLabel(largest.keys)}), longer than the ${int(constants.MAX_STRING_LENGTH)} characters one JavaScript string holds: the store refuses such a write with TooLargeError and could not read the file back`
          : `above --file-max ${fileMax}: every commit rewrites the whole file (see the 1-caller update latency at ${largest ? sizeLabel(largest.keys) : '?'})`,
      });
    }
  }
  results.finishedAt = new Date().toISOString();
  results.loadAverageAtEnd = load();
  writeFileSync(join(out.dir, 'growth-keys.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeCharts();
  printTables();
  log(`\nwrote ${join(out.dir, 'growth-keys.json')} and growth-keys-*.svg`);
} finally {
  await cleanup();
}

// ================================================================== helpers

async function diskBytes(cell) {
  if (cell.backend === 'sqlite') return sqliteBytes(cell.url.slice('sqlite:'.length));
  if (cell.backend === 'file') return { total: statSync(cell.url.slice('file:'.length)).size };
  const n = await pgNames(`g${cell.keys}_`);
  const c = await pg.client();
  try {
    const row = (await c.query(`SELECT pg_total_relation_size($1::regclass) AS kv, pg_total_relation_size($2::regclass) AS changes, pg_total_relation_size($3::regclass) AS meta,
        pg_relation_size($1::regclass) AS kv_heap, pg_relation_size($2::regclass) AS changes_heap,
        (SELECT count(*) FROM ${n.changes}) AS change_rows`, [n.kv, n.changes, n.meta])).rows[0];
    const num = (k) => Number(row[k]);
    return { kv: num('kv'), changes: num('changes'), meta: num('meta'), kvHeap: num('kv_heap'), changesHeap: num('changes_heap'), changeRows: num('change_rows'), total: num('kv') + num('changes') + num('meta') };
  } finally {
    await c.end();
  }
}

/** Waits for the store's first background sweep (1 s after open) to finish; answers how long it ran, as seen in pg_stat_activity. */
async function waitFirstSweep(cell) {
  const c = await pg.client();
  const n = await pgNames(`g${cell.keys}_`);
  const needle = `%SELECT DISTINCT key FROM ${n.changes}%`;
  const opened = performance.now();
  let seen = null;
  try {
    for (;;) {
      const row = (await c.query(`SELECT extract(epoch FROM clock_timestamp() - query_start) * 1000 AS running FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()`, [needle])).rows[0];
      if (row) seen = Number(row.running);
      else if (seen !== null || performance.now() - opened > 3000) break;
      await sleep(50);
    }
  } finally {
    await c.end();
  }
  return { ms: seen === null ? null : round(seen, 0), note: 'time since the statement started, at the last poll that saw it running (50 ms polls)' };
}

async function measureCell(cell) {
  const { store, keys } = cell;
  const tag = `${cell.backend} ${sizeLabel(keys)}`;
  const la = load()[0];
  // get, one caller
  const g = await runCallers({ callers: 1, durationMs: durationMs / 2, minOps: Math.min(getOps, 50), maxMs: durationMs * 4, op: () => store.get(randomKey(keys)) });
  cell.samples.get.push(...g.latencies);
  // update(), one caller, then 16 callers
  const w1 = await runCallers({ callers: 1, durationMs, minOps: 3, op: () => store.update(randomKey(keys), bump) });
  cell.samples.update1.push(...w1.latencies);
  cell.rates.w1.push(w1.opsPerSec);
  const w16 = await runCallers({ callers: CALLERS, durationMs, minOps: CALLERS, op: () => store.update(randomKey(keys), bump) });
  cell.samples.update16.push(...w16.latencies);
  cell.rates.w16.push(w16.opsPerSec);
  cell.errors = mergeErrors(cell.errors, g.errors, w1.errors, w16.errors);
  // list: a page deep in the key space, with and without a prefix; and the first page
  const deepKey = deepAfter(keys);
  cell.list.deep.push(...await timeEach(listReps, async () => checkPage(await store.list({ after: deepKey, limit: 1000 }), deepKey, keys)));
  cell.list.deepPrefix.push(...await timeEach(listReps, async () => checkPage(await store.list({ prefix: 'k/', after: deepKey, limit: 1000 }), deepKey, keys)));
  cell.list.first.push(...await timeEach(Math.max(2, listReps - 2), async () => checkPage(await store.list({ limit: 1000 }), null, keys)));
  cell.loadAvg.push(la, load()[0]);
  say(`${tag.padEnd(14)} w16 ${int(w16.opsPerSec).padStart(6)}/s  w1 ${int(w1.opsPerSec).padStart(5)}/s  get p50 ${ms(latencySummary(g.latencies).p50Ms)} ms  update p50 ${ms(latencySummary(w1.latencies).p50Ms)} ms  list deep ${ms(median(cell.list.deep.slice(-listReps)))} ms  load ${la}`);
}

/** Where the deep page starts: 90% into the key space, or early enough for a whole page of 1,000 (at 1,000 keys: the first page). */
function deepAfter(keys) {
  const at = Math.min(Math.floor(keys * 0.9), keys - 1000);
  return at <= 0 ? undefined : keyOf(at);
}

/** A page must be what was asked: 1,000 entries right after `after` (a benchmark that measures a wrong answer measures nothing). */
function checkPage(page, after, keys) {
  const start = after === null || after === undefined ? 1 : Number(after.slice(2)) + 1;
  const want = Math.min(1000, keys - start + 1);
  if (page.entries.length !== want || page.entries[0]?.key !== keyOf(start)) throw new Error(`list after ${after}: got ${page.entries.length} entries from ${page.entries[0]?.key}, expected ${want} from ${keyOf(start)}`);
}

function mergeErrors(...all) {
  const out = {};
  for (const e of all) for (const [k, v] of Object.entries(e ?? {})) out[k] = (out[k] ?? 0) + v;
  return out;
}

function summary(cell) {
  const l = (xs) => ({ medianMs: round(median(xs), 3), minMs: round(Math.min(...xs), 3), maxMs: round(Math.max(...xs), 3), n: xs.length });
  const lat = (xs) => {
    const s = latencySummary(xs);
    return { p50Ms: round(s.p50Ms, 3), p99Ms: round(s.p99Ms, 3), maxMs: round(s.maxMs, 3), n: s.n };
  };
  const s = {
    keys: cell.keys,
    fill: { seconds: cell.fillSeconds, method: cell.backend === 'file' ? 'file written by the backend\'s serializer' : 'rows inserted in the backend schema' },
    openMs: cell.openMs,
    writes16: { opsPerSec: round(median(cell.rates.w16), 1), perRound: cell.rates.w16.map((x) => round(x, 1)), ...lat(cell.samples.update16) },
    writes1: { opsPerSec: round(median(cell.rates.w1), 1), perRound: cell.rates.w1.map((x) => round(x, 1)) },
    get: lat(cell.samples.get),
    update1: lat(cell.samples.update1),
    list: { deep: l(cell.list.deep), deepPrefix: l(cell.list.deepPrefix), first: l(cell.list.first) },
    bytesAfterFill: cell.bytesAfterFill,
    bytesAfterRun: cell.bytesAfterRun.total,
    bytesAfterRunDetail: cell.bytesAfterRun,
    bytesPerKeyAfterFill: round(cell.bytesAfterFill.total / cell.keys, 1),
    bytesPerKeyAfterRun: round(cell.bytesAfterRun.total / cell.keys, 1),
    loadAverage1m: { min: Math.min(...cell.loadAvg), max: Math.max(...cell.loadAvg) },
    errors: cell.errors,
  };
  if (cell.firstSweep) s.firstSweep = cell.firstSweep;
  if (cell.firstSweepObserved) s.firstSweepObserved = cell.firstSweepObserved;
  if (cell.sweepDuringRounds) s.sweepDuringRounds = { ...cell.sweepDuringRounds, note: 'pg_stat_activity every 200 ms during the rounds: how often this store\'s sweep (prune statement) was seen running, and its longest run seen' };
  if (cell.serverMs) s.serverMs = cell.serverMs;
  if (cell.plans) s.plans = cell.plans;
  return s;
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of the statements get, update() and list send, bound as the store
 * binds them (custom plans): the server's execution time (median of 5, free of this process's
 * scheduling on a loaded machine) at every size, the plans at the largest.
 */
async function postgresPlans(cell, keepPlan) {
  const n = await pgNames(`g${cell.keys}_`);
  const c = await pg.client();
  const explain = async (sql, params) => (await c.query(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, params)).rows.map((r) => r['QUERY PLAN']);
  const execMs = (plan) => Number(/Execution Time: ([\d.]+)/.exec(plan.join('\n'))?.[1]);
  try {
    const deepKey = deepAfter(cell.keys) ?? null;
    const key = randomKey(cell.keys);
    const statements = {
      get: [getSql(n), () => [randomKey(cell.keys)]],
      listDeep: [listSql(n), () => ['%', deepKey, 1001]],
      listDeepPrefix: [listSql(n), () => ['k/%', deepKey, 1001]],
      listFirst: [listSql(n), () => ['%', null, 1001]],
      updateWrite: [putRevisionSql(n), async () => {
        const rev = Number((await c.query(`SELECT revision FROM ${n.kv} WHERE key = $1`, [key])).rows[0].revision);
        return [key, Buffer.from(JSON.stringify(valueOf(0))), null, 'bench', rev];
      }],
    };
    cell.serverMs = {};
    if (keepPlan) cell.plans = {};
    for (const [name, [sql, params]] of Object.entries(statements)) {
      const times = [];
      let plan;
      for (let i = 0; i < 5; i++) {
        await c.query('BEGIN');
        plan = await explain(sql, await params());
        await c.query('ROLLBACK'); // the update's write is not kept (its revision is drawn: a gap, as revisions allow)
        times.push(execMs(plan));
      }
      cell.serverMs[name] = round(median(times), 3);
      if (keepPlan) cell.plans[name] = plan;
    }
  } finally {
    await c.end();
  }
}

/** EXPLAIN QUERY PLAN of the statements get, update() and list run (src/sqlite/statements.ts), at the largest size. */
function sqlitePlans(cell) {
  if (!cell) return;
  const db = new Database(cell.url.slice('sqlite:'.length), { readonly: true });
  try {
    const qp = (sql) => db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all().map((r) => r.detail);
    cell.plans = {
      get: qp("SELECT * FROM kv WHERE key = 'k/1'"),
      listAfter: qp("SELECT * FROM kv WHERE key > 'k/1' AND deleted = 0 ORDER BY key"),
      lastRevision: qp("SELECT max(coalesce((SELECT max(revision) FROM changes), 0), (SELECT max(value) FROM meta WHERE name IN ('revision', 'pruned_below'))) AS value"),
      prune: qp('DELETE FROM changes WHERE revision <= 5'),
    };
  } finally {
    db.close();
  }
}

function writeCharts() {
  const names = { sqlite: 'SQLite (FULL)', postgres: 'PostgreSQL', file: 'file' };
  const series = (f, suffix = '', extra = {}) => Object.entries(results.backends).map(([b, r]) => ({ label: `${names[b]}${suffix}`, points: r.sizes.map((s) => [s.keys, f(s)]), ...extra }));
  const sub = `${results.machine.cores} cores, load average ${Math.min(...Object.values(results.backends).flatMap((b) => b.sizes.map((s) => s.loadAverage1m.min)))}–${Math.max(...Object.values(results.backends).flatMap((b) => b.sizes.map((s) => s.loadAverage1m.max)))} · revkit ${results.builtFrom ?? results.machine.commit}`;
  const color = { sqlite: '#4e79a7', postgres: '#e15759', file: '#59a14f' };
  const colored = (list) => list.map((s) => ({ ...s, color: color[Object.keys(names).find((b) => s.label.startsWith(names[b]))] }));
  const charts = {
    'growth-keys-writes.svg': lineChart({ title: 'update() of random existing keys: writes per second', subtitle: sub, xLabel: 'keys in the store', yUnit: 'committed updates/s', guide: 'rate',
      series: colored([...series((s) => s.writes16.opsPerSec, ', 16 callers'), ...series((s) => s.writes1.opsPerSec, ', 1 caller', { dashed: true })]) }),
    'growth-keys-get.svg': lineChart({ title: 'get() latency, one caller, random keys', subtitle: sub, xLabel: 'keys in the store', yUnit: 'ms',
      series: colored([...series((s) => s.get.p50Ms, ' p50'), ...series((s) => s.get.p99Ms, ' p99', { dashed: true })]) }),
    'growth-keys-update.svg': lineChart({ title: 'update() latency, one caller, random keys', subtitle: sub, xLabel: 'keys in the store', yUnit: 'ms',
      series: colored([...series((s) => s.update1.p50Ms, ' p50'), ...series((s) => s.update1.p99Ms, ' p99', { dashed: true })]) }),
    'growth-keys-list.svg': lineChart({ title: 'list(): a 1,000-key page starting 90% into the key space', subtitle: sub, xLabel: 'keys in the store', yUnit: 'ms per page (median)',
      series: [...colored([...series((s) => s.list.deep.medianMs, ''), ...series((s) => s.list.deepPrefix.medianMs, ', prefix k/', { dashed: true })]),
        ...(results.backends.postgres ? [{ label: 'PostgreSQL server time', color: '#b07aa1', dashed: true, points: results.backends.postgres.sizes.map((s) => [s.keys, s.serverMs?.listDeep]) }] : [])] }),
    'growth-keys-bytes.svg': lineChart({ title: 'Disk bytes per key (after the fill; values ~50 bytes of JSON)', subtitle: sub, xLabel: 'keys in the store', yUnit: 'bytes per key', logY: false,
      series: colored(series((s) => s.bytesPerKeyAfterFill, '')) }),
  };
  if (results.backends.postgres) {
    charts['growth-keys-sweep.svg'] = lineChart({ title: 'PostgreSQL: the background sweep\'s first pass after a store opens', subtitle: `${sub} · prune statement, EXPLAIN ANALYZE execution time`, xLabel: 'keys in the store', yUnit: 'ms',
      series: [{ label: 'first sweep (mark 0)', color: '#e15759', points: results.backends.postgres.sizes.map((s) => [s.keys, s.firstSweep?.executionMs]) }] });
  }
  for (const [file, svg] of Object.entries(charts)) writeFileSync(join(out.dir, file), svg);
}

function rate(x) {
  return x !== null && x < 10 ? fixed(x, 1) : int(x);
}

function printTables() {
  for (const [backend, b] of Object.entries(results.backends)) {
    log(`\n${backend}`);
    const headers = ['keys', 'writes/s 16', 'writes/s 1', 'get p50', 'get p99', 'upd p50', 'upd p99', 'upd16 p50', 'upd16 p99', 'list deep', 'list deep k/', 'list first', 'B/key fill', 'B/key run', 'load'];
    if (backend === 'postgres') headers.push('1st sweep', 'sweep busy', 'srv list deep', 'srv get', 'srv upd');
    const rows = b.sizes.map((s) => {
      const row = [sizeLabel(s.keys), rate(s.writes16.opsPerSec), rate(s.writes1.opsPerSec), ms(s.get.p50Ms), ms(s.get.p99Ms), ms(s.update1.p50Ms), ms(s.update1.p99Ms), ms(s.writes16.p50Ms), ms(s.writes16.p99Ms),
        ms(s.list.deep.medianMs), ms(s.list.deepPrefix.medianMs), ms(s.list.first.medianMs), fixed(s.bytesPerKeyAfterFill, 0), fixed(s.bytesPerKeyAfterRun, 0), `${s.loadAverage1m.min}–${s.loadAverage1m.max}`];
      if (backend === 'postgres') row.push(`${ms(s.firstSweep?.executionMs)} ms`, s.sweepDuringRounds ? `${fixed(s.sweepDuringRounds.busyFraction * 100, 0)}% (≤${int(s.sweepDuringRounds.longestMs)} ms)` : '–', ms(s.serverMs?.listDeep), ms(s.serverMs?.get), ms(s.serverMs?.updateWrite));
      return row;
    });
    log(textTable(headers, rows));
    for (const nm of b.notMeasured ?? []) log(`  ${sizeLabel(nm.keys)}: not measured — ${nm.why}`);
  }
  log('\nlatencies in ms ("srv": PostgreSQL\'s own execution time, EXPLAIN ANALYZE, median of 5); writes/s the median of the rounds; "B/key" disk bytes per key after the fill and after the run');
}
