// Issue 26: what PostgreSQL's loss detection (issue 25: the timeline check, the told-revision ring, the
// AsyncLocalStorage that carries an update()'s start) costs one update() writer. Rounds alternate between a
// child process with lossDetection on and one with it off (AsyncLocalStorage, once used, slows every promise
// of its process, so each setting gets processes of its own); prints the median per op and the ratio.
// Usage: npm run build && node bench/loss-detection-figures.mjs [--rounds 5] [--ops 3000]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { PostgresStore, dropPostgresStore } from '../dist/postgres/index.js';
import { flagArgs } from './lib/figures.mjs';

const pgUrl = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'postgres'}@127.0.0.1:5432/test`;

if (process.argv[2] === '--child') {
  const lossDetection = process.argv[3] === 'on';
  const ops = Number(process.argv[4]);
  const prefix = `ldf_${process.pid}_`;
  const store = await PostgresStore.fromUrl(pgUrl, { prefix, sweepIntervalMs: 0, lossDetection });
  try {
    await store.put('k', { n: 0 });
    for (let i = 0; i < 300; i++) await store.update('k', (v) => ({ n: v.n + 1 }));
    const cpu = process.cpuUsage();
    const t = performance.now();
    for (let i = 0; i < ops; i++) await store.update('k', (v) => ({ n: v.n + 1 }));
    const wall = performance.now() - t;
    const used = process.cpuUsage(cpu);
    process.stdout.write(JSON.stringify({ us: (wall * 1000) / ops, cpuUs: (used.user + used.system) / ops }));
  } finally {
    await store.close();
    const pool = new pg.Pool({ connectionString: pgUrl, max: 1 });
    await dropPostgresStore(pool, { prefix });
    await pool.end();
  }
  process.exit(0);
}

const args = flagArgs();
const rounds = Number(args.rounds ?? 5);
const ops = Number(args.ops ?? 3000);
const self = fileURLToPath(import.meta.url);
const runs = { on: [], off: [] };
for (let r = 0; r < rounds; r++) {
  for (const setting of r % 2 === 0 ? ['on', 'off'] : ['off', 'on']) {
    const child = spawnSync(process.execPath, [self, '--child', setting, String(ops)], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`child ${setting} failed: ${child.stderr}`);
    runs[setting].push(JSON.parse(child.stdout));
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const row = (s) => ({ us: median(runs[s].map((x) => x.us)), cpuUs: median(runs[s].map((x) => x.cpuUs)) });
const on = row('on');
const off = row('off');
console.log(`One PostgreSQL update() writer, ${rounds} rounds of ${ops} each, medians:\n`);
console.log('| lossDetection | µs per update() | client CPU µs per update() |\n| --- | ---: | ---: |');
console.log(`| on (default) | ${on.us.toFixed(0)} | ${on.cpuUs.toFixed(0)} |`);
console.log(`| off | ${off.us.toFixed(0)} | ${off.cpuUs.toFixed(0)} |`);
console.log(`| on / off | ${(on.us / off.us).toFixed(2)}× | ${(on.cpuUs / off.cpuUs).toFixed(2)}× |`);
