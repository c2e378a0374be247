// Issue 12 figures for the `file:` backend, side by side in one run:
//   - commits/s with fsync, 1 writer and 64 writers (update() on distinct keys), at 1k, 10k, 100k keys of ~100 bytes;
//   - group commit against one write per rewrite (groupCommit: false) at 64 writers;
//   - how a rewrite's cost grows with the file (ms per rewrite, with and without fsync);
//   - the same workload hand-rolled with write-file-atomic + proper-lockfile (lock, read, change, write, unlock),
//     with lost updates counted for both (acknowledged increments missing from the file).
//
//   npm run build && node bench/file-figures.mjs [--keys 1000,10000,100000] [--duration 3000] [--json PATH]
//   (default: file-figures.json in bench/out/, or in bench/results/ with REVKIT_BENCH_PUBLISH=1 — bench/lib/out.mjs)
//
// write-file-atomic and proper-lockfile are not dependencies of revkit: install them where this script
// can import them (npm install --no-save write-file-atomic proper-lockfile), or point
// REVKIT_BENCH_DEPS at a folder whose node_modules has them.
import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStore } from '../dist/file/index.js';
import { flagArgs } from './lib/figures.mjs';
import { fixed, int, ms, ratio, textTable } from './lib/format.mjs';
import { machineInfo } from './lib/machine.mjs';
import { output } from './lib/out.mjs';

const args = flagArgs();
const sizes = (args.keys ?? '1000,10000,100000').split(',').map(Number);
const durationMs = Number(args.duration ?? 3000);
const here = dirname(fileURLToPath(import.meta.url));
const jsonPath = args.json ?? join(output().dir, 'file-figures.json');
const PAD = 'x'.repeat(80);
const valueOf = (n) => ({ n, pad: PAD }); // ~100 bytes as JSON

function loadBaseline() {
  const from = [import.meta.url, process.env.REVKIT_BENCH_DEPS && join(process.env.REVKIT_BENCH_DEPS, 'package.json')].filter(Boolean);
  for (const base of from) {
    try {
      const require = createRequire(base);
      return { writeFileAtomic: require('write-file-atomic'), lockfile: require('proper-lockfile') };
    } catch {}
  }
  return null;
}

/**
 * `writers` loops, each on keys of its own, issuing for `durationMs`; calls in
 * flight then finish and count, so the rate is every commit over the whole
 * time (a slow cell's tail included). Returns the acknowledged increments per key.
 */
async function drive(writers, keyCount, increment) {
  const acks = new Map();
  let done = 0;
  const start = performance.now();
  const end = start + durationMs;
  const loop = async (w) => {
    for (let i = 0; performance.now() < end; i++) {
      const key = `k/${(w + writers * i) % keyCount}`;
      await increment(key);
      acks.set(key, (acks.get(key) ?? 0) + 1);
      done++;
    }
  };
  await Promise.all(Array.from({ length: writers }, (_, w) => loop(w)));
  return { perSecond: done / ((performance.now() - start) / 1000), seconds: (performance.now() - start) / 1000, acks };
}

/** Acknowledged increments missing from the stored counters. */
function lost(acks, read) {
  let missing = 0;
  for (const [key, n] of acks) missing += Math.max(0, n - read(key));
  return missing;
}

async function revkitCell(path, keyCount, writers, options) {
  const store = new FileStore(path, options);
  const stored = new Map();
  try {
    const { perSecond, seconds, acks } = await drive(writers, keyCount, async (key) => {
      // Writers on distinct keys never conflict; the deadline only has to outlast the queue of a slow cell.
      await store.update(key, (v) => valueOf((v?.n ?? 0) + 1), { combine: false, deadlineMs: 600_000 });
    });
    const rewrites = store.rewrites;
    const check = new FileStore(path);
    for (const key of acks.keys()) stored.set(key, (await check.get(key))?.value.n ?? 0);
    await check.close();
    return { perSecond, seconds, rewrites, acks, stored };
  } finally {
    await store.close();
  }
}

async function baselineCell(path, keyCount, writers, { writeFileAtomic, lockfile }) {
  // proper-lockfile's default reaction to a lock it could not refresh within `stale` (10 s) is to
  // throw from a timer, killing the process; count those instead. Meanwhile another waiter may
  // take the lock over as stale: that is how this approach loses updates.
  let compromised = 0;
  const { perSecond, acks } = await drive(writers, keyCount, async (key) => {
    const release = await lockfile.lock(path, {
      retries: { retries: 100_000, factor: 1.2, minTimeout: 1, maxTimeout: 50 },
      onCompromised: () => void compromised++,
    });
    try {
      const doc = JSON.parse(await readFile(path, 'utf8'));
      doc[key] = valueOf((doc[key]?.n ?? 0) + 1);
      await writeFileAtomic(path, JSON.stringify(doc));
    } finally {
      await release().catch(() => undefined);
    }
  });
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  return { perSecond, acks, compromised, stored: new Map([...acks.keys()].map((k) => [k, doc[k]?.n ?? 0])) };
}

