// The SQLite figures of issue #15, side by side in one run, as ratios:
//   1. one writer: update() versus better-sqlite3's own CAS loop (bench/targets/sqlite-*.mjs),
//      alternating rounds (bench/workloads/single-writer.mjs); goals (issue 26) FULL <= 1.2, NORMAL <= 2;
//   2. 64 writers in one process, each on its own key (update() with its defaults), against the
//      one-writer raw rate of the same run; goal FULL >= 8x. Lost or duplicated increments: 0.
//      Also 64 writers each guarding its put by the revision its previous put returned (the
//      server's and etcd bench's workload: no read, no update() loop), to show group commit alone;
//      and both again with ?groupCommit=false (one transaction per write), in the same run;
//   3. point 4's study (bench/lib/sqlite-shapes.mjs): hand-written driver loops over revkit's
//      schema and over kine's one-table revision log, each as a ratio to the raw loop.
//
// Usage: npm run build && node bench/sqlite-group-figures.mjs [--sync full,normal] [--rounds 5]
//          [--round-ms 700] [--duration 3000] [--writers 64] [--json out.json] [--dist path/to/dist] [--shapes no]
// --dist runs another build of revkit (e.g. the previous commit's) through the same workloads.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { flagArgs } from './lib/figures.mjs';
import { sqliteTarget } from './lib/sqlite-target.mjs';
import { singleWriter } from './workloads/single-writer.mjs';
import { inProcess } from './workloads/in-process.mjs';
import { DEFAULT_ON } from './lib/policies.mjs';
import { shapeStudy } from './lib/sqlite-shapes.mjs';

const args = flagArgs();
const dist = args.dist ? pathToFileURL(resolve(args.dist, 'index.js')).href : new URL('../dist/index.js', import.meta.url).href;
const lib = await import(dist);
const modes = String(args.sync ?? 'full,normal').split(',');
const rounds = Number(args.rounds ?? 5);
const roundMs = Number(args['round-ms'] ?? 700);
const durationMs = Number(args.duration ?? 3000);
const writers = Number(args.writers ?? 64);
// Issue 26's goals: one writer <= 1.2x the raw loop on FULL, <= 2x on NORMAL; 64 writers >= 8x one raw writer on FULL.
const GOALS = { full: { single: 1.2, distinct: 8 }, normal: { single: 2 } };

