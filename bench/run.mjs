// npm run bench — every workload of issue #7 against every backend available
// here, in one run: prints a table per workload, and writes machine-readable
// results, the hot-key chart and a BENCHMARKS.md-shaped report to bench/out/
// (ignored by git) or the folder --out names. Only --publish writes the
// tracked copies: bench/results/latest.json, bench/results/hot-key.svg and
// BENCHMARKS.md (see bench/lib/out.mjs).
//
//   npm run bench                              full run (≈ 5–10 min on 2 cores), into bench/out/
//   npm run bench -- --publish                 full run, regenerating BENCHMARKS.md and bench/results/
//   npm run bench -- --out DIR                 results into DIR instead of bench/out/
//   npm run bench -- --quick                   short cells (≈ 1–2 min)
//   npm run bench -- --only sqlite,memory      some backends (prefix match); partial results
//   npm run bench -- --workloads a,b           some workloads: a b c d sweep
//   npm run bench -- --duration 4000           ms per cell of (b) (c) (d); --round-ms, --rounds for (a)
//   node bench/run.mjs --from-json bench/results/latest.json [--publish]   the report and chart again, from a run's results
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import * as lib from '../dist/index.js';
import { progress } from './lib/progress.mjs';
import { POLICIES, DEFAULT_ON } from './lib/policies.mjs';
import { machineInfo } from './lib/machine.mjs';
import { printTables, writeReport } from './lib/report.mjs';
import { output } from './lib/out.mjs';
import { singleWriter } from './workloads/single-writer.mjs';
import { inProcess } from './workloads/in-process.mjs';
import { multiProcess } from './workloads/multi-process.mjs';

const here = dirname(fileURLToPath(import.meta.url));

const USAGE = 'usage: node bench/run.mjs [--quick] [--only a,b] [--workloads a,b,c,d,sweep] [--duration ms] [--sweep-ms ms] [--rounds n] [--round-ms ms] [--json path] [--out DIR | --publish] [--from-json path]';

