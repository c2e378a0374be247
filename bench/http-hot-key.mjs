// Concurrent update()s of one key through `revkit serve` (memory) with HttpStore: does the client
// combine them (BENCHMARKS.md, "2026-12-06")? Side by side with another build: --dist.
//   npm run build && node bench/http-hot-key.mjs [--writers 16] [--ms 3000] [--dist path/to/other/dist]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const argv = process.argv.slice(2);
const arg = (name) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const base = arg('dist') ? pathToFileURL(resolve(arg('dist'))).href : new URL('../dist', import.meta.url).href;
const { createServer, HttpStore } = await import(`${base}/server/index.js`);
const writers = Number(arg('writers') ?? 16);
const ms = Number(arg('ms') ?? 3000);
const TOKEN = 'bench-admin-token-0123456789';

const server = await createServer({ adminToken: TOKEN, store: 'memory:' });
const url = await server.listen({ host: '127.0.0.1', port: 0 });
const store = await HttpStore.fromUrl(`${url}?token=${TOKEN}`);
await store.put('k', 0);
let acked = 0;
let failed = 0;
const end = Date.now() + ms;
await Promise.all(Array.from({ length: writers }, async () => {
  while (Date.now() < end) {
    try {
      await store.update('k', (v) => v + 1);
      acked++;
    } catch {
      failed++;
    }
  }
}));
const final = (await store.get('k')).value;
console.log(`${base}\n${writers} writers, one key, HttpStore → revkit serve (memory): ${Math.round(acked / (ms / 1000)).toLocaleString('en')} update()s/s, ${failed} failed, stored ${final} for ${acked} acknowledged`);
await store.close();
await server.close();
