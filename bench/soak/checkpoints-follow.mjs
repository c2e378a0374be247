#!/usr/bin/env node
// Soak of follow() (issue 12): a consumer SIGKILLed at random 50 times while a producer writes
// 10,000 changes must miss none. Each backend gets a fresh namespace, dropped afterwards.
//   node bench/soak/checkpoints-follow.mjs [--kills 50] [--changes 10000] [--backend sqlite|postgres|nats|file ...]
// (default: sqlite). PostgreSQL and NATS on loopback, or REVKIT_PG_URL / REVKIT_NATS_URL.
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runFollowKills } from '../../test/fixtures/checkpoints-follow-run.mjs';

const PG_URL = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test`;
const NATS_URL = process.env.REVKIT_NATS_URL ?? 'nats://127.0.0.1:4222';
const { values } = parseArgs({ options: { kills: { type: 'string', default: '50' }, changes: { type: 'string', default: '10000' }, backend: { type: 'string', multiple: true } } });
const dir = mkdtempSync(join(tmpdir(), 'revkit-soak-follow-'));
const tag = `rk_cpsoak_${process.pid}_${randomBytes(3).toString('hex')}`;

const namespaces = {
  sqlite: () => ({ url: `sqlite:${join(dir, 'follow.db')}?synchronous=normal`, drop: async () => undefined }),
  // The file keeps a bounded change log (4,096 by default) that also holds every cursor advance: a
  // consumer 10,000 changes behind needs a longer one, or it rightly gets HistoryGoneError.
  file: () => ({ url: `file:${join(dir, 'follow.json')}?changeLog=50000&lockTimeoutMs=60000`, drop: async () => undefined }),
  postgres: () => ({
    url: `${PG_URL}?prefix=${tag}_`,
    drop: async () => {
      const { default: pg } = await import('pg');
      const { dropPostgresStore } = await import('../../dist/postgres/index.js');
      const pool = new pg.Pool({ connectionString: PG_URL, max: 1 });
      await dropPostgresStore(pool, { prefix: `${tag}_` }).finally(() => pool.end());
    },
  }),
  nats: () => ({
    url: `${NATS_URL}?bucket=${tag}`,
    drop: async () => {
      const { connect } = await import('@nats-io/transport-node');
      const { jetstreamManager } = await import('@nats-io/jetstream');
      const nc = await connect({ servers: NATS_URL.replace(/^nats:\/\//, '') });
      await (await jetstreamManager(nc)).streams.delete(`KV_${tag}`).catch(() => undefined);
      await nc.close();
    },
  }),
};

let failed = 0;
try {
  for (const name of values.backend ?? ['sqlite']) {
    if (!namespaces[name]) throw new Error(`unknown --backend ${name}: use ${Object.keys(namespaces).join(', ')}`);
    const { url, drop } = namespaces[name]();
    try {
      const report = await runFollowKills({
        url, kills: Number(values.kills), changes: Number(values.changes), catchUpMs: 600_000,
        onProgress: ({ killed, produced }) => killed % 10 === 0 && process.stderr.write(`  ${killed} kills, ${produced} changes written\n`),
      });
      const ok = report.missed === 0 && report.unexpected === 0 && report.failures.length === 0;
      if (!ok) failed++;
      console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${report.kills} kills, ${report.changes} changes, ${report.missed} missed, `
        + `${report.redelivered} handled twice, ${(report.elapsedMs / 1000).toFixed(1)} s`);
      if (!ok) console.log(JSON.stringify({ missedSample: report.missedSample, unexpected: report.unexpected, failures: report.failures }));
    } finally {
      await drop();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed === 0 ? 0 : 1);
