#!/usr/bin/env node
// Issue 10's high-availability run at soak size: 3 `revkit serve` over one
// PostgreSQL (127.0.0.1:5432/test, a schema of its own), 64 clients (32
// update() through a fail-over store, 32 plain If-Match loops), replicas 0
// and 1 SIGKILLed and restarted in turn while the load runs, a watch on
// replica 2. CI runs it smaller (test/faults/ha.test.ts).
//   node bench/soak/ha.mjs [--seconds 60] [--kills 5] [--down-ms 2000]
// Prints the figures and exits 1 when a verdict fails.
import { CI_SIZE, runHa, violations } from '../../test/fixtures/ha/run.mjs';
import { flagArgs } from '../lib/figures.mjs';

// Interrupted: exit normally, so the harness's exit hook kills our servers and clients.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

const flags = flagArgs();
const seconds = Number(flags.seconds ?? 60);
const killCount = Number(flags.kills ?? 5);
const downMs = Number(flags['down-ms'] ?? 2_000);
const loadMs = seconds * 1000;
// Kills spread over the run, leaving its last sixth calm.
const kills = Array.from({ length: killCount }, (_, i) => ({ atMs: Math.round(((i + 1) * loadMs * 5) / 6 / (killCount + 1)), replica: i % 2, downMs }));
const began = Date.now();
const f = await runHa({ ...CI_SIZE, loadMs, kills, afterLastRestartMs: 5_000 }, (line) => console.log(`[ha +${((Date.now() - began) / 1000).toFixed(1)} s] ${line}`));

const u = f.update;
const p = f.plain;
const w = f.watch;
const rows = [
  ['kills (replica @ ms → back @ ms)', f.kills.map((k) => `${k.replica}@${k.atMs}→${k.backAtMs}`).join(' ')],
  ['update(): acknowledged', u.acked],
  ['update(): stored', u.stored],
  ['update(): writes cut by a kill (resolved by writer token)', u.cutWrites],
  ['update(): applied twice', u.appliedTwice],
  ['update(): revisions sharing a writer token', f.duplicateWriterTokens.length],
  ['update(): lost', u.lost],
  ['update(): outcome unknown / failed', `${u.unknownOutcome} / ${u.failed}`],
  ['update(): gave up within their deadline (nothing committed)', u.exhausted],
  ['update(): handed a value not their own', u.wrongValues.length],
  ['update(): replica switches', u.replicaSwitches],
  ['plain: acknowledged', p.acked],
  ['plain: stored', p.stored],
  ['plain: PUTs cut by a kill', p.cut],
  ['plain: PUTs answered 5xx', p.answered5xx],
  ['plain: 412 retries', p.conflicts],
  ['plain: keys outside acknowledged ≤ stored ≤ acknowledged + cut', p.keysOutOfBounds.length],
  ['plain: replica switches', p.replicaSwitches],
  [`watch on replica ${f.watchedReplica}: events / commits`, `${w.events} / ${w.committed}`],
  ['watch: gaps / extra / out of order / value breaks', `${w.gaps} / ${w.extra} / ${w.outOfOrder} / ${w.valueBreaks}`],
];
const width = Math.max(...rows.map(([k]) => k.length));
console.log(`\nHA soak: ${seconds} s of load, ${killCount} kills of ${downMs} ms`);
for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
const broken = violations(f);
for (const line of broken) console.log(`VIOLATION: ${line}`);
if (f.watchedReplicaLog) console.log(`watched replica's stderr:\n${f.watchedReplicaLog}`);
console.log(broken.length === 0 ? 'verdict: every verdict holds' : `verdict: ${broken.length} violations`);
process.exit(broken.length === 0 ? 0 : 1);