const out = { generatedAt: new Date().toISOString(), dist, rounds, roundMs, durationMs, writers, modes: {} };
for (const sync of modes) {
  const target = sqliteTarget(sync);
  try {
    const url = await target.freshUrl();
    await (await lib.open(url)).close(); // the schema outside the timed part
    const single = await singleWriter({ target, lib, url, rounds, roundMs });
    const store = await lib.open(await target.freshUrl());
    let distinct;
    try {
      distinct = await inProcess({ lib, store, writers, distinct: true, spec: DEFAULT_ON, durationMs, keyBase: 'd' });
    } finally {
      await store.close();
    }
    const guarded = await guardedPuts(await lib.open(await target.freshUrl()), writers, durationMs);
    // The same workloads with one transaction per write (?groupCommit=false), in this run: what group commit buys.
    const ungroupedStore = await lib.open(`${await target.freshUrl()}&groupCommit=false`);
    let ungrouped;
    try {
      ungrouped = await inProcess({ lib, store: ungroupedStore, writers, distinct: true, spec: DEFAULT_ON, durationMs, keyBase: 'u' });
    } finally {
      await ungroupedStore.close();
    }
    const ungroupedPuts = await guardedPuts(await lib.open(`${await target.freshUrl()}&groupCommit=false`), writers, durationMs);
    const goal = GOALS[sync] ?? {};
    const m = {
      rawOpsPerSec: single.raw.opsPerSec,
      updateOpsPerSec: single.update.opsPerSec,
      singleRatio: single.ratio,
      singleRatioNoCombine: single.ratioNoCombine,
      primitivesRatio: single.ratioPrimitives,
      singleRatiosPerRound: single.ratiosPerRound,
      singleGoal: goal.single ?? null,
      singleMet: goal.single === undefined ? null : single.ratio <= goal.single,
      distinctOpsPerSec: distinct.opsPerSec,
      distinctP50Ms: distinct.p50Ms,
      distinctP99Ms: distinct.p99Ms,
      distinctRatio: distinct.opsPerSec / single.raw.opsPerSec,
      distinctGoal: goal.distinct ?? null,
      distinctMet: goal.distinct === undefined ? null : distinct.opsPerSec / single.raw.opsPerSec >= goal.distinct,
      failed: distinct.failed, lost: distinct.lost, duplicated: distinct.duplicated,
      guardedPutsOpsPerSec: guarded.opsPerSec,
      guardedPutsRatio: guarded.opsPerSec / single.raw.opsPerSec,
      guardedPutsLost: guarded.lost,
      writesPerCommit: guarded.writesPerCommit,
      ungroupedOpsPerSec: ungrouped.opsPerSec,
      ungroupedRatio: ungrouped.opsPerSec / single.raw.opsPerSec,
      ungroupedPutsOpsPerSec: ungroupedPuts.opsPerSec,
      ungroupedPutsRatio: ungroupedPuts.opsPerSec / single.raw.opsPerSec,
      ungroupedLost: ungrouped.lost + ungrouped.duplicated + ungroupedPuts.lost,
    };
    out.modes[sync] = m;
    const f = (x) => x.toFixed(2);
    console.log(
      `sqlite ${sync.toUpperCase()}: raw ${Math.round(m.rawOpsPerSec)} ops/s; one writer update() ${Math.round(m.updateOpsPerSec)} ops/s = ${f(m.singleRatio)}x raw time/op` +
        ` (no combining ${f(m.singleRatioNoCombine)}x, getRecord+put ${f(m.primitivesRatio)}x)${m.singleGoal ? `, goal <= ${m.singleGoal}: ${m.singleMet ? 'met' : 'NOT met'}` : ''}`,
    );
    console.log(
      `  ${writers} writers, distinct keys: ${Math.round(m.distinctOpsPerSec)} ops/s = ${f(m.distinctRatio)}x the one-writer raw rate` +
        `${m.distinctGoal ? `, goal >= ${m.distinctGoal}x: ${m.distinctMet ? 'met' : 'NOT met'}` : ''}; p50 ${f(m.distinctP50Ms)} ms, p99 ${f(m.distinctP99Ms)} ms; failed ${m.failed}, lost ${m.lost}, duplicated ${m.duplicated}`,
    );
    console.log(
      `  ${writers} writers, distinct keys, put(ifRevision) chained on the last revision: ${Math.round(m.guardedPutsOpsPerSec)} ops/s = ${f(m.guardedPutsRatio)}x raw` +
        `${m.writesPerCommit === null ? '' : `, ${m.writesPerCommit.toFixed(1)} writes per commit`}; lost ${m.guardedPutsLost}`,
    );
    console.log(
      `  the same two with ?groupCommit=false (one transaction per write): update() ${Math.round(m.ungroupedOpsPerSec)} ops/s = ${f(m.ungroupedRatio)}x raw,` +
        ` chained puts ${Math.round(m.ungroupedPutsOpsPerSec)} ops/s = ${f(m.ungroupedPutsRatio)}x raw; lost or duplicated ${m.ungroupedLost}`,
    );
    if (args.shapes !== 'no') {
      m.shapes = shapeStudy(sync, { rounds });
      console.log(`  driver loops, ratio to raw (wall; cpu): ${Object.entries(m.shapes).map(([k, v]) => `${k} ${v.ratioToRaw.toFixed(2)}x; ${v.cpuRatioToRaw.toFixed(2)}x (${(v.msPerOp * 1000).toFixed(0)} us/op)`).join(', ')}`);
    }
  } finally {
    await target.cleanup();
  }
}
/** Each writer puts n+1 guarded by the revision its previous put returned; a conflict would be a bug (one writer per key). */
async function guardedPuts(store, writers, ms) {
  let ops = 0;
  let lost = 0;
  const commitsBefore = store.commitCount;
  const end = performance.now() + ms;
  const t = performance.now();
  try {
    await Promise.all(Array.from({ length: writers }, async (_, w) => {
      const key = `g/${w}`;
      let entry = await store.put(key, 0, { ifAbsent: true });
      while (performance.now() < end) {
        entry = await store.put(key, entry.value + 1, { ifRevision: entry.revision });
        ops++;
      }
      if ((await store.get(key))?.value !== entry.value) lost++;
    }));
    const elapsed = performance.now() - t;
    const commits = store.commitCount === undefined ? null : store.commitCount - commitsBefore;
    return { opsPerSec: ops / (elapsed / 1000), lost, writesPerCommit: commits ? (ops + writers) / commits : null };
  } finally {
    await store.close();
  }
}

if (args.json) writeFileSync(args.json, `${JSON.stringify(out, null, 1)}\n`);
const bad = Object.values(out.modes).some((m) => m.lost > 0 || m.duplicated > 0 || m.guardedPutsLost > 0 || m.ungroupedLost > 0);
process.exitCode = bad ? 1 : 0;
