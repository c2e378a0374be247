#!/usr/bin/env node
// Issue 6 figures: the canary catch rate over many `revkit check` runs, the
// checker's time on the largest reference history, and `revkit check` on each
// backend available here. Run: npm run build && node bench/check-figures.mjs [--runs 100]
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCheck } from '../dist/testing/check/run.js';
import { checkOperations, parseKvEdn, stringKvModel, parseJepsenEtcdLog, casRegisterModel } from '../dist/testing/index.js';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 100);
const dir = mkdtempSync(join(tmpdir(), 'revkit-check-figures-'));
const histories = new URL('../test/fixtures/histories/', import.meta.url);

const results = {};
for (const [name, parse, model] of [['porcupine-kv/c50-bad.txt', parseKvEdn, stringKvModel], ['porcupine-kv/c50-ok.txt', parseKvEdn, stringKvModel], ['jepsen-etcd/etcd_002.log', parseJepsenEtcdLog, casRegisterModel]]) {
  const ops = parse(readFileSync(new URL(name, histories), 'utf8'));
  const t = performance.now();
  const report = checkOperations(model, ops, { timeoutMs: 10_000 });
  results[name] = { operations: ops.length, result: report.result, ms: +(performance.now() - t).toFixed(1) };
}
console.log('checker on reference histories:', results);

let caught = 0;
for (let seed = 1; seed <= runs; seed++) {
  const url = `canary:sqlite:${join(dir, `canary-${seed}.db`)}`;
  const s = await runCheck({ url, processes: 3, clients: 4, ops: 40, seed });
  if (s.verdict === 'not linearizable') caught++;
  process.stdout.write(`\rcanary: ${caught}/${seed} flagged`);
}
console.log(`\ncanary (SQLite underneath, 3 processes × 4 clients × 40 ops): flagged in ${caught} of ${runs} runs`);

const targets = [
  ['memory:', 'memory:'],
  ['sqlite', `sqlite:${join(dir, 'real.db')}`],
  ['postgres', `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test?prefix=chk_${process.pid}_`],
  ['nats', `nats://127.0.0.1:4222?bucket=chk_${process.pid}`],
];
for (const [name, url] of targets) {
  for (const killRate of [0, 2]) {
    try {
      const s = await runCheck({ url, processes: 4, clients: 4, ops: 100, keys: 4, killRate, seed: 42 });
      console.log(`${name.padEnd(8)} kill-rate ${killRate}: ${s.verdict}; ${s.operations} ops (${s.ok} ok, ${s.fail} fail, ${s.unknown} unknown), ${s.killed} killed; run ${(s.phases.runMs / 1000).toFixed(2)} s, chain ${s.phases.chainMs.toFixed(0)} ms, linearizability ${s.phases.linearizabilityMs.toFixed(0)} ms`);
    } catch (err) {
      console.log(`${name.padEnd(8)} kill-rate ${killRate}: not run: ${err.message}`);
    }
  }
}
rmSync(dir, { recursive: true, force: true });