async function main() {
  const baseline = loadBaseline();
  if (!baseline) console.warn('write-file-atomic / proper-lockfile not found: the hand-rolled comparison is skipped (see the header of this file)');
  const dir = mkdtempSync(join(tmpdir(), 'revkit-file-bench-'));
  const results = { machine: machineInfo(), durationMs, sizes: [] };
  try {
    for (const keys of sizes) {
      const path = join(dir, `revkit-${keys}.json`);
      const seed = new FileStore(path, { fsync: false });
      for (let from = 0; from < keys; from += 10_000) {
        const batch = seed.atomic();
        for (let i = from; i < Math.min(keys, from + 10_000); i++) batch.set(`k/${i}`, valueOf(0));
        await batch.commit();
      }
      await seed.close();
      const fileBytes = statSync(path).size;
      const row = { keys, fileBytes, revkit: {}, baseline: null };
      const cells = [
        ['oneWriter', 1, {}],
        ['oneWriterNoFsync', 1, { fsync: false }],
        ['grouped64', 64, {}],
        ['ungrouped64', 64, { groupCommit: false }],
      ];
      for (const [name, writers, options] of cells) {
        const r = await revkitCell(path, keys, writers, options);
        // The file grows past its keys as the change log fills (up to changeLogSize past versions).
        row.revkit[name] = { commitsPerSecond: r.perSecond, rewrites: r.rewrites, commitsPerRewrite: (r.perSecond * r.seconds) / r.rewrites, msPerRewrite: (r.seconds * 1000) / r.rewrites, fileBytesAfter: statSync(path).size, lost: 0 };
        row.revkit[name].lost = lost(r.acks, (k) => r.stored.get(k) - (row.seen?.get(k) ?? 0));
        // Counters keep rising from cell to cell: remember where each key stood.
        row.seen = new Map([...(row.seen ?? []), ...r.stored]);
        process.stderr.write(`  ${keys} keys, ${name}: ${int(r.perSecond)} commits/s, ${r.rewrites} rewrites\n`);
      }
      delete row.seen;
      if (baseline) {
        const bpath = join(dir, `baseline-${keys}.json`);
        writeFileSync(bpath, JSON.stringify(Object.fromEntries(Array.from({ length: keys }, (_, i) => [`k/${i}`, valueOf(0)]))));
        row.baseline = {};
        for (const [name, writers] of [['oneWriter', 1], ['writers64', 64]]) {
          const r = await baselineCell(bpath, keys, writers, baseline);
          row.baseline[name] = { commitsPerSecond: r.perSecond, lost: lost(r.acks, (k) => r.stored.get(k)), locksCompromised: r.compromised };
          process.stderr.write(`  ${keys} keys, write-file-atomic + proper-lockfile, ${name}: ${int(r.perSecond)} commits/s\n`);
        }
      }
      results.sizes.push(row);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  print(results);
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nwrote ${jsonPath}`);
}

function print(results) {
  const rows = results.sizes.map((s) => {
    const r = s.revkit;
    const b = s.baseline;
    return [
      int(s.keys), `${fixed(s.fileBytes / 1e6, 2)}–${fixed(Math.max(...Object.values(s.revkit).map((c) => c.fileBytesAfter)) / 1e6, 2)} MB`,
      int(r.oneWriter.commitsPerSecond), ms(r.oneWriter.msPerRewrite), ms(r.oneWriterNoFsync.msPerRewrite),
      int(r.grouped64.commitsPerSecond), fixed(r.grouped64.commitsPerRewrite, 1),
      int(r.ungrouped64.commitsPerSecond), ratio(r.grouped64.commitsPerSecond / r.ungrouped64.commitsPerSecond),
      b ? int(b.oneWriter.commitsPerSecond) : '–', b ? int(b.writers64.commitsPerSecond) : '–',
      b ? ratio(r.grouped64.commitsPerSecond / b.writers64.commitsPerSecond) : '–',
      `${Object.values(r).reduce((n, c) => n + c.lost, 0)} / ${b ? b.oneWriter.lost + b.writers64.lost : '–'}`,
      b ? b.oneWriter.locksCompromised + b.writers64.locksCompromised : '–',
    ];
  });
  console.log(`\nfile: backend, update() commits/s with fsync, ${results.durationMs} ms per cell (${results.machine.cores} cores, load ${results.machine.loadAverageAtStart.join(' ')})\n`);
  console.log(textTable(
    ['keys', 'file (keys only – with change log)', '1 writer/s', 'ms/rewrite', 'ms/rewrite no fsync', '64 grouped/s', 'commits/rewrite', '64 ungrouped/s', 'group gain', 'wfa+pl 1/s', 'wfa+pl 64/s', 'revkit 64 ÷ wfa+pl 64', 'lost revkit / wfa+pl', 'wfa+pl locks compromised'],
    rows,
  ));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
