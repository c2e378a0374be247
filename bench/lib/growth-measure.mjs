// What the growth benchmarks measure with: callers for a while, percentiles, log-log slopes,
// disk sizes, the machine's load. Plain helpers, no store internals.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import Database from 'better-sqlite3';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function median(xs) {
  const s = xs.filter((x) => x !== null && x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** p50 / p99 / max / n of latencies (ms). */
export function latencySummary(latencies) {
  const s = Float64Array.from(latencies).sort();
  return { n: s.length, p50Ms: percentile(s, 50), p99Ms: percentile(s, 99), maxMs: s.length ? s[s.length - 1] : null };
}

/**
 * `callers` loops calling `op(i)` until `durationMs` has passed and at least `minOps` calls were
 * started (slow stores: a few whole operations rather than none); calls in flight then finish and
 * count, so the rate is every completed call over the whole elapsed time. Errors are counted, never
 * hidden.
 */
export async function runCallers({ callers, durationMs, minOps = 1, maxMs = Infinity, op }) {
  const latencies = [];
  const errors = {};
  let started = 0;
  const t0 = performance.now();
  const end = t0 + durationMs;
  const hardEnd = t0 + maxMs;
  const loop = async () => {
    for (;;) {
      const now = performance.now();
      if ((now >= end && started >= minOps) || now >= hardEnd) return;
      const i = started++;
      const t = performance.now();
      try {
        await op(i);
        latencies.push(performance.now() - t);
      } catch (err) {
        const code = err?.code ?? err?.name ?? 'Error';
        errors[code] = (errors[code] ?? 0) + 1;
        if (Object.keys(errors).length === 1 && errors[code] === 1) console.error(`  error: ${err?.message ?? err}`);
      }
    }
  };
  await Promise.all(Array.from({ length: callers }, loop));
  const elapsedMs = performance.now() - t0;
  return { callers, ops: latencies.length, opsPerSec: latencies.length / (elapsedMs / 1000), elapsedMs, latencies, errors };
}

/** Runs `fn` `times` times one after the other; answers the durations (ms). */
export async function timeEach(times, fn) {
  const out = [];
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

/**
 * The longest the event loop was held while something ran: a 2 ms interval timer records the
 * largest gap between its ticks (perf_hooks' monitorEventLoopDelay was tried first: it records
 * nothing for a block that starts before its first sample, which is where a write's block falls).
 */
export function loopGapMonitor() {
  let last = performance.now();
  let max = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - last);
    last = now;
  }, 2);
  return {
    /** Ends the monitor (after one more turn, so a block that just ended is counted); answers the longest gap (ms). */
    async stop() {
      await sleep(10);
      clearInterval(timer);
      return Math.max(max, performance.now() - last);
    },
  };
}

/** How long the event loop was held at most while `fn` ran (ms), with its duration. */
export async function withLoopBlock(fn) {
  const monitor = loopGapMonitor();
  await sleep(10); // the monitor ticks before fn starts
  const t = performance.now();
  const result = await fn();
  const ms = performance.now() - t;
  return { result, ms, loopBlockedMaxMs: await monitor.stop() };
}

/**
 * The exponent b of metric ∝ size^b between consecutive sizes (log-log slope): ~0 flat,
 * ~0.05–0.15 per decade is logarithmic-looking at these sizes, ~1 linear in the store's size.
 */
export function slopes(points) {
  const ps = points.filter(([x, y]) => x > 0 && y !== null && y !== undefined && y > 0).sort((a, b) => a[0] - b[0]);
  const out = [];
  for (let i = 1; i < ps.length; i++) {
    const [x0, y0] = ps[i - 1];
    const [x1, y1] = ps[i];
    out.push({ from: x0, to: x1, ratio: y1 / y0, exponent: Math.log(y1 / y0) / Math.log(x1 / x0) });
  }
  return out;
}

/** Bytes of an SQLite store on disk: the database after a checkpoint that empties the WAL, plus the WAL left. */
export function sqliteBytes(path) {
  const db = new Database(path);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    const pages = db.pragma('page_count', { simple: true });
    const free = db.pragma('freelist_count', { simple: true });
    const pageSize = db.pragma('page_size', { simple: true });
    const size = (p) => (existsSync(p) ? statSync(p).size : 0);
    return { file: size(path), wal: size(`${path}-wal`), total: size(path) + size(`${path}-wal`), freePages: free, pages, pageSize };
  } finally {
    db.close();
  }
}

/** The load average now (1, 5, 15 min). */
export const load = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

export const round = (x, d = 3) => (x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 10 ** d) / 10 ** d);

/**
 * `--charts-from FILE`: a growth bench's results read back from an earlier run, with `builtFrom` when given,
 * `fixUp` applied, written to `resultsFile` again — for drawing the charts and tables anew after a change to them.
 */
export function reloadResults(results, { from, resultsFile, builtFrom, fixUp = () => undefined }) {
  const earlier = JSON.parse(readFileSync(from, 'utf8'));
  for (const k of Object.keys(results)) delete results[k];
  Object.assign(results, earlier, builtFrom ? { builtFrom } : {});
  fixUp(results);
  writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
}
