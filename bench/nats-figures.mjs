// The figures of issue #4 in one run, against the real nats-server:
//   1. update() with one writer versus the raw @nats-io/kv get + update(key, value, revision) loop (ratio, goal <= 1.10);
//   2. 64 writers on one hot key: ops/s, attempts per commit, failures (goal 0) —
//      in one process without and with write combining, and across 4 OS processes x 16 writers;
//   3. (issue 15) 64 writers on distinct keys, one connection: is pipelining worth building? revkit
//      update() as it is (every writer's request in flight at once on the one connection), the same
//      store with its calls sent one round trip at a time, and the raw @nats-io/kv loop with 64
//      writers — each against the one-writer raw loop of the same run, nothing lost per cell.
// Usage: npm run build && node bench/nats-figures.mjs [--ops 2000] [--rounds 5] [--hot 6400] [--sections 1,2,3] [--ms 3000] [--json out.json]
import { writeFileSync } from 'node:fs';
import { open } from '../dist/index.js';
import { runMultiProcessCounters } from '../dist/testing/index.js';
import * as lib from '../dist/index.js';
import { flagArgs, median, revkitLoop } from './lib/figures.mjs';
import { DEFAULT_ON } from './lib/policies.mjs';
import { inProcess } from './workloads/in-process.mjs';
import * as target from './targets/nats.mjs';

