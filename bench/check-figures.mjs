#!/usr/bin/env node
// Issues 6 and 10 figures: how often `revkit check` catches each canary (the
// store-level lost update, and the API-level shared result and double
// application), the checker's time on the largest reference histories, and
// `revkit check` on each backend available here.
// Run: npm run build && node bench/check-figures.mjs [--runs 100] [--canaries lost-update,shared-result,double-apply] [--backends 1|0]
// Writes what it prints to check-figures.txt in bench/out/ as well (bench/results/ with REVKIT_BENCH_PUBLISH=1; bench/lib/out.mjs).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCheck } from '../dist/testing/check/run.js';
import { canaryKinds, checkOperations, parseKvEdn, stringKvModel, parseJepsenEtcdLog, casRegisterModel } from '../dist/testing/index.js';
import { flagArgs, median } from './lib/figures.mjs';
import { machineInfo } from './lib/machine.mjs';
import { output } from './lib/out.mjs';

const flags = flagArgs();
const runs = Number(flags.runs ?? 100);
const canaries = (flags.canaries ?? canaryKinds.join(',')).split(',');
const backends = flags.backends !== '0';
const dir = mkdtempSync(join(tmpdir(), 'revkit-check-figures-'));
const histories = new URL('../test/fixtures/histories/', import.meta.url);
const out = [];
const say = (line) => {
  console.log(line);
  out.push(line);
};
const seconds = (ms) => `${(ms / 1000).toFixed(2)} s`;

say(`machine: ${JSON.stringify(machineInfo())}`);
for (const [name, parse, model] of [['porcupine-kv/c50-bad.txt', parseKvEdn, stringKvModel], ['porcupine-kv/c50-ok.txt', parseKvEdn, stringKvModel], ['jepsen-etcd/etcd_002.log', parseJepsenEtcdLog, casRegisterModel]]) {
  const ops = parse(readFileSync(new URL(name, histories), 'utf8'));
  const t = performance.now();
  const report = checkOperations(model, ops, { timeoutMs: 10_000 });
  say(`checker on ${name}: ${ops.length} operations, ${report.result}, ${(performance.now() - t).toFixed(1)} ms`);
}

// The same workload for every canary: in-process on memory, and worker processes on SQLite.
const canaryTargets = [
  ['memory', () => 'memory:', { processes: 4, clients: 4, ops: 40 }],
  ['sqlite', (c, seed) => `sqlite:${join(dir, `${c}-${seed}.db`)}`, { processes: 3, clients: 4, ops: 40 }],
];
for (const canary of canaries) {
  for (const [name, url, size] of canaryTargets) {
    let caught = 0;
    const caughtBy = { store: 0, api: 0 };
    const times = [];
    for (let seed = 1; seed <= runs; seed++) {
      const t = performance.now();
      const s = await runCheck({ url: url(canary, seed), canary, ...size, seed });
      times.push(performance.now() - t);
      if (s.verdict === 'not linearizable') caught++;
      if (!s.chain.ok || s.linearizability.result === 'illegal') caughtBy.store++;
      if (!s.increments.ok || s.api.result === 'illegal') caughtBy.api++;
      process.stderr.write(`\r${canary} on ${name}: ${caught}/${seed} flagged`);
    }
    process.stderr.write('\n');
    say(`canary ${canary.padEnd(13)} on ${name.padEnd(6)} (${size.processes}×${size.clients} clients × ${size.ops} ops): flagged in ${caught} of ${runs} runs ` +
      `(store level ${caughtBy.store}, API level ${caughtBy.api}); per run median ${seconds(median(times))}, max ${seconds(Math.max(...times))}, total ${seconds(times.reduce((a, b) => a + b, 0))}`);
  }
}

const targets = [
  ['memory:', 'memory:'],
  ['sqlite', `sqlite:${join(dir, 'real.db')}`],
  ['postgres', `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test?prefix=chk_${process.pid}_`],
  ['nats', `nats://127.0.0.1:4222?bucket=chk_${process.pid}`],
];
for (const [name, url] of backends ? targets : []) {
  for (const killRate of [0, 2]) {
    try {
      const s = await runCheck({ url, processes: 4, clients: 4, ops: 100, keys: 4, killRate, seed: 42 });
      say(`${name.padEnd(8)} kill-rate ${killRate}: ${s.verdict} (store ${s.linearizability.result}, API ${s.api.result}, counters ${s.increments.ok ? 'ok' : 'violated'}); ` +
        `${s.operations} ops (${s.apiOperations} API-level; ${s.ok} ok, ${s.fail} fail, ${s.unknown} unknown), ${s.killed} killed; ` +
        `run ${seconds(s.phases.runMs)}, chain ${s.phases.chainMs.toFixed(0)} ms, linearizability ${s.phases.linearizabilityMs.toFixed(0)} ms, API level ${s.phases.apiMs.toFixed(0)} ms`);
    } catch (err) {
      say(`${name.padEnd(8)} kill-rate ${killRate}: not run: ${err.message}`);
    }
  }
}
rmSync(dir, { recursive: true, force: true });
writeFileSync(join(output().dir, 'check-figures.txt'), `${out.join('\n')}\n`);
