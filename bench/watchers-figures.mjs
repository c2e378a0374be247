// Issue 10 #10: what idle watchers cost the writers of a PostgreSQL store.
// puts/s with 50 watchers on other prefixes versus with none, side by side
// (alternating rounds, fresh store each round), 8 concurrent writers in one
// process; prints the ratio of medians (goal >= 0.8).
// Usage: npm run build && node bench/watchers-figures.mjs [--watchers 50] [--writers 8] [--ms 3000] [--rounds 3] [--json out.json]
import { setMaxListeners } from 'node:events';
import { writeFileSync } from 'node:fs';
import { PostgresStore } from '../dist/postgres/index.js';
import { flagArgs, median } from './lib/figures.mjs';
import * as target from './targets/postgres.mjs';

const args = flagArgs();
const WATCHERS = Number(args.watchers ?? 50);
const WRITERS = Number(args.writers ?? 8);
const MS = Number(args.ms ?? 3000);
const ROUNDS = Number(args.rounds ?? 3);

if (!(await target.available())) {
  console.error('PostgreSQL is not reachable (set REVKIT_PG_URL, default postgres://root@127.0.0.1:5432/test)');
  process.exit(1);
}

async function putsPerSecond(watchers) {
  const store = await PostgresStore.fromUrl(await target.freshUrl());
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  let delivered = 0;
  const watching = Array.from({ length: watchers }, (_, i) => (async () => {
    for await (const _ of store.watch({ prefix: `idle${i}/`, signal: controller.signal })) delivered++;
  })());
  try {
    await new Promise((r) => setTimeout(r, 300)); // the watchers are running
    let puts = 0;
    const end = performance.now() + MS;
    const t = performance.now();
    await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; performance.now() < end; i++) {
        await store.put(`busy/${w}/${i % 100}`, i);
        puts++;
      }
    }));
    return puts / ((performance.now() - t) / 1000);
  } finally {
    controller.abort();
    await Promise.all(watching);
    await store.close();
    if (delivered !== 0) throw new Error(`idle watchers received ${delivered} events`);
  }
}

try {
  await putsPerSecond(0); // warm-up
  const none = [];
  const some = [];
  for (let r = 0; r < ROUNDS; r++) {
    none.push(await putsPerSecond(0));
    some.push(await putsPerSecond(WATCHERS));
  }
  const result = {
    watchers: WATCHERS, writers: WRITERS, msPerRound: MS, rounds: ROUNDS,
    putsPerSecNoWatchers: Math.round(median(none)),
    putsPerSecWithWatchers: Math.round(median(some)),
    ratio: median(some) / median(none),
    perRound: none.map((n, i) => ({ none: Math.round(n), watchers: Math.round(some[i]) })),
  };
  console.log(`postgres, ${WRITERS} writers, ${MS} ms x ${ROUNDS} rounds (median):`);
  console.log(`  no watchers:                      ${result.putsPerSecNoWatchers} puts/s`);
  console.log(`  ${WATCHERS} idle watchers, other prefixes: ${result.putsPerSecWithWatchers} puts/s`);
  console.log(`  ratio: ${result.ratio.toFixed(2)}x (goal >= 0.8)`);
  if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 2));
} finally {
  await target.cleanup();
}
