// 64 concurrent update()s of one key holding an object, one process, memory: what combining costs when
// each caller's replaced value is checked and copied as a write would (BENCHMARKS.md, "2026-12-06").
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

async function rate(store, combine, duration) {
  let ops = 0;
  const end = Date.now() + duration;
  while (Date.now() < end) {
    await Promise.all(Array.from({ length: 64 }, () => store.update('k', (v) => ({ ...v, n: v.n + 1 }), { combine })));
    ops += 64;
  }
  return Math.round(ops / (duration / 1000));
}

const store = new MemoryStore();
await store.put('k', { n: 0, name: 'counter', tags: ['a', 'b'] });
await rate(store, true, 500);
const on = await rate(store, true, ms);
const off = await rate(store, false, ms);
console.log(`${dist}\n64 writers, one key holding an object, memory: combining on ${on.toLocaleString('en')} /s, off ${off.toLocaleString('en')} /s (${(on / off).toFixed(2)}×)`);
await store.close();
