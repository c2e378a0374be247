// Issue 26, "Growth" — history: how revkit's cost grows with a key's history and with the change log,
// on SQLite (synchronous=FULL) and PostgreSQL (a private server started here, never the shared one).
//
// A. One key with R revisions (default R = 1k, 10k, 100k):
//    get / update() / history(key, { limit: 100 }) latency of that key; watch({ key, fromRevision: 0 })
//    — first-event latency and events/s catching up all R revisions —, watch from R − 100 (first event,
//    catch-up), a live watch (write → event latency); and trimming that history with what the store
//    offers: SQLite's historyRetention (the store prunes whole revisions below head − retention after
//    every 1,000 committed writes, inside the commit path), PostgreSQL's historyDepth (the background
//    sweep deletes a key's changes beyond its newest historyDepth once older than changeRetentionMs).
// B. A change log of L entries (default L = 100k, 1M, 10M: L/10 keys × 10 revisions each, written
//    round-robin, so a key's changes are spread over the whole log):
//    watch({ prefix: '' }) from revision 0 (first event, events/s over the first events, up to --cap
//    seconds), from head − 10,000 (first event, catch-up), a one-key watch from 0 (time to its last
//    change, which is near the head), a live watch; get/update()/history() latency; PostgreSQL's
//    background sweep on its first pass after open (nothing to prune, every key examined) and in
//    steady state; the trim of 90% of the log (SQLite: historyRetention L/10; PostgreSQL:
//    historyDepth 1, changeRetentionMs 0); disk bytes per change-log entry.
// Every watch catch-up runs in a process of its own (bench/lib/growth-watch-child.mjs: a watch that
// reads its backlog without yielding, or buffers it, must not freeze or exhaust this one; it is killed
// 20 s past its cap), whose PostgreSQL store runs no background sweep (measured on its own); every
// event is checked as it arrives: in revision order, each the one the layout wrote.
// Sizes run side by side: each measurement is taken on every size in turn before the next one.
// The PostgreSQL statements behind watch() and the sweep are EXPLAINed (ANALYZE, BUFFERS) at the
// largest size, as the store binds them (custom plans) and as a prepared statement's generic plan.
//
// Filling: directly in the backend schema, rows identical to what put() writes (checked on every run
// against a store filled by put()): bench/lib/growth-load.mjs. Measured stores are opened by URL
// with their defaults, except what keeps the filled history from being trimmed before it is measured:
// SQLite historyRetention = max(100000, L) (the default 100,000 would prune a longer log at the first
// 1,000 writes), PostgreSQL historyDepth = max(64, R) for the one-key store.
//
//   npm run build && node bench/growth-history.mjs [--sizes 100000,1000000,10000000]
//       [--revisions 1000,10000,100000] [--backends sqlite,postgres] [--cap 20] [--quick]
//       [--note TEXT] [--built-from COMMIT] [--publish | --out DIR]
//   npm run build && node bench/growth-history.mjs --charts-from RESULTS.json [--built-from COMMIT] [--out DIR]: draw the
//       charts and print the tables again from a results file, measuring nothing.
//   --quick: --sizes 100000 --revisions 1000,10000 --cap 5 (a smoke run of a minute or two).
// Results: growth-history.json and growth-history*.svg in bench/out/ (or bench/results/ with --publish).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { open } from '../dist/open.js';
import { watchSql } from '../dist/postgres/sql/watch.js';
import { PRUNE_SPAN, pruneSql } from '../dist/postgres/sql/sweep.js';
import { fixed, int, ms, textTable } from './lib/format.mjs';
import { checkFidelity, keyAt, keyOf, loadPostgres, loadSqlite, pgNames, valueOf } from './lib/growth-load.mjs';
import { latencySummary, load, reloadResults, round, runCallers, sleep, slopes, sqliteBytes, timeEach, withLoopBlock } from './lib/growth-measure.mjs';
import { SETTINGS as PG_SETTINGS, startPrivatePostgres } from './lib/growth-pg.mjs';
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
const list = (s) => s.split(',').filter(Boolean).map(Number).sort((a, b) => a - b);
const sizes = list(opt('sizes', quick ? '100000' : '100000,1000000,10000000'));
const revisions = list(opt('revisions', quick ? '1000,10000' : '1000,10000,100000'));
const backends = opt('backends', 'sqlite,postgres').split(',');
const capMs = Number(opt('cap', quick ? 5 : 20)) * 1000;
const V = 10; // revisions per key in the change-log layout
const RECENT = 10_000;
const CHILD = new URL('./lib/growth-watch-child.mjs', import.meta.url).pathname;
const out = output({ publish: flag('publish'), out: opt('out', undefined) });
for (const n of sizes) if (!Number.isSafeInteger(n) || n < V * 100 || n % V !== 0) throw new Error(`--sizes: ${n} must be a multiple of ${V}, at least ${V * 100}`);

