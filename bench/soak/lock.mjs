#!/usr/bin/env node
// Soak of revkit/lock (issue 24): the lock and election workloads of
// test/faults/lock-processes.test.ts (paused holders resumed after being overtaken,
// holders SIGKILLed while holding, random pauses) run round after round, fenced,
// on each backend in turn, for --minutes (default 60). Every round must lose
// nothing, keep fences growing and refuse the paused holder's late write; the
// figures are totals and the takeover times after SIGKILL.
//   node bench/soak/lock.mjs [--minutes 60] [--ttl 1000] [--backend sqlite|postgres|redis|http ...]
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { open } from '../../dist/index.js';
import { createServer } from '../../dist/server/index.js';
import { runLockWorkload } from '../../test/fixtures/lock/run.mjs';

const PG_URL = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test`;
const REDIS_URL = process.env.REVKIT_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const { values } = parseArgs({ options: { minutes: { type: 'string', default: '60' }, ttl: { type: 'string', default: '1000' }, backend: { type: 'string', multiple: true } } });
const dir = mkdtempSync(join(tmpdir(), 'revkit-soak-lock-'));
const tag = `rk_locksoak_${process.pid}_${randomBytes(3).toString('hex')}`;
const ADMIN = `soak-admin-${randomBytes(12).toString('hex')}`;
let round = 0;

const targets = {
  sqlite: async () => {
    const url = `sqlite:${join(dir, `lock-${round}.db`)}`;
    const verify = await open(url);
    return { url, verify, close: () => verify.close() };
  },
  postgres: async () => {
    const url = `${PG_URL}?prefix=${tag}_${round}_`;
    const verify = await open(url);
    return {
      url, verify,
      close: async () => {
        await verify.close();
        const { default: pg } = await import('pg');
        const { dropPostgresStore } = await import('../../dist/postgres/index.js');
        const pool = new pg.Pool({ connectionString: PG_URL, max: 1 });
        await dropPostgresStore(pool, { prefix: `${tag}_${round}_` }).finally(() => pool.end());
      },
    };
  },
  redis: async () => {
    const url = `${REDIS_URL}?prefix=${tag}_${round}`;
    const verify = await open(url);
    return {
      url, verify,
      close: async () => {
        await verify.close();
        const { Redis } = await import('ioredis');
        const { dropRedisStore } = await import('../../dist/redis/index.js');
        const client = new Redis(REDIS_URL);
        await dropRedisStore(client, { prefix: `${tag}_${round}` }).finally(() => client.disconnect());
      },
    };
  },
  http: async () => {
    const server = await createServer({ store: `sqlite:${join(dir, `http-${round}.db`)}`, adminToken: ADMIN });
    const base = await server.listen({ host: '127.0.0.1', port: 0 });
    return { url: `${base}?token=${ADMIN}`, verify: server.store, close: () => server.close() };
  },
};

const names = values.backend ?? Object.keys(targets);
const until = Date.now() + Number(values.minutes) * 60_000;
const totals = Object.fromEntries(names.map((n) => [n, { rounds: 0, acknowledged: 0, refused: 0, pauses: 0, kills: 0, takeovers: [], observed: 0, bad: [] }]));
while (Date.now() < until) {
  for (const name of names) {
    if (Date.now() >= until) break;
    round++;
    const kind = totals[name].rounds % 2 === 0 ? 'lock' : 'elect';
    const target = await targets[name]();
    try {
      const r = await runLockWorkload({
        url: target.url, verify: target.verify, name: `soak-${kind}`, processes: 3, cycles: kind === 'lock' ? 12 : 5, ttlMs: Number(values.ttl),
        kind, write: 'fenced', writesPerTerm: 3, targetedPause: true, kills: 2, randomPauses: 4,
      });
      const t = totals[name];
      t.rounds++;
      t.acknowledged += r.acknowledged;
      t.refused += r.refused;
      t.pauses += r.pauses;
      t.kills += r.kills;
      t.takeovers.push(...r.takeovers);
      t.observed += r.observed;
      const broken = { lost: r.lost, extra: r.extra, duplicateN: r.duplicateN, fenceWentBack: r.fenceWentBack, acquisitionOrder: r.acquisitionOrder, notALeader: r.notALeader, observedOutOfOrder: r.observedOutOfOrder, observeErrors: r.observeErrors, errors: r.errors.length };
      if (Object.values(broken).some((v) => v !== 0) || r.overtaken !== 1) {
        t.bad.push({ round, kind, ...broken, overtaken: r.overtaken, errorSample: r.errors.slice(0, 3) });
        process.stderr.write(`  BAD round ${round} ${name} ${kind}: ${JSON.stringify(t.bad.at(-1))}\n`);
      }
      process.stderr.write(`  round ${round} ${name} ${kind}: ${r.acknowledged} writes, ${r.refused} refused, takeovers ${r.takeovers.join('/')} ms${t.bad.length ? ` — ${t.bad.length} bad so far` : ''}\n`);
    } finally {
      await target.close().catch(() => undefined);
    }
  }
}
rmSync(dir, { recursive: true, force: true });
let failed = 0;
for (const [name, t] of Object.entries(totals)) {
  const sorted = [...t.takeovers].sort((a, b) => a - b);
  const q = (p) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN;
  const ok = t.bad.length === 0 && t.rounds > 0;
  if (!ok) failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${t.rounds} rounds, ${t.acknowledged} fenced increments, 0 lost unless listed, ${t.refused} late writes refused, ${t.pauses} targeted pauses, `
    + `${t.kills} SIGKILLs; takeover after SIGKILL (ttl ${values.ttl} ms): min ${sorted[0]} / median ${q(0.5)} / p95 ${q(0.95)} / max ${sorted.at(-1)} ms; ${t.observed} leader values observed`);
  if (!ok) console.log(JSON.stringify(t.bad.slice(0, 5)));
}
process.exit(failed === 0 ? 0 : 1);
