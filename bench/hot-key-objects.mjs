// One process, memory: 64 writers looping update() on one key (a counter, an object, a counter whose
// mutation is async), with combining and without, and one writer alone. What combining costs when each
// caller's replaced value is checked and copied as a write would, and what memory's one-step path
// gives (BENCHMARKS.md, "2026-12-06"). Compare builds side by side with --dist.
//   npm run build && node bench/hot-key-objects.mjs [--dist path/to/other/dist] [--ms 2500]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const argv = process.argv.slice(2);
const arg = (name) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const dist = arg('dist') ? pathToFileURL(resolve(arg('dist'), 'index.js')).href : new URL('../dist/index.js', import.meta.url).href;
const { MemoryStore } = await import(dist);
const ms = Number(arg('ms') ?? 2500);

const shapes = {
  counter: { initial: 0, fn: (n) => n + 1 },
  object: { initial: { n: 0, name: 'counter', tags: ['a', 'b'] }, fn: (v) => ({ ...v, n: v.n + 1 }) },
  'async counter': { initial: 0, fn: async (n) => n + 1 },
};

async function rate(shape, writers, combine, duration) {
  const store = new MemoryStore();
  await store.put('k', shape.initial);
  let ops = 0;
  const end = Date.now() + duration;
  await Promise.all(Array.from({ length: writers }, async () => {
    while (Date.now() < end) {
      await store.update('k', shape.fn, { combine });
      ops++;
    }
  }));
  await store.close();
  return Math.round(ops / (duration / 1000));
}

console.log(dist);
await rate(shapes.counter, 64, true, 500);
for (const [name, shape] of Object.entries(shapes)) {
  const on = await rate(shape, 64, true, ms);
  const off = await rate(shape, 64, false, ms);
  console.log(`64 writers, one key, ${name}: combining on ${on.toLocaleString('en')} /s, off ${off.toLocaleString('en')} /s (${(on / off).toFixed(2)}×)`);
}
const lone = await rate(shapes.counter, 1, true, ms);
console.log(`1 writer, counter: ${lone.toLocaleString('en')} /s (${(1e6 / lone).toFixed(2)} µs per update())`);