const log = (...a) => console.log(...a);
const say = (m) => process.stdout.write(`  ${m}\n`);
const machine = machineInfo();
const tmp = mkdtempSync(join(tmpdir(), 'revkit-growth-history-'));
let pg;
const cleanup = async () => {
  if (pg) await pg.stop().catch(() => undefined);
  pg = undefined;
  rmSync(tmp, { recursive: true, force: true });
};
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

const results = {
  benchmark: 'growth-history',
  issue: 26,
  startedAt: new Date().toISOString(),
  machine,
  dist: fileURLToPath(new URL('../dist/', import.meta.url)),
  note: opt('note', undefined),
  builtFrom: opt('built-from', undefined),
  settings: { sizes, revisions, backends, capSeconds: capMs / 1000, revisionsPerKeyInLog: V, recent: RECENT, quick },
  layout: {
    hotKey: 'one key k/00000001 with R revisions 1..R (values {"n":r,"pad":"x"×32}, ~50 bytes of JSON)',
    log: `L/${V} keys k/00000001 … each written ${V} times round-robin: revision r wrote key ((r − 1) mod K) + 1; kv holds each key's last revision`,
  },
  fill: 'directly in the backend schema (bench/lib/growth-load.mjs), rows identical to what put() writes (checked every run: fidelity); PostgreSQL then VACUUM (ANALYZE)',
  hotKey: {},
  log: {},
};

