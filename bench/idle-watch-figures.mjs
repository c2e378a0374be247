// Issue 11 #7: what an idle SQLite watch costs. CPU time of this process
// (process.cpuUsage, user + system) over the same wall time with a store and
// no watch, then with one idle watch, side by side; prints % of one core.
// Usage: npm run build && node bench/idle-watch-figures.mjs [--seconds 60] [--json out.json]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../dist/sqlite/index.js';
import { flagArgs } from './lib/figures.mjs';

const args = flagArgs();
const SECONDS = Number(args.seconds ?? 60);
const dir = mkdtempSync(join(tmpdir(), 'revkit-idle-'));

async function percentOfCore(watches) {
  const store = new SqliteStore(join(dir, `idle-${watches}.db`));
  await store.put('seed', 0);
  const controller = new AbortController();
  const watching = Array.from({ length: watches }, () => (async () => {
    for await (const _ of store.watch({ prefix: 'idle/', signal: controller.signal })) throw new Error('an idle watch got an event');
  })());
  await new Promise((r) => setTimeout(r, 500));
  const before = process.cpuUsage();
  const t = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const used = process.cpuUsage(before);
  const wallUs = (performance.now() - t) * 1000;
  controller.abort();
  await Promise.all(watching);
  await store.close();
  return (100 * (used.user + used.system)) / wallUs;
}

try {
  const none = await percentOfCore(0);
  const one = await percentOfCore(1);
  const result = { seconds: SECONDS, cpuPercentNoWatch: Number(none.toFixed(3)), cpuPercentOneIdleWatch: Number(one.toFixed(3)), watchCostPercent: Number((one - none).toFixed(3)) };
  console.log(`sqlite, ${SECONDS} s each, CPU of this process in % of one core:`);
  console.log(`  store open, no watch:  ${result.cpuPercentNoWatch}%`);
  console.log(`  one idle watch:        ${result.cpuPercentOneIdleWatch}%`);
  console.log(`  the watch costs:       ${result.watchCostPercent}% of a core`);
  if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 2));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
