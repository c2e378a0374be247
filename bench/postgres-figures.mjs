// The figures of issue #3 in one run, against the real PostgreSQL on 127.0.0.1 (database test):
//   1. update() with one writer versus a raw pg loop of SELECT + UPDATE … WHERE revision = $n
//      (ratio of medians over alternating rounds; goal <= 1.10);
//   2. 64 writers on one hot key: ops/s, attempts per commit, failures (goal 0) —
//      in one process without and with write combining, and across 4 OS processes x 16 writers.
//      update() runs with its defaults (maxAttempts 64, deadline 30 s): a failure is a real give-up.
// Usage: npm run build && node bench/postgres-figures.mjs [--ops 1000] [--rounds 5] [--hot 3200] [--json out.json]
import { writeFileSync } from 'node:fs';
import { open } from '../dist/index.js';
import { runMultiProcessCounters } from '../dist/testing/index.js';
import { flagArgs, median, revkitLoop } from './lib/figures.mjs';
import * as target from './targets/postgres.mjs';

const args = flagArgs();
const OPS = Number(args.ops ?? 1000);
const ROUNDS = Number(args.rounds ?? 5);
const HOT = Number(args.hot ?? 3200);

if (!(await target.available())) {
  console.error('PostgreSQL is not reachable (set REVKIT_PG_URL, default postgres://root@127.0.0.1:5432/test)');
  process.exit(1);
}

try {
  // 1. One writer, alternating rounds so drift (fsync latency, other load) hits both sides alike.
  const raw = [];
  const rk = [];
  const warm = await target.freshUrl();
  await target.rawLoop({ url: warm, key: 'warm', ops: 200 });
  await revkitLoop(warm, 'warm2', 200);
  for (let r = 0; r < ROUNDS; r++) {
    const u1 = await target.freshUrl();
    let t = performance.now();
    await target.rawLoop({ url: u1, key: 'c', ops: OPS });
    raw.push(performance.now() - t);
    const u2 = await target.freshUrl();
    await (await open(u2)).close(); // create the schema outside the timed part
    t = performance.now();
    await revkitLoop(u2, 'c', OPS);
    rk.push(performance.now() - t);
  }
  const single = {
    ops: OPS, rounds: ROUNDS,
    rawMsMedian: median(raw), revkitMsMedian: median(rk),
    rawOpsPerSec: OPS / (median(raw) / 1000), revkitOpsPerSec: OPS / (median(rk) / 1000),
    ratio: median(rk) / median(raw),
    ratiosPerRound: rk.map((x, i) => x / raw[i]),
  };

  // 2. 64 writers, one key.
  async function hotInProcess(combine) {
    const url = await target.freshUrl();
    const store = await open(url);
    let attempts = 0;
    let failures = 0;
    let remaining = HOT;
    const errors = new Set();
    const t = performance.now();
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (remaining > 0) {
        remaining--;
        try {
          await store.update('hot', (n) => (n ?? 0) + 1, { combine, onRetry: () => void attempts++ });
          attempts++;
        } catch (err) {
          failures++;
          errors.add(`${err.code}: ${err.message}`);
        }
      }
    }));
    const ms = performance.now() - t;
    const stored = (await store.get('hot'))?.value ?? 0;
    await store.close();
    return {
      writers: 64, processes: 1, combine, updates: HOT, ms, opsPerSec: (HOT - failures) / (ms / 1000),
      attemptsPerCommit: attempts / Math.max(1, HOT - failures), failures, lost: HOT - failures - stored, errors: [...errors].slice(0, 3),
    };
  }

  async function hotMultiProcess() {
    const url = await target.freshUrl();
    const verify = await open(url);
    try {
      const r = await runMultiProcessCounters(url, verify, { processes: 4, writers: 16, increments: HOT, keys: 1, combine: false, maxAttempts: 64, deadlineMs: 30_000 });
      return {
        writers: 64, processes: 4, combine: false, updates: HOT, ms: r.elapsedMs, opsPerSec: r.succeeded / (r.elapsedMs / 1000),
        attemptsPerCommit: r.attempts / Math.max(1, r.succeeded), failures: r.failed, lost: r.lost, duplicated: r.duplicated, errors: r.errors.slice(0, 3),
      };
    } finally {
      await verify.close();
    }
  }

  const hot = [await hotInProcess(false), await hotInProcess(true), await hotMultiProcess()];

  console.log(`\nrevkit/postgres figures (${new Date().toISOString()})\n`);
  console.log('1. one writer, update() vs raw pg SELECT + UPDATE … WHERE revision = $n');
  console.log(`   ops per round ${OPS}, rounds ${ROUNDS}`);
  console.log(`   raw    median ${single.rawMsMedian.toFixed(0)} ms  (${single.rawOpsPerSec.toFixed(0)} ops/s)`);
  console.log(`   revkit median ${single.revkitMsMedian.toFixed(0)} ms  (${single.revkitOpsPerSec.toFixed(0)} ops/s)`);
  console.log(`   ratio revkit/raw = ${single.ratio.toFixed(3)}  (goal <= 1.10; per round: ${single.ratiosPerRound.map((x) => x.toFixed(2)).join(' ')})\n`);
  console.log('2. 64 writers, one hot key, update() defaults');
  console.log('   procs  combine   updates   ops/s   attempts/commit  failures  lost');
  for (const h of hot) {
    console.log(`   ${String(h.processes).padStart(5)}  ${String(h.combine).padEnd(7)} ${String(h.updates).padStart(9)} ${h.opsPerSec.toFixed(0).padStart(7)} ${h.attemptsPerCommit.toFixed(2).padStart(17)} ${String(h.failures).padStart(9)} ${String(h.lost).padStart(5)}${h.errors.length ? `   e.g. ${h.errors[0]}` : ''}`);
  }
  if (args.json) writeFileSync(args.json, JSON.stringify({ backend: 'postgres', single, hot }, null, 2));
} finally {
  await target.cleanup();
}
