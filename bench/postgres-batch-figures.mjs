// Issue 15, PostgreSQL (points 2 and 4), side by side in one run against the real PostgreSQL
// on 127.0.0.1 (database test). Rounds alternate every side so drift hits all alike; figures are
// medians over rounds, ratios against the one-writer raw pg loop of the same run:
//   1. one writer, one key: raw pg CAS loop (SELECT + UPDATE … WHERE revision = $n), the same loop
//      on a kine-shaped append-only table (SELECT newest + one INSERT, UNIQUE (key, prev_revision)),
//      revkit update() with group commit and without (goal: update() <= 1.10x raw);
//   2. 64 writers, a key each, update() defaults, for --ms per cell: group commit with 1, 2 and 4
//      batches in flight, and without (goal >= 5x the one-writer raw rate). Nothing lost or
//      duplicated per cell (successes per key versus the stored counter).
// Usage: npm run build && node bench/postgres-batch-figures.mjs [--ops 600] [--rounds 3] [--ms 3000] [--writers 64] [--json out.json]
import { writeFileSync } from 'node:fs';
import pg from 'pg';
import * as lib from '../dist/index.js';
import { flagArgs, median } from './lib/figures.mjs';
import { inProcess } from './workloads/in-process.mjs';
import { DEFAULT_ON } from './lib/policies.mjs';
import * as target from './targets/postgres.mjs';

const args = flagArgs();
const OPS = Number(args.ops ?? 600);
const ROUNDS = Number(args.rounds ?? 3);
const MS = Number(args.ms ?? 3000);
const WRITERS = Number(args.writers ?? 64);

if (!(await target.available())) {
  console.error('PostgreSQL is not reachable (set REVKIT_PG_URL, default postgres://root@127.0.0.1:5432/test)');
  process.exit(1);
}

const withParams = (url, params) => `${url}&${new URLSearchParams(params)}`;
const increment = (n) => (n ?? 0) + 1;

/**
 * kine's shape (pkg/drivers/generic): every write is one INSERT into an append-only log whose
 * id is the revision; UNIQUE (name, prev_revision) makes the second of two writers that read the
 * same revision fail. Reading a key is "newest row of that name".
 */