const chartsFrom = opt('charts-from', undefined);
if (chartsFrom) {
  try {
    // Draw the charts (and print the tables) again from a results file, e.g. after a change to the charts.
    reloadResults(results, {
      from: chartsFrom, resultsFile: join(out.dir, 'growth-history.json'), builtFrom: opt('built-from', undefined),
      // Files written before the slopes had a place of their own kept them next to the cells.
      fixUp: (r) => { for (const part of ['hotKey', 'log']) for (const k of Object.keys(r[part])) if (k.endsWith('Slopes')) delete r[part][k]; },
    });
    writeCharts();
    printTables();
    log(`\nwrote ${join(out.dir, 'growth-history.json')} and the charts, from ${chartsFrom}`);
  } finally {
    await cleanup();
  }
} else try {
  log(`growth-history: hot key ${revisions.map(sizeLabel).join(', ')} revisions · log ${sizes.map(sizeLabel).join(', ')} · ${backends.join(', ')} · load ${load().join(' ')}`);
  if (backends.includes('postgres')) {
    pg = await startPrivatePostgres({ log: say });
    results.postgres = { version: pg.version, settings: PG_SETTINGS, note: 'private server in a temp dir, stopped and deleted at the end; PostgreSQL defaults otherwise (fsync, synchronous_commit, autovacuum, jit on)' };
  }
  results.fidelity = await checkFidelity({ dir: tmp, pg });
  say(`fidelity ${JSON.stringify(results.fidelity)}`);

  for (const backend of backends) {
    results.hotKey[backend] = await partA(backend);
    results.log[backend] = await partB(backend);
  }
  results.finishedAt = new Date().toISOString();
  results.loadAverageAtEnd = load();
  writeFileSync(join(out.dir, 'growth-history.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeCharts();
  printTables();
  log(`\nwrote ${join(out.dir, 'growth-history.json')} and growth-history*.svg`);
} finally {
  await cleanup();
}

// ================================================================== A: one key with R revisions

async function partA(backend) {
  log(`\nA. ${backend}: one key with ${revisions.map(sizeLabel).join(' / ')} revisions`);
  const cells = [];
  for (const R of revisions) {
    const cell = await fill(backend, `hot${R}`, 1, R);
    cell.R = R;
    cell.url = backend === 'sqlite'
      ? `sqlite:${cell.path}${R > 100_000 ? `?historyRetention=${R}` : ''}`
      : `${pg.url}?prefix=hot${R}_&historyDepth=${Math.max(64, R)}`;
    cells.push(cell);
  }
  const key = keyOf(1);
  for (const cell of cells) cell.store = await open(cell.url);
  for (const cell of cells) {
    const s = cell.store;
    cell.get = latencySummary((await runCallers({ callers: 1, durationMs: 500, minOps: 100, op: () => s.get(key) })).latencies);
    cell.history100 = latencySummary(await timeEach(30, async () => {
      const h = await s.history(key, { limit: 100 });
      if (h.length !== Math.min(100, cell.R) || h[0].revision < cell.R) throw new Error(`history of ${key}: ${h.length} records from ${h[0]?.revision}`);
    }));
    say(`${backend} R=${sizeLabel(cell.R)}: get p50 ${ms(cell.get.p50Ms)} ms, history(100) p50 ${ms(cell.history100.p50Ms)} ms`);
  }
  for (const cell of cells) {
    cell.watchOld = await consume(cell, { key, fromRevision: 0 }, { count: cell.R, a: 1, b: 1 });
    say(`${backend} R=${sizeLabel(cell.R)}: watch from 0 — first event ${ms(cell.watchOld.firstEventMs)} ms, ${int(cell.watchOld.events)} events at ${int(cell.watchOld.eventsPerSec)}/s${cell.watchOld.complete ? '' : ' (cap reached)'}`);
    await settle(cell);
  }
  for (const cell of cells) {
    cell.watchRecent = await consume(cell, { key, fromRevision: cell.R - 100 }, { count: 100, a: 1, b: cell.R - 99 });
    say(`${backend} R=${sizeLabel(cell.R)}: watch from R − 100 — first event ${ms(cell.watchRecent.firstEventMs)} ms, 100 events in ${ms(cell.watchRecent.ms)} ms`);
    await settle(cell);
  }
  for (const cell of cells) {
    // update() of the hot key, then a live watch: every write is written after the last revision.
    cell.update = latencySummary((await runCallers({ callers: 1, durationMs: 1000, minOps: 20, op: () => cell.store.update(key, (v) => ({ ...v, n: v.n + 1 })) })).latencies);
    cell.live = await liveWatch(cell.store, { key }, () => key);
    say(`${backend} R=${sizeLabel(cell.R)}: update p50 ${ms(cell.update.p50Ms)} ms, live watch write→event p50 ${ms(cell.live.p50Ms)} ms`);
  }
  for (const cell of cells) await cell.store.close();
  for (const cell of cells) {
    cell.trim = backend === 'sqlite' ? await trimSqlite(cell, 1000) : await trimPostgres(cell, { historyDepth: 64, retentionMs: 0 });
    say(`${backend} R=${sizeLabel(cell.R)}: trim — ${trimLine(cell.trim)}`);
  }
  return cells.map((c) => ({
    revisions: c.R, fillSeconds: c.fillSeconds, url: redactTmp(c.url),
    get: lat(c.get), update: lat(c.update), history100: lat(c.history100),
    watchFromOldest: c.watchOld, watchFromRecent: c.watchRecent, liveWatch: c.live, trim: c.trim,
  }));
}

// ================================================================== B: a change log of L entries

async function partB(backend) {
  log(`\nB. ${backend}: change log of ${sizes.map(sizeLabel).join(' / ')} entries (${V} per key)`);
  const cells = [];
  for (const L of sizes) {
    const K = L / V;
    const cell = await fill(backend, `log${L}`, K, V);
    Object.assign(cell, { L, K });
    cell.url = backend === 'sqlite' ? `sqlite:${cell.path}?historyRetention=${Math.max(100_000, L)}` : `${pg.url}?prefix=log${L}_`;
    cells.push(cell);
  }
  if (backend === 'postgres') {
    for (const cell of cells) {
      cell.firstSweep = await explainPrune(cell, [0, 64, 60_000], { keepPlan: cell === cells.at(-1), commit: false });
      cell.steadySweep = await explainPrune(cell, [cell.L - 1000, 64, 60_000], { keepPlan: cell === cells.at(-1), commit: false });
      // A steady pass with something to prune: the keys written since the mark keep only their newest change.
      cell.steadyPrune = await explainPrune(cell, [cell.L - 1000, 1, 0], { keepPlan: cell === cells.at(-1), commit: false });
      say(`postgres L=${sizeLabel(cell.L)}: sweep's prune, first pass after open ${ms(cell.firstSweep.executionMs)} ms, steady state ${ms(cell.steadySweep.executionMs)} ms (nothing to prune), steady state pruning the last 1,000 revisions' keys ${ms(cell.steadyPrune.executionMs)} ms`);
    }
    await watchPlans(cells.at(-1));
  }
  for (const cell of cells) {
    cell.store = await open(cell.url);
    if (backend === 'postgres') await waitSweepIdle(cell);
  }
  const randomKey = (K) => keyOf(1 + Math.floor(Math.random() * K));
  for (const cell of cells) {
    const s = cell.store;
    cell.get = latencySummary((await runCallers({ callers: 1, durationMs: 500, minOps: 100, op: () => s.get(randomKey(cell.K)) })).latencies);
    cell.history = latencySummary(await timeEach(30, async () => {
      const h = await s.history(randomKey(cell.K), { limit: 100 });
      if (h.length < V) throw new Error(`history: ${h.length} records, expected at least ${V}`);
    }));
    say(`${backend} L=${sizeLabel(cell.L)}: get p50 ${ms(cell.get.p50Ms)} ms, history p50 ${ms(cell.history.p50Ms)} ms`);
  }
  for (const cell of cells) {
    cell.watchOld = await consume(cell, { prefix: '', fromRevision: 0 }, { count: cell.L, a: 1, b: 1 });
    say(`${backend} L=${sizeLabel(cell.L)}: watch all from 0 — first event ${ms(cell.watchOld.firstEventMs)} ms, ${int(cell.watchOld.events)} events at ${int(cell.watchOld.eventsPerSec)}/s${cell.watchOld.complete ? '' : ' (cap reached)'}`);
    await settle(cell);
  }
  for (const cell of cells) {
    const from = cell.L - RECENT;
    cell.watchRecent = await consume(cell, { prefix: '', fromRevision: from }, { count: RECENT, a: 1, b: from + 1 });
    say(`${backend} L=${sizeLabel(cell.L)}: watch all from head − ${int(RECENT)} — first event ${ms(cell.watchRecent.firstEventMs)} ms, ${int(cell.watchRecent.events)} events in ${ms(cell.watchRecent.ms)} ms${cell.watchRecent.complete ? '' : ' (cap reached)'}`);
    await settle(cell);
  }
  for (const cell of cells) {
    // The key whose last change is the head: its V changes are spread over the whole log.
    const j = cell.K;
    cell.watchKey = await consume(cell, { key: keyOf(j), fromRevision: 0 }, { count: V, a: cell.K, b: j, capMs: capMs * 3 });
    say(`${backend} L=${sizeLabel(cell.L)}: watch one key from 0 — first event ${ms(cell.watchKey.firstEventMs)} ms, its ${V} changes in ${ms(cell.watchKey.ms)} ms${cell.watchKey.complete ? '' : ` (cap reached: ${cell.watchKey.events})`}`);
    await settle(cell);
  }
  for (const cell of cells) {
    cell.update = latencySummary((await runCallers({ callers: 1, durationMs: 1000, minOps: 20, op: () => cell.store.update(randomKey(cell.K), (v) => ({ ...v, n: v.n + 1 })) })).latencies);
    cell.live = await liveWatch(cell.store, { prefix: '' }, () => randomKey(cell.K));
    say(`${backend} L=${sizeLabel(cell.L)}: update p50 ${ms(cell.update.p50Ms)} ms, live watch write→event p50 ${ms(cell.live.p50Ms)} ms`);
  }
  for (const cell of cells) await cell.store.close();
  for (const cell of cells) cell.bytes = await diskBytes(cell);
  for (const cell of cells) {
    cell.trim = backend === 'sqlite' ? await trimSqlite(cell, cell.L / 10) : await trimPostgres(cell, { historyDepth: 1, retentionMs: 0 });
    say(`${backend} L=${sizeLabel(cell.L)}: trim 90% — ${trimLine(cell.trim)}`);
  }
  return cells.map((c) => ({
    entries: c.L, keys: c.K, fillSeconds: c.fillSeconds, url: redactTmp(c.url),
    bytes: c.bytes, bytesPerEntry: round(c.bytes.total / c.L, 1),
    get: lat(c.get), update: lat(c.update), history: lat(c.history),
    watchFromOldest: c.watchOld, watchFromRecent: c.watchRecent, watchOneKeyFromOldest: c.watchKey, liveWatch: c.live,
    ...(c.firstSweep ? { firstSweep: c.firstSweep, steadySweep: c.steadySweep, steadyPrune: c.steadyPrune } : {}),
    ...(c.watchPlans ? { watchPlans: c.watchPlans } : {}),
    trim: c.trim,
  }));
}

// ================================================================== helpers

async function fill(backend, name, K, Vs) {
  const progress = (m) => process.stdout.write(`\r  fill ${backend} ${name}: ${m}          `);
  const t = performance.now();
  const cell = { backend, name };
  if (backend === 'sqlite') {
    cell.path = join(tmp, `${name}.db`);
    await loadSqlite(cell.path, K, Vs, { retention: Number.MAX_SAFE_INTEGER, onProgress: progress });
  } else {
    const c = await pg.client();
    try {
      await loadPostgres(pg.url, c, `${name}_`, K, Vs, { onProgress: progress });
    } finally {
      await c.end();
    }
  }
  cell.fillSeconds = round((performance.now() - t) / 1000, 1);
  process.stdout.write(`\r  fill ${backend} ${name}: ${K.toLocaleString('en-US')} keys × ${Vs} revisions in ${cell.fillSeconds} s          \n`);
  return cell;
}

/**
 * Consumes a watch in a process of its own (bench/lib/growth-watch-child.mjs) until `count` events
 * arrived or the cap passed. Every event is checked there: the i-th must carry revision a·i + b.
 * A child that overruns its cap by 20 s (a watch that blocks its event loop cannot be aborted from
 * inside) is killed. Answers first-event latency, events, rate, the child's peak RSS (VmHWM) and its
 * longest event-loop block.
 */
async function consume(cell, options, { count, a, b, capMs: cap = capMs }) {
  const la = load()[0];
  // The child's PostgreSQL store runs no background sweep (sweepIntervalMs=0): its first pass over the
  // change log is measured on its own (firstSweep), and would otherwise run under this measurement.
  const url = cell.backend === 'postgres' ? `${cell.url}&sweepIntervalMs=0` : cell.url;
  const arg = JSON.stringify({ url, options, count, a, b, capMs: cap });
  const child = spawn(process.execPath, [CHILD, arg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let first = null;
  let done = null;
  let stderr = '';
  let peakRss = 0;
  let buf = '';
  let startedAt = null;
  child.stdout.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (line.ready) startedAt = performance.now();
      else if (line.done) done = line;
      else if (line.first !== undefined) first = line.first;
    }
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const hwm = () => {
    try {
      const kb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]);
      if (kb) peakRss = Math.max(peakRss, kb * 1024);
    } catch {}
  };
  const sampler = setInterval(hwm, 100);
  let killed = false;
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const t0 = performance.now();
  for (;;) {
    const r = await Promise.race([exited, sleep(200).then(() => null)]);
    if (r) break;
    if (performance.now() - (startedAt ?? t0) > cap + 20_000 && !killed) {
      hwm();
      killed = true;
      child.kill('SIGKILL');
    }
  }
  clearInterval(sampler);
  const exit = await exited;
  if (!done && !killed) throw new Error(`watch child for ${JSON.stringify(options)} exited (${exit.code ?? exit.signal}) without a result: ${stderr.slice(-2000)}`);
  if (done?.error) throw new Error(`watch ${JSON.stringify(options)}: ${done.error}`);
  const elapsed = done ? done.ms : performance.now() - (startedAt ?? t0);
  const events = done ? done.events : 0;
  return {
    firstEventMs: round(first, 2), events, wanted: count, complete: Boolean(done?.complete), ms: round(elapsed, 1),
    eventsPerSec: done ? round(events / (elapsed / 1000), 0) : null,
    ...(done?.complete ? {} : { cappedAtMs: cap }),
    ...(killed ? { killed: `no result ${int((cap + 20_000) / 1000)} s after watch(): the child was killed (its event loop never let the cap end the watch)` } : {}),
    loopBlockedMaxMs: done ? round(done.loopBlockedMaxMs, 1) : null,
    peakRssMB: round(peakRss / 2 ** 20, 0),
    loadAverage1m: la,
  };
}

/** After an aborted watch: PostgreSQL may still run its last watch query; wait until the store's connections are idle. */
async function settle(cell) {
  if (cell.backend !== 'postgres') return;
  const c = await pg.client();
  const n = await pgNames(`${cell.name}_`);
  try {
    for (let i = 0; i < 1200; i++) {
      const busy = (await c.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()`, [`%FROM ${n.changes}%`])).rows[0].n;
      if (busy === 0) return;
      await sleep(100);
    }
  } finally {
    await c.end();
  }
}

/** Waits for the store's first background sweep (1 s after open) to end, so it does not run under the measurements. */
async function waitSweepIdle(cell) {
  await sleep(1500);
  const t = performance.now();
  await settle(cell);
  cell.firstSweepWaitMs = round(performance.now() - t, 0);
}

/**
 * A watch from now; then writes one after the other, each awaited with its event: answers the time
 * from the write's start to its event (the write's own commit included) and to its acknowledgement.
 */
async function liveWatch(store, options, nextKey, writes = 20) {
  const ac = new AbortController();
  const it = store.watch({ ...options, signal: ac.signal })[Symbol.asyncIterator]();
  const toEvent = [];
  const toAck = [];
  try {
    // The watch's start is fixed before its first next() resolves (DESIGN §3): a first write, awaited.
    const warm = it.next();
    await store.put(nextKey(), valueOf(-1));
    await warm;
    for (let i = 0; i < writes; i++) {
      const t = performance.now();
      let seen = null;
      const next = it.next().then((ev) => {
        seen = performance.now() - t;
        return ev;
      });
      const e = await store.put(nextKey(), valueOf(-2 - i));
      toAck.push(performance.now() - t);
      const ev = await next;
      if (ev.value.revision !== e.revision) throw new Error(`live watch: got revision ${ev.value.revision}, wrote ${e.revision}`);
      toEvent.push(seen);
    }
  } finally {
    ac.abort();
    await it.return?.().catch(() => undefined);
  }
  return { ...lat(toEvent), ackP50Ms: round(latencySummary(toAck).p50Ms, 3) };
}

function lat(s) {
  const x = Array.isArray(s) ? latencySummary(s) : s;
  return { p50Ms: round(x.p50Ms, 3), p99Ms: round(x.p99Ms, 3), maxMs: round(x.maxMs, 3), n: x.n };
}

async function diskBytes(cell) {
  if (cell.backend === 'sqlite') return sqliteBytes(cell.path);
  const n = await pgNames(`${cell.name}_`);
  const c = await pg.client();
  try {
    const row = (await c.query('SELECT pg_total_relation_size($1::regclass) AS kv, pg_total_relation_size($2::regclass) AS changes', [n.kv, n.changes])).rows[0];
    return { kv: Number(row.kv), changes: Number(row.changes), total: Number(row.kv) + Number(row.changes) };
  } finally {
    await c.end();
  }
}

async function countChanges(cell) {
  if (cell.backend === 'sqlite') {
    const db = new Database(cell.path, { readonly: true });
    try {
      return db.prepare('SELECT count(*) AS n FROM changes').get().n;
    } finally {
      db.close();
    }
  }
  const n = await pgNames(`${cell.name}_`);
  const c = await pg.client();
  try {
    return Number((await c.query(`SELECT count(*) AS n FROM ${n.changes}`)).rows[0].n);
  } finally {
    await c.end();
  }
}

/**
 * SQLite's trim, as the store does it: open with historyRetention = keep, commit 1,000 writes (one
 * group, one transaction: the store prunes once 1,000 writes committed) — the prune runs right after
 * that commit, inside the writing process. Then 1,000 more (a prune of 1,000 rows: the steady state).
 */
async function trimSqlite(cell, keep) {
  const before = await countChanges(cell);
  const store = await open(`sqlite:${cell.path}?historyRetention=${keep}`);
  const batch = (tag) => Promise.all(Array.from({ length: 1000 }, (_, i) => store.put(`trim/${tag}/${String(i).padStart(4, '0')}`, valueOf(i))));
  try {
    const first = await withLoopBlock(() => batch('a'));
    const mid = await countChanges(cell);
    const steady = await withLoopBlock(() => batch('b'));
    const after = await countChanges(cell);
    return {
      how: `historyRetention=${keep}, then 1,000 concurrent put() of new keys (one group commit; the store prunes right after it, in the writing process)`,
      rowsBefore: before, rowsAfter: mid, rowsDeleted: before + 1000 - mid,
      firstBatchMs: round(first.ms, 1), firstBatchLoopBlockedMaxMs: round(first.loopBlockedMaxMs, 1),
      steadyBatchMs: round(steady.ms, 1), steadyBatchLoopBlockedMaxMs: round(steady.loopBlockedMaxMs, 1), steadyRowsDeleted: mid + 1000 - after,
    };
  } finally {
    await store.close();
  }
}

/** PostgreSQL's trim: the background sweep's prune statement with these settings, EXPLAIN (ANALYZE, BUFFERS, TIMING OFF), committed. */
async function trimPostgres(cell, { historyDepth, retentionMs }) {
  const before = await countChanges(cell);
  const r = await explainPrune(cell, [0, historyDepth, retentionMs], { keepPlan: false, commit: true });
  const after = await countChanges(cell);
  return {
    how: `the sweep's prune statement (src/postgres/sql/sweep.ts) with historyDepth ${historyDepth}, changeRetentionMs ${retentionMs}, on its first pass (mark 0; one sweep examines ${PRUNE_SPAN} revisions), committed`,
    rowsBefore: before, rowsAfter: after, rowsDeleted: before - after, executionMs: r.executionMs, wallMs: r.wallMs,
  };
}

function trimLine(t) {
  return t.firstBatchMs !== undefined
    ? `${int(t.rowsDeleted)} rows deleted; the 1,000-write batch that pruned took ${ms(t.firstBatchMs)} ms, event loop held up to ${ms(t.firstBatchLoopBlockedMaxMs)} ms (steady batch ${ms(t.steadyBatchMs)} ms)`
    : `${int(t.rowsDeleted)} rows deleted in ${ms(t.executionMs)} ms`;
}

async function explainPrune(cell, params, { keepPlan, commit }) {
  const n = await pgNames(`${cell.name}_`);
  const c = await pg.client();
  try {
    await c.query('BEGIN');
    const t = performance.now();
    const plan = (await c.query(`EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) ${pruneSql(n)}`, [...params, PRUNE_SPAN])).rows.map((r) => r['QUERY PLAN']);
    const wallMs = performance.now() - t;
    await c.query(commit ? 'COMMIT' : 'ROLLBACK');
    const execution = Number(/Execution Time: ([\d.]+)/.exec(plan.join('\n'))?.[1]);
    return { params: { mark: params[0], historyDepth: params[1], changeRetentionMs: params[2] }, executionMs: round(execution, 1), wallMs: round(wallMs, 1), ...(keepPlan ? { plan } : {}) };
  } finally {
    await c.end();
  }
}

/**
 * The watch query (src/postgres/sql/watch.ts watchSql) at the largest log, EXPLAIN (ANALYZE, BUFFERS):
 * with the cursor between commits (key null: the first page, or after a short page) and inside a
 * revision (cursor key set: every page after a full one, i.e. all of a catch-up), as custom plans
 * (parameters bound, as the store's first executions) and as the prepared statement's generic plan.
 */
async function watchPlans(cell) {
  const n = await pgNames(`${cell.name}_`);
  const c = await pg.client();
  const mid = Math.floor(cell.L / 2);
  const cases = {
    cursorBetweenCommits: [cell.L, mid, null, ['%'], 500],
    cursorWithKey: [cell.L, mid, keyOf(keyAt(mid, cell.K)), ['%'], 500],
  };
  const plans = {};
  try {
    for (const [name, params] of Object.entries(cases)) {
      plans[`${name}Custom`] = (await c.query(`EXPLAIN (ANALYZE, BUFFERS) ${watchSql(n)}`, params)).rows.map((r) => r['QUERY PLAN']);
      await c.query(`PREPARE growth_w(bigint, bigint, text, text[], integer) AS ${watchSql(n)}`);
      await c.query('SET plan_cache_mode = force_generic_plan');
      plans[`${name}Generic`] = (await c.query(`EXPLAIN (ANALYZE, BUFFERS) EXECUTE growth_w(${params[0]}, ${params[1]}, ${params[2] === null ? 'NULL' : `'${params[2]}'`}, ARRAY['%'], 500)`)).rows.map((r) => r['QUERY PLAN']);
      await c.query('RESET plan_cache_mode');
      await c.query('DEALLOCATE growth_w');
    }
  } finally {
    await c.end();
  }
  const exec = (p) => round(Number(/Execution Time: ([\d.]+)/.exec(p.join('\n'))?.[1]), 2);
  const cost = (p) => Number(/cost=[\d.]+\.\.([\d.]+)/.exec(p[0])?.[1]);
  cell.watchPlans = Object.fromEntries(Object.entries(plans).map(([k, p]) => [k, { executionMs: exec(p), estimatedCost: cost(p), plan: p }]));
  for (const [k, v] of Object.entries(cell.watchPlans)) say(`postgres L=${sizeLabel(cell.L)}: watch query, ${k}: ${ms(v.executionMs)} ms (estimated cost ${v.estimatedCost})`);
}

function redactTmp(url) {
  return url.replace(tmp, '/tmp/…').replace(/postgres:\/\/[^/]*\//, 'postgres://…/');
}

function writeCharts() {
  const color = { sqlite: '#4e79a7', postgres: '#e15759' };
  const names = { sqlite: 'SQLite', postgres: 'PostgreSQL' };
  const loads = [];
  JSON.stringify(results, (k, v) => {
    if (k === 'loadAverage1m' && typeof v === 'number') loads.push(v);
    return v;
  });
  const sub = `${results.machine.cores} cores, load average ${Math.min(...loads)}–${Math.max(...loads)} · revkit ${results.builtFrom ?? results.machine.commit}`;
  const hot = (f, suffix, extra = {}) => Object.entries(results.hotKey).map(([b, cells]) => ({ label: `${names[b]}${suffix}`, color: color[b], points: cells.map((c) => [c.revisions, f(c)]), ...extra }));
  const logS = (f, suffix, extra = {}) => Object.entries(results.log).map(([b, cells]) => ({ label: `${names[b]}${suffix}`, color: color[b], points: cells.map((c) => [c.entries, f(c)]), ...extra }));
  const charts = {
    'growth-history-hotkey-watch.svg': lineChart({ title: 'One key with R revisions: watch({ key, fromRevision }) catching up', subtitle: sub, xLabel: 'revisions of the key', yUnit: 'events/s', guide: 'rate',
      series: [...hot((c) => c.watchFromOldest.eventsPerSec, ', from 0'), ...hot((c) => (c.watchFromRecent.complete ? 100 / (c.watchFromRecent.ms / 1000) : null), ', from R − 100', { dashed: true })] }),
    'growth-history-hotkey-latency.svg': lineChart({ title: 'One key with R revisions: latency of that key', subtitle: sub, xLabel: 'revisions of the key', yUnit: 'ms (p50)',
      series: [...hot((c) => c.get.p50Ms, ' get'), ...hot((c) => c.update.p50Ms, ' update()', { dashed: true }), ...hot((c) => c.history100.p50Ms, ' history(100)', { dash: '2 3' })] }),
    'growth-history-log-watch.svg': lineChart({ title: 'Change log of L entries: watch catch-up rate', subtitle: sub, xLabel: 'change-log entries', yUnit: 'events/s', guide: 'rate',
      series: [...logS((c) => c.watchFromOldest.eventsPerSec, ', all keys from 0'), ...logS((c) => c.watchFromRecent.eventsPerSec, ', all keys from head − 10k', { dashed: true })] }),
    'growth-history-log-first-event.svg': lineChart({ title: 'Change log of L entries: watch first-event latency', subtitle: sub, xLabel: 'change-log entries', yUnit: 'ms',
      series: [...logS((c) => c.watchFromOldest.firstEventMs, ', from 0'), ...logS((c) => c.watchFromRecent.firstEventMs, ', from head − 10k', { dashed: true }), ...logS((c) => (c.watchOneKeyFromOldest.complete ? c.watchOneKeyFromOldest.ms : null), ', one key from 0: its 10 changes', { dash: '2 3' })] }),
    'growth-history-trim.svg': lineChart({ title: 'Trimming history (SQLite historyRetention; PostgreSQL sweep)', subtitle: sub, xLabel: 'change-log entries', yUnit: 'ms',
      series: [...logS((c) => c.trim.firstBatchMs ?? c.trim.executionMs, ', trim 90%'),
        ...(results.log.postgres ? [{ label: 'PostgreSQL, first sweep (no-op)', color: '#b07aa1', dashed: true, points: results.log.postgres.map((c) => [c.entries, c.firstSweep?.executionMs]) },
          { label: 'PostgreSQL, steady sweep', color: '#76b7b2', dashed: true, points: results.log.postgres.map((c) => [c.entries, c.steadySweep?.executionMs]) },
          { label: 'PostgreSQL, steady, pruning', color: '#9c755f', dashed: true, points: results.log.postgres.map((c) => [c.entries, c.steadyPrune?.executionMs]) }] : [])] }),
  };
  for (const [file, svg] of Object.entries(charts)) writeFileSync(join(out.dir, file), svg);
}

function printTables() {
  for (const [backend, cells] of Object.entries(results.hotKey)) {
    log(`\nA. ${backend}: one key with R revisions`);
    log(textTable(['R', 'get p50', 'update p50', 'history(100) p50', 'watch 0: first', 'watch 0: ev/s', 'watch R−100: first', '…100 events', 'live p50', 'trim'],
      cells.map((c) => [sizeLabel(c.revisions), ms(c.get.p50Ms), ms(c.update.p50Ms), ms(c.history100.p50Ms), ms(c.watchFromOldest.firstEventMs),
        `${int(c.watchFromOldest.eventsPerSec)}${c.watchFromOldest.complete ? '' : '*'}`, ms(c.watchFromRecent.firstEventMs), ms(c.watchFromRecent.ms), ms(c.liveWatch.p50Ms), trimLine(c.trim)])));
  }
  for (const [backend, cells] of Object.entries(results.log)) {
    log(`\nB. ${backend}: change log of L entries`);
    log(textTable(['L', 'B/entry', 'get p50', 'update p50', 'history p50', 'all 0: first', 'all 0: ev/s', 'head−10k: first', 'head−10k: ev/s', 'one key: 10 changes', 'live p50', 'first sweep', 'trim 90%'],
      cells.map((c) => [sizeLabel(c.entries), fixed(c.bytesPerEntry, 0), ms(c.get.p50Ms), ms(c.update.p50Ms), ms(c.history.p50Ms), ms(c.watchFromOldest.firstEventMs),
        `${int(c.watchFromOldest.eventsPerSec)}${c.watchFromOldest.complete ? '' : '*'}`, ms(c.watchFromRecent.firstEventMs), `${int(c.watchFromRecent.eventsPerSec)}${c.watchFromRecent.complete ? '' : '*'}`,
        c.watchOneKeyFromOldest.complete ? `${ms(c.watchOneKeyFromOldest.ms)} ms` : `> ${int(c.watchOneKeyFromOldest.ms)} ms (${c.watchOneKeyFromOldest.events}/${V})`,
        ms(c.liveWatch.p50Ms), c.firstSweep ? `${ms(c.firstSweep.executionMs)} ms` : '–', trimLine(c.trim)])));
  }
  log(`\nms unless said; * = cap of ${capMs / 1000} s reached (events/s over what arrived)`);
  results.slopes = { note: 'log-log slope (exponent b of metric ∝ size^b) between consecutive sizes: ~0 flat, ~1 linear (for a rate: ~−1)', hotKey: {}, log: {} };
  for (const part of ['hotKey', 'log']) {
    for (const [backend, cells] of Object.entries(results[part])) {
      const x = part === 'hotKey' ? 'revisions' : 'entries';
      results.slopes[part][backend] = {
        watchFromOldestEventsPerSec: slopes(cells.map((c) => [c[x], c.watchFromOldest.eventsPerSec])),
        watchFromRecentFirstEventMs: slopes(cells.map((c) => [c[x], c.watchFromRecent.firstEventMs])),
        getP50: slopes(cells.map((c) => [c[x], c.get.p50Ms])),
        updateP50: slopes(cells.map((c) => [c[x], c.update.p50Ms])),
      };
    }
  }
  writeFileSync(join(out.dir, 'growth-history.json'), `${JSON.stringify(results, null, 2)}\n`);
}
