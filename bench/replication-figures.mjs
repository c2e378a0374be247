#!/usr/bin/env node
// Issue 25: what replication costs. For each engine, a private replicated
// setup (bench/lib/replication-setups.mjs, `durable` variants: PostgreSQL with
// a synchronous standby, Redis with Sentinel and wait=1, revkit serve ×3 behind
// HttpStore's server list; NATS R3 where the server allows it) against one
// private server of the same build and settings, side by side, alternating
// round by round: update() increments on distinct keys by 1 and by 16
// concurrent writers in this process, writes/s, ratio replicated ÷ single
// (median of the per-round ratios). Nothing is asserted; every cell checks its
// counters (stored = acknowledged).
//   npm run build && node bench/replication-figures.mjs [--ms 3000] [--rounds 3] [--engines postgres,redis,nats,http]
import { open } from '../dist/open.js';
import { flagArgs, median } from './lib/figures.mjs';
import { SETUPS } from './lib/replication-setups.mjs';

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => process.exit(130));
const flags = flagArgs();
const MS = Number(flags.ms ?? 3000);
const ROUNDS = Number(flags.rounds ?? 3);
const engines = String(flags.engines ?? 'postgres,redis,nats,http').split(',');

/** `writers` loops of update() on keys of their own for `ms`: acknowledged writes per second; checks what is stored. */
async function cell(url, writers, ms) {
  const store = await open(url);
  const tag = `b${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}/`;
  const acked = new Array(writers).fill(0);
  try {
    const until = performance.now() + ms;
    const began = performance.now();
    await Promise.all(acked.map(async (_, i) => {
      while (performance.now() < until) {
        await store.update(`${tag}${i}`, (n) => (n ?? 0) + 1);
        acked[i]++;
      }
    }));
    const seconds = (performance.now() - began) / 1000;
    for (let i = 0; i < writers; i++) {
      const stored = (await store.get(`${tag}${i}`))?.value ?? 0;
      if (stored !== acked[i]) throw new Error(`${url}: key ${i} stored ${stored}, acknowledged ${acked[i]}`);
    }
    return acked.reduce((s, n) => s + n, 0) / seconds;
  } finally {
    await store.close();
  }
}

const rows = [];
for (const setup of SETUPS.filter((s) => s.variant === 'durable' && engines.includes(s.engine))) {
  let cluster;
  try {
    cluster = await setup.start({ single: true });
    const replicated = setup.url(cluster);
    const single = setup.engine === 'redis' ? `${cluster.singleUrl}?prefix=bench` : cluster.singleUrl;
    if (!single) throw new Error('the launcher has no single-server URL');
    for (const writers of [1, 16]) {
      const r = { engine: setup.engine, setup: setup.note, writers, single: [], replicated: [], ratio: [] };
      await cell(single, writers, 500);
      await cell(replicated, writers, 500);
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 === 0 ? ['single', 'replicated'] : ['replicated', 'single'];
        const got = {};
        for (const side of order) got[side] = await cell(side === 'single' ? single : replicated, writers, MS);
        r.single.push(got.single);
        r.replicated.push(got.replicated);
        r.ratio.push(got.replicated / got.single);
      }
      rows.push(r);
      console.log(`${setup.engine} (${setup.note}), ${writers} writer(s): single ${median(r.single).toFixed(0)}/s, replicated ${median(r.replicated).toFixed(0)}/s, ×${median(r.ratio).toFixed(2)}`);
    }
  } catch (err) {
    console.log(`${setup.engine}: skipped — ${String(err?.message ?? err).split('\n')[0]}`);
    rows.push({ engine: setup.engine, setup: setup.note, skipped: String(err?.message ?? err).split('\n')[0] });
  } finally {
    await cluster?.stop().catch(() => undefined);
  }
}

console.log('\n| engine | replicated setup | writers | single server writes/s | replicated writes/s | replicated ÷ single |');
console.log('| --- | --- | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  if (r.skipped) console.log(`| ${r.engine} | ${r.setup} | – | – | – | skipped: ${r.skipped} |`);
  else console.log(`| ${r.engine} | ${r.setup} | ${r.writers} | ${median(r.single).toFixed(0)} | ${median(r.replicated).toFixed(0)} | ${median(r.ratio).toFixed(2)} |`);
}
process.exit(0);