async function kineLoop(url, key, ops) {
  const u = new URL(url);
  const table = `"${u.searchParams.get('prefix')}kine"`;
  u.searchParams.delete('prefix');
  const pool = new pg.Pool({ connectionString: u.toString(), max: 2 });
  pool.on('error', () => undefined);
  try {
    await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (id bigserial PRIMARY KEY, name text COLLATE "C" NOT NULL, prev_revision bigint NOT NULL, value bytea)`);
    await pool.query(`CREATE UNIQUE INDEX IF NOT EXISTS "${table.slice(1, -1)}_name_prev" ON ${table} (name, prev_revision)`);
    await pool.query(`CREATE INDEX IF NOT EXISTS "${table.slice(1, -1)}_name_id" ON ${table} (name, id)`);
    for (let i = 0; i < ops; i++) {
      for (;;) {
        const r = await pool.query({ name: `kine_get_${table}`, text: `SELECT id, value FROM ${table} WHERE name = $1 ORDER BY id DESC LIMIT 1`, values: [key] });
        const row = r.rows[0];
        const next = Buffer.from(JSON.stringify((row ? JSON.parse(row.value.toString('utf8')) : 0) + 1));
        const w = await pool.query({
          name: `kine_ins_${table}`,
          text: `INSERT INTO ${table} (name, prev_revision, value) VALUES ($1, $2, $3) ON CONFLICT (name, prev_revision) DO NOTHING`,
          values: [key, row ? row.id : 0, next],
        });
        if (w.rowCount === 1) break;
      }
    }
  } finally {
    await pool.end();
  }
}

async function updateLoop(url, key, ops) {
  const store = await lib.open(url);
  try {
    for (let i = 0; i < ops; i++) await store.update(key, increment);
  } finally {
    await store.close();
  }
}

async function timed(run) {
  const t = performance.now();
  await run();
  return performance.now() - t;
}

async function writersCell(url, keyBase) {
  const store = await lib.open(url);
  try {
    return await inProcess({ lib, store, writers: WRITERS, distinct: true, spec: DEFAULT_ON, durationMs: MS, keyBase });
  } finally {
    await store.close();
  }
}

const single = { raw: [], kine: [], update: [], updateNoGroup: [] };
const many = { inFlight1: [], inFlight2: [], inFlight4: [], noGroup: [] };
const cells = {};
try {
  const singleSides = {
    raw: (url, key) => target.rawLoop({ url, key, ops: OPS }),
    kine: (url, key) => kineLoop(url, key, OPS),
    update: (url, key) => updateLoop(url, key, OPS),
    updateNoGroup: (url, key) => updateLoop(withParams(url, { groupCommit: 'false' }), key, OPS),
  };
  const manySides = {
    inFlight1: (url, k) => writersCell(withParams(url, { batchesInFlight: '1' }), k),
    inFlight2: (url, k) => writersCell(withParams(url, { batchesInFlight: '2' }), k),
    inFlight4: (url, k) => writersCell(withParams(url, { batchesInFlight: '4' }), k),
    noGroup: (url, k) => writersCell(withParams(url, { groupCommit: 'false' }), k),
  };
  const url = await target.freshUrl();
  await (await lib.open(url)).close(); // the schema exists before anything is timed
  for (const [side, run] of Object.entries(singleSides)) await run(url, `warm-${side}`);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [side, run] of Object.entries(singleSides)) {
      const ms = await timed(() => run(url, `single-${side}-${r}`));
      single[side].push(OPS / (ms / 1000));
    }
    for (const [side, run] of Object.entries(manySides)) {
      const cell = await run(url, `many-${side}-${r}`);
      many[side].push(cell.opsPerSec);
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
} finally {
  await target.cleanup();
}

const raw = median(single.raw);
const out = {
  backend: 'postgres', ops: OPS, rounds: ROUNDS, cellMs: MS, writers: WRITERS,
  single: Object.fromEntries(Object.entries(single).map(([k, v]) => [k, { opsPerSec: median(v), perRound: v, overheadVsRaw: raw / median(v) }])),
  many: Object.fromEntries(Object.entries(many).map(([k, v]) => [k, { opsPerSec: median(v), perRound: v, timesRaw: median(v) / raw, ...cells[k], p99Ms: median(cells[k].p99Ms) }])),
};

const f = (x, d = 0) => x.toFixed(d);
console.log(`\nrevkit/postgres group commit and single-writer figures (${new Date().toISOString()})\n`);
console.log(`1. one writer, one key, ${OPS} increments per round, ${ROUNDS} rounds (median ops/s; overhead = raw time / side time inverted)`);
for (const [k, v] of Object.entries(out.single)) console.log(`   ${k.padEnd(14)} ${f(v.opsPerSec).padStart(7)} ops/s   ${f(v.overheadVsRaw, 3)}x raw's time per op`);
console.log(`   goal: update() <= 1.10x  -> ${out.single.update.overheadVsRaw <= 1.1 ? 'met' : 'not met'}\n`);
console.log(`2. ${WRITERS} writers, a key each, update() defaults, ${MS} ms per cell (median ops/s over rounds)`);
console.log('   side          ops/s   x one-writer raw   p99 ms  attempts/commit  failed  lost  duplicated');
for (const [k, v] of Object.entries(out.many)) {
  console.log(`   ${k.padEnd(11)} ${f(v.opsPerSec).padStart(7)} ${f(v.timesRaw, 2).padStart(18)} ${f(v.p99Ms, 1).padStart(8)} ${f(median(v.attemptsPerCommit), 2).padStart(16)} ${String(v.failed).padStart(7)} ${String(v.lost).padStart(5)} ${String(v.duplicated).padStart(11)}`);
}
console.log(`   goal: >= 5x one-writer raw -> ${Math.max(...Object.entries(out.many).filter(([k]) => k !== 'noGroup').map(([, v]) => v.timesRaw)) >= 5 ? 'met' : 'not met'}`);
if (args.json) writeFileSync(args.json, JSON.stringify(out, null, 2));