function parseArgs(argv) {
  const flags = new Set(['quick', 'publish', 'help']);
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}\n${USAGE}`);
    const [k, inline] = a.slice(2).split('=', 2);
    if (flags.has(k)) out[k] = true;
    else {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`--${k} needs a value\n${USAGE}`);
      out[k] = v;
    }
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}

const out = output(args);

if (args['from-json']) {
  const results = JSON.parse(readFileSync(args['from-json'], 'utf8'));
  console.log(printTables(results));
  const written = writeReport(results, { ...out, json: args['from-json'] });
  console.log(`\nwrote ${written.join(' and ')} from ${args['from-json']}`);
  process.exit(0);
}

const quick = Boolean(args.quick);
const params = {
  quick,
  durationMs: Number(args.duration ?? (quick ? 700 : 2500)),
  sweepMs: Number(args['sweep-ms'] ?? (quick ? 400 : 1200)),
  rounds: Number(args.rounds ?? 3),
  roundMs: Number(args['round-ms'] ?? (quick ? 250 : 700)),
  processes: 4,
  writersPerProcess: 16,
  hotWriters: 64,
  sweepWriters: [1, 4, 16, 64],
  policies: POLICIES,
  updateDefaults: { maxAttempts: lib.UPDATE_DEFAULTS.maxAttempts, deadlineMs: lib.UPDATE_DEFAULTS.deadlineMs, retry: lib.UPDATE_DEFAULTS.retry.name },
};
const workloads = new Set((args.workloads ?? 'a,b,c,d,sweep').split(',').map((s) => s.trim()));
const only = args.only ? args.only.split(',').map((s) => s.trim()) : null;

// Targets: every bench/targets/*.mjs, the known ones first.
const ORDER = ['memory', 'sqlite-full', 'sqlite-normal', 'postgres', 'nats'];
const files = readdirSync(join(here, 'targets')).filter((f) => f.endsWith('.mjs'));
const targets = [];
for (const f of files) targets.push(await import(pathToFileURL(join(here, 'targets', f)).href));
targets.sort((a, b) => {
  const ia = ORDER.indexOf(a.name);
  const ib = ORDER.indexOf(b.name);
  return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.name.localeCompare(b.name);
});
const selected = targets.filter((t) => !only || only.some((o) => t.name === o || t.name.startsWith(o)));
if (selected.length === 0) throw new Error(`no target matches --only ${args.only}; targets: ${targets.map((t) => t.name).join(', ')}`);

const complete = !quick && !only && ['a', 'b', 'c', 'd', 'sweep'].every((w) => workloads.has(w));
const results = {
  generatedAt: new Date().toISOString(),
  command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  complete,
  params,
  machine: machineInfo(),
  backends: [],
};

// Cells per target, for the progress counter.
const sweepExtra = params.sweepWriters.filter((w) => w !== params.hotWriters).length * 2;
const cellsPer = (t) =>
  (workloads.has('a') ? 1 : 0) + (workloads.has('b') ? POLICIES.length : 0) + (workloads.has('d') ? 1 : 0) +
  (workloads.has('sweep') ? sweepExtra : 0) + (workloads.has('c') && t.crossProcess !== false ? POLICIES.length : 0);
const bar = progress(selected.reduce((n, t) => n + cellsPer(t), 0));
const cellSummary = (c) =>
  `${Math.round(c.opsPerSec).toLocaleString('en-US')} ops/s, p50 ${c.p50Ms?.toFixed(2)} ms, p99 ${c.p99Ms?.toFixed(2)} ms, ${c.attemptsPerCommit?.toFixed(2)} attempts/commit, failed ${c.failed}, lost ${c.lost}`;

let fatal = null;
for (const target of selected) {
  const entry = { name: target.name, available: false };
  results.backends.push(entry);
  if (!(await target.available())) {
    entry.note = 'not available on this machine (server or driver missing): skipped';
    bar.note(`${target.name}: ${entry.note}`);
    continue;
  }
  entry.available = true;
  entry.version = await describe(target);
  let store;
  try {
    if (workloads.has('a')) {
      bar.start(`${target.name} (a) one writer: update() vs raw CAS loop`);
      const url = await target.freshUrl();
      await (await lib.open(url)).close(); // schema outside the timed part
      entry.single = await singleWriter({ target, lib, url, rounds: params.rounds, roundMs: params.roundMs, tick: bar.tick });
      bar.finish(`raw ${Math.round(entry.single.raw.opsPerSec)} ops/s, update() ${Math.round(entry.single.update.opsPerSec)} ops/s, ratio ${entry.single.ratio.toFixed(3)} (no combining ${entry.single.ratioNoCombine.toFixed(3)})`);
    }
    // Every cell gets a fresh, empty store (own file / table prefix / bucket) so
    // that no cell inherits the history, change log or dead tuples of another.
    const probe = await lib.open(await target.freshUrl());
    entry.crossProcess = target.crossProcess !== false && probe.capabilities.crossProcess;
    await probe.close();
    const cell = async (label, run) => {
      bar.start(`${target.name} ${label}`);
      const url = await target.freshUrl();
      store = await lib.open(url);
      try {
        const c = await run(store, url);
        bar.finish(cellSummary(c));
        return c;
      } finally {
        await store.close();
        store = undefined;
      }
    };
    if (workloads.has('b')) {
      entry.hot = [];
      for (const spec of POLICIES) {
        entry.hot.push(await cell(`(b) ${params.hotWriters} writers, one key, one process · ${spec.label}`, (store) =>
          inProcess({ lib, store, writers: params.hotWriters, distinct: false, spec, durationMs: params.durationMs, keyBase: `b/${spec.id}` })));
      }
    }
    if (workloads.has('d')) {
      entry.distinct = await cell(`(d) ${params.hotWriters} writers, distinct keys · ${DEFAULT_ON.label}`, (store) =>
        inProcess({ lib, store, writers: params.hotWriters, distinct: true, spec: DEFAULT_ON, durationMs: params.durationMs, keyBase: 'd' }));
    }
    if (workloads.has('sweep')) {
      entry.sweep = [];
      for (const writers of params.sweepWriters) {
        if (writers === params.hotWriters) continue;
        for (const spec of POLICIES.filter((p) => p.id.startsWith('default'))) {
          entry.sweep.push(await cell(`sweep ${writers} writers, one key · ${spec.label}`, (store) =>
            inProcess({ lib, store, writers, distinct: false, spec, durationMs: params.sweepMs, keyBase: `sweep/${writers}/${spec.id}` })));
        }
      }
    }
    if (workloads.has('c')) {
      if (!entry.crossProcess) {
        entry.multiNote = `${target.name} lives in one process: workload (c) does not apply`;
      } else {
        entry.multi = [];
        for (const spec of POLICIES) {
          entry.multi.push(await cell(`(c) ${params.processes} processes × ${params.writersPerProcess} writers, one key · ${spec.label}`, (store, url) =>
            multiProcess({ url, verify: store, processes: params.processes, writers: params.writersPerProcess, spec, durationMs: params.durationMs, key: `c/${spec.id}` })));
        }
      }
    }
  } catch (err) {
    entry.error = String(err?.stack ?? err);
    bar.note(`${target.name}: failed: ${err?.message ?? err}`);
    fatal ??= err;
  } finally {
    await store?.close().catch(() => undefined);
    await target.cleanup?.().catch(() => undefined);
  }
}
bar.end();

console.log(printTables(results));
// A partial run never takes the published latest.json's name.
const jsonPath = args.json ?? join(out.dir, complete || !out.publish ? 'latest.json' : 'partial.json');
mkdirSync(dirname(jsonPath), { recursive: true });
writeFileSync(jsonPath, `${JSON.stringify(results, null, 1)}\n`);
console.log(`\nresults: ${jsonPath}`);
const written = writeReport(results, { ...out, json: jsonPath });
console.log(`wrote ${written.join(' and ')}`);
if (!out.publish) console.log('BENCHMARKS.md and bench/results/ left as they are (add --publish to regenerate them from this run)');
if (fatal) process.exitCode = 1;

async function describe(target) {
  try {
    if (typeof target.version === 'function') return await target.version();
    const store = await lib.open(await target.freshUrl());
    try {
      if (store.features?.version) return `nats-server ${store.features.version}`;
      if (target.name.startsWith('postgres')) {
        const pg = (await import('pg')).default;
        const { createRequire } = await import('node:module');
        const pkgVersion = createRequire(import.meta.url)('pg/package.json').version;
        const client = new pg.Client({ connectionString: process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test` });
        await client.connect();
        try {
          const r = await client.query('SHOW server_version');
          const s = await client.query('SHOW synchronous_commit');
          return `PostgreSQL ${r.rows[0].server_version} (synchronous_commit=${s.rows[0].synchronous_commit}), pg ${pkgVersion}`;
        } finally {
          await client.end();
        }
      }
      return store.backend;
    } finally {
      await store.close();
    }
  } catch (err) {
    return `unknown (${err?.message ?? err})`;
  }
}
