#!/usr/bin/env node
// Web console figures (issue 16): the size of what /ui sends, and the time
// from navigation to the first rendered key list, on a 100,000-key SQLite
// store (flat, and nested as 100 folders of 1,000 keys) beside a 10-key store
// in the same run, in headless Chromium. Needs `npm run build` first.
//   node bench/console-figures.mjs [--runs 7]
// Writes console-figures.json in bench/out/ (bench/results/ with REVKIT_BENCH_PUBLISH=1; bench/lib/out.mjs).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { open } from '../dist/index.js';
import { output } from './lib/out.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 7) || 7;
const TOKEN = 'console-bench-admin-token-0123';
const dir = mkdtempSync(join(tmpdir(), 'revkit-console-bench-'));

// ---- bundle size: what a first visit downloads (gzip as the server sends it)
const files = ['index.html', 'console.js', 'console.css'];
const size = Object.fromEntries(files.map((f) => {
  const body = readFileSync(join(root, 'dist/ui', f));
  return [f, { bytes: body.length, gzipBytes: gzipSync(body, { level: 9 }).length }];
}));
const total = { bytes: 0, gzipBytes: 0 };
for (const s of Object.values(size)) { total.bytes += s.bytes; total.gzipBytes += s.gzipBytes; }

// ---- stores, seeded through the library straight into the SQLite file
const layouts = {
  'small (10 keys)': (i) => (i < 10 ? `key-${i}` : null),
  'flat (100,000 keys)': (i) => (i < 100_000 ? `key-${String(i).padStart(6, '0')}` : null),
  'nested (100 folders × 1,000 keys)': (i) => (i < 100_000 ? `svc-${String(Math.floor(i / 1000)).padStart(2, '0')}/key-${String(i % 1000).padStart(4, '0')}` : null),
};

async function seed(file, keyOf) {
  const store = await open(`sqlite:${file}`);
  let n = 0;
  for (let i = 0; ; i += 1000) {
    const batch = store.atomic();
    let any = false;
    for (let j = i; j < i + 1000; j++) {
      const key = keyOf(j);
      if (key === null) break;
      batch.set(key, { n: j, owner: 'bench', tags: ['a', 'b'] });
      any = true;
      n++;
    }
    if (!any) break;
    await batch.commit();
  }
  await store.close();
  return n;
}

function serve(file) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'dist/cli/main.js'), 'serve', '--store', `sqlite:${file}`, '--port', '0', '--admin-token', TOKEN], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const url = /at (http:\/\/\S+)/.exec(out)?.[1];
      if (url && out.includes('try: curl')) resolve({ child, url });
    });
    child.on('exit', (code) => reject(new Error(`revkit serve exited with ${code}`)));
  });
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

const browser = await chromium.launch({ executablePath: process.env.REVKIT_CHROMIUM ?? '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
const stores = [];
for (const [name, keyOf] of Object.entries(layouts)) {
  const file = join(dir, `${stores.length}.db`);
  const t0 = performance.now();
  const keys = await seed(file, keyOf);
  stores.push({ name, file, keys, seedMs: Math.round(performance.now() - t0) });
}
// Interleaved: run r of every store, then run r + 1, so load drift hits all alike.
const servers = await Promise.all(stores.map((s) => serve(s.file)));
const times = stores.map(() => []);
const complete = stores.map(() => []);
const requests = stores.map(() => []);
for (let r = 0; r < runs; r++) {
  for (let i = 0; i < stores.length; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    await context.addInitScript((token) => sessionStorage.setItem('revkit.console.token', token), TOKEN);
    const page = await context.newPage();
    let listCalls = 0;
    page.on('request', (req) => { if (/\/v1\/kv\?/.test(req.url())) listCalls++; });
    await page.goto(`${servers[i].url}/ui/`, { waitUntil: 'commit' });
    // Milliseconds since navigation start, read in the page: the first rows shown, then the whole page of 50.
    await page.locator('[data-testid="key-list"] li button').first().waitFor({ timeout: 60_000 });
    times[i].push(await page.evaluate(() => performance.now()));
    await page.locator('[data-testid="key-list"][aria-busy="false"] li button').first().waitFor({ timeout: 60_000 });
    complete[i].push(await page.evaluate(() => performance.now()));
    requests[i].push(listCalls);
    await context.close();
  }
}
await browser.close();
for (const s of servers) s.child.kill('SIGTERM');

const base = median(times[0]);
const firstRender = stores.map((s, i) => ({
  store: s.name, keys: s.keys, runs, medianMs: Math.round(median(times[i])), minMs: Math.round(Math.min(...times[i])), maxMs: Math.round(Math.max(...times[i])),
  fullPageMedianMs: Math.round(median(complete[i])), listRequests: median(requests[i]),
  ratioToSmall: Number((median(times[i]) / base).toFixed(2)), fullPageRatioToSmall: Number((median(complete[i]) / median(complete[0])).toFixed(2)),
}));
const report = { when: new Date().toISOString(), bundle: { files: size, total }, firstRender, note: 'first render: navigation start to the first rows of the key list shown (medianMs), and to the whole first page of 50 rows (fullPageMedianMs), token already in session storage; medians of interleaved runs; absolute times are from a loaded 2-core machine' };
writeFileSync(join(output().dir, 'console-figures.json'), `${JSON.stringify(report, null, 2)}\n`);
console.log(`console bundle: ${total.bytes} bytes, ${total.gzipBytes} gzipped (${files.map((f) => `${f} ${size[f].bytes}/${size[f].gzipBytes}`).join(', ')})`);
for (const f of firstRender) {
  console.log(`first render, ${f.store}: first rows ${f.medianMs} ms (median of ${f.runs}; min ${f.minMs}, max ${f.maxMs}), ${f.ratioToSmall}× the 10-key store; full page of 50 ${f.fullPageMedianMs} ms (${f.fullPageRatioToSmall}×, ${f.listRequests} list requests)`);
}
