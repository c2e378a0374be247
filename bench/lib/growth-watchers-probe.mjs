// Loaded into the `revkit serve` process by bench/growth-watchers.mjs
// (node --expose-gc --import this-file dist/cli/main.js serve …), nothing else:
// on SIGUSR2 it collects garbage and writes process.memoryUsage() to the file
// named by REVKIT_GROWTH_PROBE, so that the server's live heap can be read
// before and after its watchers connect (revkit's /metrics gives heapUsed
// with garbage in it). The server's own code is untouched.
import { renameSync, writeFileSync } from 'node:fs';

const file = process.env.REVKIT_GROWTH_PROBE;
if (file) {
  process.on('SIGUSR2', () => {
    globalThis.gc?.();
    globalThis.gc?.();
    const m = process.memoryUsage();
    writeFileSync(`${file}.tmp`, JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, gc: typeof globalThis.gc === 'function' }));
    renameSync(`${file}.tmp`, file);
  });
}
