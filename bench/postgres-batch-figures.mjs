// Issue 15, PostgreSQL (points 2 and 4), side by side in one run against the real PostgreSQL
// on 127.0.0.1 (database test). Rounds alternate every side so drift hits all alike; figures are
// medians over rounds, ratios against the one-writer raw pg loop of the same run:
//   1. one writer, one key, blocks of 50 increments alternating side by side: raw pg CAS loop (SELECT + UPDATE … WHERE revision = $n), the same loop
//      on a kine-shaped append-only table (SELECT newest + one INSERT, UNIQUE (key, prev_revision)),
//      revkit update() with group commit and without (goal, issue 26: update() <= 1.2x raw);
//   2. 64 writers, a key each, update() defaults, for --ms per cell: group commit with 1, 2 and 4
//      batches in flight, and without (goal, issue 26: >= 8x the one-writer raw rate). Nothing lost or
//      duplicated per cell (successes per key versus the stored counter); each cell is also paired
//      with one-writer raw runs right before and after it (the ratio that drift does not skew);
//   3. the write statements alone, one connection each, interleaved op by op (--stmts ops): the raw
//      UPDATE, kine's INSERT, a kine-shaped INSERT carrying what revkit records, revkit's lean
//      ifRevision UPDATE (putRevisionSql) and its CTE form (putSql): median wall time per write and
//      server CPU per write (from /proc of each backend), both against the raw UPDATE.
// Usage: npm run build && node bench/postgres-batch-figures.mjs [--ops 600] [--rounds 3] [--ms 3000] [--writers 64] [--stmts 2000] [--json out.json]
import { readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import * as lib from '../dist/index.js';
import { putRevisionSql, putSql } from '../dist/postgres/sql/cas.js';
import { flagArgs, median } from './lib/figures.mjs';
import { inProcess } from './workloads/in-process.mjs';
import { DEFAULT_ON } from './lib/policies.mjs';
import * as target from './targets/postgres.mjs';

const args = flagArgs();
const OPS = Number(args.ops ?? 600);
const ROUNDS = Number(args.rounds ?? 3);
const MS = Number(args.ms ?? 3000);
const WRITERS = Number(args.writers ?? 64);
const STMTS = Number(args.stmts ?? 2000);
const BLOCK = 50;

if (!(await target.available())) {
  console.error('PostgreSQL is not reachable (set REVKIT_PG_URL, default postgres://root@127.0.0.1:5432/test)');
  process.exit(1);
}

const withParams = (url, params) => `${url}&${new URLSearchParams(params)}`;
const increment = (n) => (n ?? 0) + 1;

const pgUrl = (url) => {
  const u = new URL(url);
  const prefix = u.searchParams.get('prefix');
  u.searchParams.delete('prefix');
  return { connectionString: u.toString(), prefix };
};

/** The raw pg CAS loop of bench/targets/postgres.mjs (SELECT, then UPDATE … WHERE revision = $n), on a pool kept open. */
async function rawSide(url, key) {
  const { connectionString, prefix } = pgUrl(url);
  const table = `"${prefix}raw"`;
  const pool = new pg.Pool({ connectionString, max: 2 });
  pool.on('error', () => undefined);
  await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL, revision bigint NOT NULL)`);
  return {
    async step() {
      for (;;) {
        const r = await pool.query({ name: 'raw_get', text: `SELECT value, revision FROM ${table} WHERE key = $1`, values: [key] });
        const row = r.rows[0];
        const next = Buffer.from(JSON.stringify((row ? JSON.parse(row.value.toString('utf8')) : 0) + 1));
        const w = row
          ? await pool.query({ name: 'raw_upd', text: `UPDATE ${table} SET value = $2, revision = revision + 1 WHERE key = $1 AND revision = $3`, values: [key, next, row.revision] })
          : await pool.query({ name: 'raw_ins', text: `INSERT INTO ${table} (key, value, revision) VALUES ($1, $2, 1) ON CONFLICT (key) DO NOTHING`, values: [key, next] });
        if (w.rowCount === 1) return;
      }
    },
    close: () => pool.end(),
  };
}

/**
 * kine's shape (pkg/drivers/generic): every write is one INSERT into an append-only log whose
 * id is the revision; UNIQUE (name, prev_revision) makes the second of two writers that read the
 * same revision fail. Reading a key is "newest row of that name".
 */
async function kineSide(url, key) {
  const { connectionString, prefix } = pgUrl(url);
  const table = `"${prefix}kine"`;
  const pool = new pg.Pool({ connectionString, max: 2 });
  pool.on('error', () => undefined);
  await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (id bigserial PRIMARY KEY, name text COLLATE "C" NOT NULL, prev_revision bigint NOT NULL, value bytea)`);
  await pool.query(`CREATE UNIQUE INDEX IF NOT EXISTS "${prefix}kine_name_prev" ON ${table} (name, prev_revision)`);
  await pool.query(`CREATE INDEX IF NOT EXISTS "${prefix}kine_name_id" ON ${table} (name, id)`);
  return {
    async step() {
      for (;;) {
        const r = await pool.query({ name: 'kine_get', text: `SELECT id, value FROM ${table} WHERE name = $1 ORDER BY id DESC LIMIT 1`, values: [key] });
        const row = r.rows[0];
        const next = Buffer.from(JSON.stringify((row ? JSON.parse(row.value.toString('utf8')) : 0) + 1));
        const w = await pool.query({
          name: 'kine_ins',
          text: `INSERT INTO ${table} (name, prev_revision, value) VALUES ($1, $2, $3) ON CONFLICT (name, prev_revision) DO NOTHING`,
          values: [key, row ? row.id : 0, next],
        });
        if (w.rowCount === 1) return;
      }
    },
    close: () => pool.end(),
  };
}

