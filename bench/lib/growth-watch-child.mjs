// One watch catch-up, in a process of its own (bench/growth-history.mjs runs it): a watch that reads
// its whole backlog before it yields, or holds it all in memory, must neither freeze nor exhaust the
// benchmark itself — and its memory and event-loop figures are its own. The store is opened first;
// the clock starts at watch(). Every event is checked: the i-th must carry revision a·i + b.
//
// Usage (JSON argument): node growth-watch-child.mjs '{"url":…,"options":{…},"count":N,"a":1,"b":1,"capMs":20000}'
// Prints {"ready":true} once the store is open, one JSON line when the first event arrives ({"first":ms}) and one with the result at the end.
// The parent kills it when it overruns its cap (a watch that blocks the event loop cannot stop itself).
import { open } from '../../dist/open.js';
import { loopGapMonitor, sleep } from './growth-measure.mjs';

const { url, options, count, a, b, capMs } = JSON.parse(process.argv[2]);
const store = await open(url);
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
const monitor = loopGapMonitor();
await sleep(10); // the monitor ticks before the watch starts
const ac = new AbortController();
const t0 = performance.now();
let first = null;
let events = 0;
let error = null;
const timer = setTimeout(() => ac.abort(), capMs);
try {
  for await (const ev of store.watch({ ...options, signal: ac.signal })) {
    if (first === null) {
      first = performance.now() - t0;
      process.stdout.write(`${JSON.stringify({ first, rssBytes: process.memoryUsage().rss })}\n`);
    }
    const want = a * events + b;
    if (ev.revision !== want) throw new Error(`event ${events} has revision ${ev.revision}, expected ${want}`);
    events++;
    if (events >= count) break;
    // Let timers run now and then (the cap, the loop monitor) while a backlog is drained.
    if (events % 1000 === 0) await new Promise((r) => setImmediate(r));
  }
} catch (err) {
  if (!ac.signal.aborted) error = err.message;
}
const ms = performance.now() - t0;
clearTimeout(timer);
ac.abort();
const loopBlockedMaxMs = await monitor.stop();
process.stdout.write(`${JSON.stringify({ done: true, first, events, ms, complete: events >= count, error, loopBlockedMaxMs, rssBytes: process.memoryUsage().rss })}\n`);
await store.close();
process.exit(0);
