// Issue 26: where the time of each target's workload goes — CPU profiles (node --cpu-prof)
// drawn as flame graphs (bench/lib/flame.mjs), with the top self-time functions:
//   sqlite-full-64-update     64 update() writers on distinct keys, SQLite FULL (target: ≥ 8× one raw writer)
//   sqlite-full-1-update      one update() writer, SQLite FULL (target: ≤ 1.2× the raw loop)
//   memory-1-update           one update() writer, memory (target: ≤ 3× the raw loop)
//   exactly-once-sqlite-full  exactly-once processing, SQLite FULL (target: ≥ 0.8× at-least-once)
//   serve-memory              the `revkit serve --store memory:` process under 64 connections of
//                             conditional PUTs (target: ≥ 0.8× a bare fastify route)
//   postgres-1-update / -raw  one update() writer against the raw pg CAS loop (target: ≤ 1.2×); the client's CPU
//   redis-1-update / -raw     the same on Redis (ioredis)
// Usage: npm run build && node bench/profile-figures.mjs [--seconds 3] [--only name,name] [--publish | --out DIR]
// Writes profile-<name>.svg and profile-figures.json to the output folder (bench/out/ unless told).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flagArgs } from './lib/figures.mjs';
import { output } from './lib/out.mjs';
import { flameGraph } from './lib/flame.mjs';
import { topSelfTime } from './lib/cpu-profile.mjs';
import { conditionalPut, runLoad, spawnServer } from './lib/http-client.mjs';

const args = flagArgs();
const out = output({ publish: process.argv.includes('--publish'), out: args.out });
const seconds = Number(args.seconds ?? 3);
const NAMES = [
  'sqlite-full-64-update', 'sqlite-full-1-update', 'memory-1-update', 'exactly-once-sqlite-full', 'serve-memory',
  'postgres-1-update', 'postgres-1-raw', 'redis-1-update', 'redis-1-raw',
];
const only = args.only ? String(args.only).split(',') : NAMES;
const workload = fileURLToPath(new URL('./lib/profile-workload.mjs', import.meta.url));
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const TOKEN = 'bench-admin-token-0123456789';

async function profileServe(profDir) {
  const server = await spawnServer(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profDir, cli, 'serve', '--store', 'memory:', '--port', '0', '--admin-token', TOKEN], /at (http:\/\/\S+)/);
  try {
    const load = conditionalPut({ prefix: 'profile', token: TOKEN, connections: 64 });
    const r = await runLoad({ origin: server.match, serverPid: server.child.pid, seconds, ...load });
    return { ops: r.acked, ms: r.elapsedMs, cpuUsPerOp: r.serverCpuUs };
  } finally {
    await server.stop();
  }
}

const results = {};
for (const name of only) {
  const profDir = mkdtempSync(join(tmpdir(), 'revkit-prof-'));
  try {
    let figures;
    if (name === 'serve-memory') figures = await profileServe(profDir);
    else {
      const run = spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profDir, workload, name, String(seconds)], { encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`${name}: ${run.stderr}`);
      figures = JSON.parse(run.stdout.trim().split('\n').at(-1));
    }
    const file = join(profDir, readdirSync(profDir).find((f) => f.endsWith('.cpuprofile')));
    const perSec = figures.ops / (figures.ms / 1000);
    const title = `${name}: ${Math.round(perSec).toLocaleString('en')} ops/s, ${figures.cpuUsPerOp.toFixed(0)} µs CPU per op (node ${process.version})`;
    writeFileSync(join(out.dir, `profile-${name}.svg`), flameGraph(file, title));
    results[name] = { perSec, cpuUsPerOp: figures.cpuUsPerOp, top: topSelfTime(file, 12) };
    console.log(`${title}\n  top self time: ${results[name].top.slice(0, 6).map((t) => `${t.name} ${(t.share * 100).toFixed(1)}%`).join(', ')}`);
  } finally {
    rmSync(profDir, { recursive: true, force: true });
  }
}
// A run of some workloads (--only) keeps the figures of the others from the file's earlier runs.
const file = join(out.dir, 'profile-figures.json');
const earlier = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : { results: {} };
const at = new Date().toISOString();
const merged = { ...earlier, at, node: process.version, seconds, results: { ...earlier.results, ...results }, runs: { ...(earlier.runs ?? {}), [at]: Object.keys(results) } };
writeFileSync(file, `${JSON.stringify(merged, null, 2)}\n`);
console.log(`flame graphs: ${out.dir}/profile-*.svg`);