async function updateSide(url, key) {
  const store = await lib.open(url);
  return { step: () => store.update(key, increment), close: () => store.close() };
}

async function writersCell(url, keyBase) {
  const store = await lib.open(url);
  try {
    return await inProcess({ lib, store, writers: WRITERS, distinct: true, spec: DEFAULT_ON, durationMs: MS, keyBase });
  } finally {
    await store.close();
  }
}

/** Section 3: each write statement on its own connection, interleaved op by op, one key each. */
async function statements(url) {
  const u = new URL(url);
  const prefix = u.searchParams.get('prefix');
  u.searchParams.delete('prefix');
  const t = (x) => `"${prefix}${x}"`;
  const store = await lib.open(url);
  const n = store.names;
  const connect = async () => {
    const c = new pg.Client({ connectionString: u.toString() });
    await c.connect();
    return { c, pid: (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p };
  };
  const cpu = procCpu;
  const buf = (x) => Buffer.from(JSON.stringify(x));
  const setup = await connect();
  try {
    await setup.c.query(`CREATE TABLE ${t('sraw')} (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL, revision bigint NOT NULL)`);
    await setup.c.query(`INSERT INTO ${t('sraw')} VALUES ('k', '0', 1)`);
    await setup.c.query(`CREATE TABLE ${t('skine')} (id bigserial PRIMARY KEY, name text COLLATE "C" NOT NULL, prev_revision bigint NOT NULL, value bytea)`);
    await setup.c.query(`CREATE UNIQUE INDEX ON ${t('skine')} (name, prev_revision)`);
    await setup.c.query(`CREATE INDEX ON ${t('skine')} (name, id)`);
    await setup.c.query(`INSERT INTO ${t('skine')} (name, prev_revision, value) VALUES ('k', 0, '0')`);
    // kine's shape with what revkit records per write: every revkit column, the revision from
    // next_revision() (watch's xid rule), and a check that the guard names the key's newest row
    // (kine trusts its caller's revision; revkit's ifRevision may be any number).
    await setup.c.query(`CREATE TABLE ${t('slog')} (key text COLLATE "C" NOT NULL, revision bigint NOT NULL, prev_revision bigint NOT NULL,
      created_revision bigint NOT NULL, value bytea, deleted boolean NOT NULL, updated_at bigint NOT NULL, expires_at bigint, writer text, PRIMARY KEY (key, revision))`);
    await setup.c.query(`CREATE UNIQUE INDEX ON ${t('slog')} (key, prev_revision)`);
    await setup.c.query(`CREATE INDEX ON ${t('slog')} (revision)`);
    const seed = await store.put('kl', 0);
    await setup.c.query(`INSERT INTO ${t('slog')} VALUES ('k', $1, 0, $1, '0', false, 0, NULL, NULL)`, [seed.revision]);
    const state = { raw: 1, kine: 1, log: seed.revision, lean: (await store.put('lean', 0)).revision, cte: (await store.put('cte', 0)).revision };
    const sides = {
      rawUpdate: { text: `UPDATE ${t('sraw')} SET value = $2, revision = revision + 1 WHERE key = $1 AND revision = $3 RETURNING revision`, args: (i) => ['k', buf(i), state.raw], next: (r) => (state.raw = Number(r.revision)) },
      kineInsert: { text: `INSERT INTO ${t('skine')} (name, prev_revision, value) VALUES ($1, $2, $3) ON CONFLICT (name, prev_revision) DO NOTHING RETURNING id AS revision`, args: (i) => ['k', state.kine, buf(i)], next: (r) => (state.kine = Number(r.revision)) },
      kineShapedRevkit: {
        text: `INSERT INTO ${t('slog')} (key, revision, prev_revision, created_revision, value, deleted, updated_at, expires_at, writer)
          SELECT $1, ${n.next}(), p.revision, p.created_revision, $2, false, (extract(epoch FROM statement_timestamp()) * 1000)::bigint, NULL, $3
          FROM ${t('slog')} p WHERE p.key = $1 AND p.revision = $4 AND NOT p.deleted
          ON CONFLICT (key, prev_revision) DO NOTHING RETURNING revision`,
        args: (i) => ['k', buf(i), 'w_token', state.log], next: (r) => (state.log = Number(r.revision)),
      },
      revkitLean: { text: putRevisionSql(n), args: (i) => ['lean', buf(i), null, 'w_token', state.lean], next: (r) => (state.lean = Number(r.revision)) },
      revkitCte: { text: putSql(n, 'rev', true), args: (i) => ['cte', buf(i), null, 'w_token', state.cte], next: (r) => (state.cte = Number(r.revision)) },
    };
    const conns = {};
    for (const side of Object.keys(sides)) conns[side] = await connect();
    const wall = Object.fromEntries(Object.keys(sides).map((k) => [k, []]));
    const cpu0 = Object.fromEntries(Object.entries(conns).map(([k, v]) => [k, cpu(v.pid)]));
    for (let i = 0; i < STMTS; i++) {
      for (const [side, st] of Object.entries(sides)) {
        const s0 = performance.now();
        const r = await conns[side].c.query({ name: side, text: st.text, values: st.args(i) });
        wall[side].push(performance.now() - s0);
        if (r.rows[0]?.revision === null || r.rows[0]?.revision === undefined) throw new Error(`${side}: the write did not happen`);
        st.next(r.rows[0]);
      }
    }
    const out = {};
    for (const side of Object.keys(sides)) out[side] = { wallMedianUs: median(wall[side]) * 1000, serverCpuUs: ((cpu(conns[side].pid) - cpu0[side]) / STMTS) * 1e6 };
    for (const v of Object.values(conns)) await v.c.end();
    for (const v of Object.values(out)) {
      v.wallVsRaw = v.wallMedianUs / out.rawUpdate.wallMedianUs;
      v.cpuVsRaw = v.serverCpuUs / out.rawUpdate.serverCpuUs;
    }
    return out;
  } finally {
    await setup.c.end();
    await store.close();
  }
}

const single = { raw: [], kine: [], update: [], updateNoGroup: [] };
const clientCpu = {};
const serverCpu = {};
const singleOps = {};
const pairedTimesRaw = {};

// utime + stime of a backend, in seconds (Linux /proc; the server runs on this machine).
function procCpu(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** The backends of section 1's sides (by application_name) and their CPU seconds so far. */
async function backendCpu() {
  const { connectionString } = pgUrl(await target.freshUrl());
  const c = new pg.Client({ connectionString });
  await c.connect();
  try {
    const r = await c.query(`SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE $1`, [`rkb_${process.pid}_%`]);
    return new Map(r.rows.map((row) => [row.pid, { side: row.application_name.split('_').pop(), s: procCpu(row.pid) }]));
  } finally {
    await c.end();
  }
}
const many = { inFlight1: [], inFlight2: [], inFlight4: [], noGroup: [] };
const cells = {};
try {
  // application_name tells each side's backends apart, for their server CPU (section 1).
  const tagged = (url, side) => withParams(url, { application_name: `rkb_${process.pid}_${side}` });
  const singleSides = {
    raw: (url) => rawSide(tagged(url, 'raw'), 'single-raw'),
    kine: (url) => kineSide(tagged(url, 'kine'), 'single-kine'),
    update: (url) => updateSide(tagged(url, 'update'), 'single-update'),
    updateNoGroup: (url) => updateSide(withParams(tagged(url, 'updateNoGroup'), { groupCommit: 'false' }), 'single-update-nogroup'),
  };
  const manySides = {
    inFlight1: (url, k) => writersCell(withParams(url, { batchesInFlight: '1' }), k),
    inFlight2: (url, k) => writersCell(withParams(url, { batchesInFlight: '2' }), k),
    inFlight4: (url, k) => writersCell(withParams(url, { batchesInFlight: '4' }), k),
    noGroup: (url, k) => writersCell(withParams(url, { groupCommit: 'false' }), k),
  };
  const url = await target.freshUrl();
  await (await lib.open(url)).close(); // the schema exists before anything is timed
  // One writer: every side stays open; blocks of BLOCK increments alternate side by side, so load
  // spikes on this shared machine hit all sides alike; the figure is the median block.
  const open = {};
  for (const [side, make] of Object.entries(singleSides)) {
    open[side] = await make(url);
    for (let i = 0; i < 50; i++) await open[side].step();
  }
  const cpuBefore = await backendCpu();
  for (let b = 0; b < Math.ceil((OPS * ROUNDS) / BLOCK); b++) {
    // The order rotates from block to block, so no side always follows the same one.
    const names = Object.keys(singleSides);
    for (const side of names.map((_, i) => names[(i + b) % names.length])) {
      const c = process.cpuUsage();
      const t = performance.now();
      for (let i = 0; i < BLOCK; i++) await open[side].step();
      single[side].push(BLOCK / ((performance.now() - t) / 1000));
      const used = process.cpuUsage(c);
      clientCpu[side] = (clientCpu[side] ?? 0) + used.user + used.system;
      singleOps[side] = (singleOps[side] ?? 0) + BLOCK;
    }
  }
  const cpuAfter = await backendCpu();
  for (const [pid, { side, s }] of cpuAfter) serverCpu[side] = (serverCpu[side] ?? 0) + s - (cpuBefore.get(pid)?.s ?? 0);
  for (const o of Object.values(open)) await o.close();
  // 64 writers: each cell is paired with one-writer raw runs right before and after it (the
  // machine's fsync latency drifts a lot), and its ratio is against their mean.
  const oneWriterRaw = await rawSide(url, 'paired-raw');
  const rawRate = async () => {
    const t = performance.now();
    for (let i = 0; i < 4 * BLOCK; i++) await oneWriterRaw.step();
    return (4 * BLOCK) / ((performance.now() - t) / 1000);
  };
  for (let r = 0; r < ROUNDS; r++) {
    for (const [side, run] of Object.entries(manySides)) {
      const before = await rawRate();
      const cell = await run(url, `many-${side}-${r}`);
      const after = await rawRate();
      many[side].push(cell.opsPerSec);
      (pairedTimesRaw[side] ??= []).push(cell.opsPerSec / ((before + after) / 2));
      const sum = (cells[side] ??= { ops: 0, failed: 0, lost: 0, duplicated: 0, p99Ms: [], attemptsPerCommit: [] });
      sum.ops += cell.ops;
      sum.failed += cell.failed;
      sum.lost += cell.lost;
      sum.duplicated += cell.duplicated;
      sum.p99Ms.push(cell.p99Ms);
      sum.attemptsPerCommit.push(cell.attemptsPerCommit);
    }
    process.stderr.write(`round ${r + 1}/${ROUNDS} done\n`);
  }
  await oneWriterRaw.close();
  var stmts = STMTS > 0 ? await statements(await target.freshUrl()) : undefined;
} finally {
  await target.cleanup();
}

const raw = median(single.raw);
const out = {
  backend: 'postgres', ops: OPS, rounds: ROUNDS, cellMs: MS, writers: WRITERS,
  single: Object.fromEntries(Object.entries(single).map(([k, v]) => [k, {
    opsPerSec: median(v), perBlock: v, overheadVsRaw: raw / median(v),
    // Time per op against raw's, block by block (each pair ran back to back), then the median.
    pairedOverheadVsRaw: median(v.map((x, i) => single.raw[i] / x)),
    clientCpuUsPerOp: clientCpu[k] / singleOps[k], serverCpuUsPerOp: ((serverCpu[k] ?? 0) / singleOps[k]) * 1e6,
  }])),
  statements: stmts,
  many: Object.fromEntries(Object.entries(many).map(([k, v]) => [k, { opsPerSec: median(v), perRound: v, timesRaw: median(v) / raw, pairedTimesRaw: median(pairedTimesRaw[k]), pairedPerRound: pairedTimesRaw[k], ...cells[k], p99Ms: median(cells[k].p99Ms) }])),
};

const f = (x, d = 0) => x.toFixed(d);
console.log(`\nrevkit/postgres group commit and single-writer figures (${new Date().toISOString()})\n`);
console.log(`1. one writer, one key, ${OPS * ROUNDS} increments per side in blocks of ${BLOCK}, sides alternating (median block; time per op against raw's)`);
console.log('   side             ops/s   x raw time/op   paired   client cpu us/op   server cpu us/op');
for (const [k, v] of Object.entries(out.single)) {
  console.log(`   ${k.padEnd(14)} ${f(v.opsPerSec).padStart(7)} ${f(v.overheadVsRaw, 3).padStart(15)} ${f(v.pairedOverheadVsRaw, 3).padStart(8)} ${f(v.clientCpuUsPerOp).padStart(18)} ${f(v.serverCpuUsPerOp).padStart(18)}`);
}
console.log(`   goal: update() <= 1.2x (paired) -> ${out.single.update.pairedOverheadVsRaw <= 1.2 ? 'met' : 'not met'}\n`);
console.log(`2. ${WRITERS} writers, a key each, update() defaults, ${MS} ms per cell (median ops/s over rounds)`);
console.log('   side          ops/s   x one-writer raw (section 1)   x paired raw   p99 ms  attempts/commit  failed  lost  duplicated');
for (const [k, v] of Object.entries(out.many)) {
  console.log(`   ${k.padEnd(11)} ${f(v.opsPerSec).padStart(7)} ${f(v.timesRaw, 2).padStart(30)} ${f(v.pairedTimesRaw, 2).padStart(14)} ${f(v.p99Ms, 1).padStart(8)} ${f(median(v.attemptsPerCommit), 2).padStart(16)} ${String(v.failed).padStart(7)} ${String(v.lost).padStart(5)} ${String(v.duplicated).padStart(11)}`);
}
console.log(`   goal: >= 8x one-writer raw (paired, default batchesInFlight 2) -> ${out.many.inFlight2.pairedTimesRaw >= 8 ? 'met' : 'not met'}`);
if (stmts) {
  console.log(`\n3. the write statements alone, ${STMTS} each, interleaved op by op (median wall per write; server CPU per write)`);
  for (const [k, v] of Object.entries(stmts)) console.log(`   ${k.padEnd(17)} ${f(v.wallMedianUs).padStart(6)} us  ${f(v.wallVsRaw, 3)}x   cpu ${f(v.serverCpuUs).padStart(5)} us  ${f(v.cpuVsRaw, 2)}x`);
}
if (args.json) writeFileSync(args.json, JSON.stringify(out, null, 2));
