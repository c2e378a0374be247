// The figures of issue #4 in one run, against the real nats-server:
//   1. update() with one writer versus the raw @nats-io/kv get + update(key, value, revision) loop (ratio, goal <= 1.10);
//   2. 64 writers on one hot key: ops/s, attempts per commit, failures (goal 0) —
//      in one process without and with write combining, and across 4 OS processes x 16 writers.
// Usage: npm run build && node bench/nats-figures.mjs [--ops 2000] [--rounds 5] [--hot 6400] [--json out.json]
import { writeFileSync } from 'node:fs';
import { open } from '../dist/index.js';
import { runMultiProcessCounters } from '../dist/testing/index.js';
import { flagArgs, median, revkitLoop } from './lib/figures.mjs';
import * as target from './targets/nats.mjs';

const args = flagArgs();
const OPS = Number(args.ops ?? 2000);
const ROUNDS = Number(args.rounds ?? 5);
const HOT = Number(args.hot ?? 6400);

if (!(await target.available())) {
  console.error('nats-server with JetStream is not reachable at 127.0.0.1:4222');
  process.exit(1);
}

// 1. One writer, alternating rounds so drift hits both sides alike.
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
  t = performance.now();
  await revkitLoop(u2, 'c', OPS);
  rk.push(performance.now() - t);
}
const single = {
  ops: OPS, rounds: ROUNDS,
  rawMsMedian: median(raw), revkitMsMedian: median(rk),
  rawOpsPerSec: OPS / (median(raw) / 1000), revkitOpsPerSec: OPS / (median(rk) / 1000),
  ratio: median(rk) / median(raw),
};

// 2. 64 writers, one key.
async function hotInProcess(combine) {
  const url = await target.freshUrl();
  const store = await open(url);
  let attempts = 0;
  let failures = 0;
  let remaining = HOT;
  const t = performance.now();
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (remaining > 0) {
      remaining--;
      try {
        await store.update('hot', (n) => (n ?? 0) + 1, { combine, maxAttempts: 10_000, onRetry: () => void attempts++ });
        attempts++;
      } catch {
        failures++;
      }
    }
  }));
  const ms = performance.now() - t;
  const stored = (await store.get('hot'))?.value ?? 0;
  await store.close();
  return { writers: 64, processes: 1, combine, updates: HOT, ms, opsPerSec: HOT / (ms / 1000), attemptsPerCommit: attempts / (HOT - failures), failures, lost: HOT - failures - stored };
}

async function hotMultiProcess(combine) {
  const url = await target.freshUrl();
  const checker = await open(url);
  try {
    const r = await runMultiProcessCounters(url, checker, { processes: 4, writers: 16, increments: HOT, keys: 1, combine });
    return { writers: 64, processes: 4, combine, updates: HOT, ms: r.elapsedMs, opsPerSec: r.succeeded / (r.elapsedMs / 1000), attemptsPerCommit: r.attempts / r.succeeded, failures: r.failed, lost: r.lost, note: 'elapsed includes spawning the workers and their 1.5 s start barrier' };
  } finally {
    await checker.close();
  }
}

const hot = [await hotInProcess(false), await hotInProcess(true), await hotMultiProcess(false), await hotMultiProcess(true)];
await target.cleanup();

const server = await (async () => {
  const s = await open(await target.freshUrl());
  const f = s.features;
  await s.close();
  await target.cleanup();
  return f;
})();

console.log(`\nrevkit/nats figures — nats-server ${server.version}, node ${process.version}\n`);
console.log('1. one writer, sequential increments of one key (median of rounds)');
console.log(`   raw @nats-io/kv get+update : ${single.rawOpsPerSec.toFixed(0)} ops/s (${single.rawMsMedian.toFixed(0)} ms for ${OPS})`);
console.log(`   revkit update()            : ${single.revkitOpsPerSec.toFixed(0)} ops/s (${single.revkitMsMedian.toFixed(0)} ms for ${OPS})`);
console.log(`   ratio update()/raw         : ${single.ratio.toFixed(3)}  (goal <= 1.10)`);
console.log('\n2. 64 writers on one hot key');
console.log('   processes  combine  updates   ops/s   attempts/commit  failures  lost');
for (const h of hot) {
  console.log(`   ${String(h.processes).padEnd(10)} ${String(h.combine).padEnd(8)} ${String(h.updates).padEnd(9)} ${h.opsPerSec.toFixed(0).padStart(6)}   ${h.attemptsPerCommit.toFixed(2).padStart(15)}  ${String(h.failures).padStart(8)}  ${String(h.lost).padStart(4)}`);
}
const result = { backend: 'nats', server: server.version, node: process.version, at: new Date().toISOString(), single, hot };
console.log(`\n${JSON.stringify(result)}`);
if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 2));
