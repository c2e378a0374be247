// Issue 25 (review round 11): what a watch whose consumer does not read costs. One watch reads on,
// a second is never read, while N changes of 1 kB are written in atomic batches of 100; then the
// heap held (after gc) and the events queued for the idle one, per backend.
// Usage: npm run build && node bench/watch-backlog-figures.mjs [--changes 100000] [--backends sqlite,postgres]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PostgresStore, dropPostgresStore } from '../dist/postgres/index.js';
import { SqliteStore } from '../dist/sqlite/index.js';
import { flagArgs } from './lib/figures.mjs';

const args = flagArgs();
const CHANGES = Number(args.changes ?? 100_000);
const BACKENDS = String(args.backends ?? 'sqlite,postgres').split(',');
const pgUrl = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'postgres'}@127.0.0.1:5432/test`;
if (typeof global.gc !== 'function') {
  // The heap is read after a collection: run again with gc exposed (bench/all.mjs starts scripts plainly).
  const again = spawnSync(process.execPath, ['--expose-gc', ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(again.status ?? 1);
}

async function measure(store) {
  const value = { pad: 'x'.repeat(1000) };
  const idle = store.watch({ prefix: 'k/', fromRevision: 0 });
  const reading = store.watch({ prefix: 'k/', fromRevision: 0 });
  let last = 0;
  let reached = () => undefined;
  const done = new Promise((r) => (reached = r));
  void (async () => {
    for await (const e of reading) if (last > 0 && e.revision >= last) return reached();
  })();
  global.gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < CHANGES; i += 100) {
    const batch = store.atomic();
    for (let j = i; j < i + 100; j++) batch.set(`k/${j % 1000}`, value);
    last = (await batch.commit()).revision;
  }
  await done;
  global.gc();
  return { queued: idle.backlog, heapGrowthMB: +((process.memoryUsage().heapUsed - before) / 1e6).toFixed(1) };
}

const dir = mkdtempSync(join(tmpdir(), 'revkit-backlog-'));
const rows = [];
try {
  for (const backend of BACKENDS) {
    if (backend === 'sqlite') {
      const store = new SqliteStore(join(dir, 'backlog.db'), { synchronous: 'normal' });
      rows.push({ backend: 'sqlite (NORMAL)', ...(await measure(store)) });
      await store.close();
    } else if (backend === 'postgres') {
      const prefix = `wbl_${process.pid}_`;
      const store = await PostgresStore.fromUrl(pgUrl, { prefix, sweepIntervalMs: 0, watchPollMs: 20 });
      try {
        rows.push({ backend: 'postgres', ...(await measure(store)) });
      } finally {
        await store.close();
        const pool = new pg.Pool({ connectionString: pgUrl, max: 1 });
        await dropPostgresStore(pool, { prefix });
        await pool.end();
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`An idle watch beside a reading one, ${CHANGES} changes of 1 kB:\n\n| backend | events queued | heap growth |\n| --- | ---: | ---: |`);
for (const r of rows) console.log(`| ${r.backend} | ${r.queued.toLocaleString('en-US')} | ${r.heapGrowthMB} MB |`);
process.exit(0);