const args = flagArgs();
const OPS = Number(args.ops ?? 2000);
const ROUNDS = Number(args.rounds ?? 5);
const HOT = Number(args.hot ?? 6400);
const SECTIONS = new Set(String(args.sections ?? '1,2,3').split(','));
const MS = Number(args.ms ?? 3000);

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
for (let r = 0; r < (SECTIONS.has('1') ? ROUNDS : 0); r++) {
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

// 3. 64 writers, a key each, for MS per cell; sides alternate over ROUNDS rounds.
async function distinctKeys() {
  const enc = new TextEncoder();
  /** The raw loop of targets/nats.mjs, 64 writers on one connection, a key each, for MS. */
  async function rawWriters(url) {
    const { connect } = await import('@nats-io/transport-node');
    const { Kvm } = await import('@nats-io/kv');
    const nc = await connect({ servers: new URL(url).host, noAsyncTraces: true });
    try {
      const kv = await new Kvm(nc).create(new URL(url).searchParams.get('bucket'), { history: 64 });
      const perKey = {};
      const end = performance.now() + MS;
      const t = performance.now();
      await Promise.all(Array.from({ length: 64 }, async (_, w) => {
        const key = `raw.${w}`;
        perKey[key] = 0;
        while (performance.now() < end) {
          for (;;) {
            const e = await kv.get(key);
            const next = enc.encode(JSON.stringify((e?.operation === 'PUT' ? e.json() : 0) + 1));
            try {
              if (e === null) await kv.create(key, next);
              else await kv.update(key, next, e.revision);
              break;
            } catch (err) {
              if (err?.code !== 10071 && err?.code !== 10164 && !/wrong last sequence/.test(String(err?.message))) throw err;
            }
          }
          perKey[key]++;
        }
      }));
      const ms = performance.now() - t;
      let lost = 0;
      let duplicated = 0;
      for (const [key, n] of Object.entries(perKey)) {
        const stored = (await kv.get(key))?.json() ?? 0;
        lost += Math.max(0, n - stored);
        duplicated += Math.max(0, stored - n);
      }
      const ops = Object.values(perKey).reduce((a, b) => a + b, 0);
      return { opsPerSec: ops / (ms / 1000), lost, duplicated, failed: 0 };
    } finally {
      await nc.close();
    }
  }
  /** revkit, 64 update() writers; `serial`: the store's reads and writes go one round trip at a time. */
  async function revkitWriters(url, serial) {
    const store = await open(url);
    if (serial) {
      let chain = Promise.resolve();
      for (const name of ['getRecord', 'put']) {
        const call = store[name].bind(store);
        store[name] = (...a) => {
          const r = chain.then(() => call(...a));
          chain = r.then(() => undefined, () => undefined);
          return r;
        };
      }
    }
    try {
      const r = await inProcess({ lib, store, writers: 64, distinct: true, spec: DEFAULT_ON, durationMs: MS, keyBase: 'd' });
      return { opsPerSec: r.opsPerSec, lost: r.lost, duplicated: r.duplicated, failed: r.failed, p99Ms: r.p99Ms };
    } finally {
      await store.close();
    }
  }
  const sides = {
    oneWriterRaw: async (url) => {
      const n = 500;
      const t = performance.now();
      await target.rawLoop({ url, key: 'one', ops: n });
      return { opsPerSec: n / ((performance.now() - t) / 1000), lost: 0, duplicated: 0, failed: 0 };
    },
    raw64: rawWriters,
    revkit64: (url) => revkitWriters(url, false),
    revkit64OneAtATime: (url) => revkitWriters(url, true),
  };
  const out = Object.fromEntries(Object.keys(sides).map((k) => [k, { perRound: [], lost: 0, duplicated: 0, failed: 0 }]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [side, run] of Object.entries(sides)) {
      const c = await run(await target.freshUrl());
      out[side].perRound.push(c.opsPerSec);
      out[side].lost += c.lost;
      out[side].duplicated += c.duplicated;
      out[side].failed += c.failed;
    }
    await target.cleanup();
  }
  const base = median(out.oneWriterRaw.perRound);
  for (const v of Object.values(out)) {
    v.opsPerSec = median(v.perRound);
    v.timesOneWriterRaw = v.opsPerSec / base;
  }
  return out;
}

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

const hot = SECTIONS.has('2') ? [await hotInProcess(false), await hotInProcess(true), await hotMultiProcess(false), await hotMultiProcess(true)] : [];
const pipeline = SECTIONS.has('3') ? await distinctKeys() : undefined;
await target.cleanup();

const server = await (async () => {
  const s = await open(await target.freshUrl());
  const f = s.features;
  await s.close();
  await target.cleanup();
  return f;
})();

console.log(`\nrevkit/nats figures — nats-server ${server.version}, node ${process.version}\n`);
if (SECTIONS.has('1')) {
  console.log('1. one writer, sequential increments of one key (median of rounds)');
  console.log(`   raw @nats-io/kv get+update : ${single.rawOpsPerSec.toFixed(0)} ops/s (${single.rawMsMedian.toFixed(0)} ms for ${OPS})`);
  console.log(`   revkit update()            : ${single.revkitOpsPerSec.toFixed(0)} ops/s (${single.revkitMsMedian.toFixed(0)} ms for ${OPS})`);
  console.log(`   ratio update()/raw         : ${single.ratio.toFixed(3)}  (goal <= 1.10)`);
}
if (SECTIONS.has('2')) {
  console.log('\n2. 64 writers on one hot key');
  console.log('   processes  combine  updates   ops/s   attempts/commit  failures  lost');
  for (const h of hot) {
    console.log(`   ${String(h.processes).padEnd(10)} ${String(h.combine).padEnd(8)} ${String(h.updates).padEnd(9)} ${h.opsPerSec.toFixed(0).padStart(6)}   ${h.attemptsPerCommit.toFixed(2).padStart(15)}  ${String(h.failures).padStart(8)}  ${String(h.lost).padStart(4)}`);
  }
}
if (pipeline) {
  console.log(`\n3. 64 writers on distinct keys, one connection, ${MS} ms per cell (median of ${ROUNDS} rounds; x the one-writer raw loop)`);
  console.log('   side                  ops/s   x one-writer raw  failed  lost  duplicated');
  for (const [k, v] of Object.entries(pipeline)) {
    console.log(`   ${k.padEnd(20)} ${v.opsPerSec.toFixed(0).padStart(6)}   ${v.timesOneWriterRaw.toFixed(2).padStart(15)}  ${String(v.failed).padStart(6)}  ${String(v.lost).padStart(4)}  ${String(v.duplicated).padStart(10)}`);
  }
}
const result = { backend: 'nats', server: server.version, node: process.version, at: new Date().toISOString(), single, hot, pipeline };
console.log(`\n${JSON.stringify(result)}`);
if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 2));
