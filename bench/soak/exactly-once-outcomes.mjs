#!/usr/bin/env node
// The exactly-once outcomes workload at soak size (CI size:
// test/faults/exactly-once-outcomes.test.ts): 4 producer and 4 consumer
// processes over a real JetStream stream, SIGKILLed at random and restarted
// (memory: tasks crashed at crash points), the consumers' stores injecting
// lost acknowledgements and late-landing commits, producers re-registering every few messages,
// consumers taking shuffled batches and replaying old messages, then (one
// producer retired) every message ever published redelivered once more; every answer process() gave
// is checked against the store (test/fixtures/exactly-once/outcomes-verify.mjs).
//
//   npm run build && node bench/soak/exactly-once-outcomes.mjs [--messages N (per-store defaults)] [--kills 100]
//     [--stores memory,sqlite,postgres,redis,file] [--kill-every lo,hi (ms)] [--re-register lo,hi (sends; default 4,12)]
//     [--log-dir DIR (kept; default a temp dir, removed)]
//
// The verifier reads each dedup record's whole history: a (producer, partition)
// can hold at most 10,000 messages here (history() pages of SQLite and file),
// and the stores are opened keeping that much history.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { open } from '../../dist/index.js';
import { MemoryStore } from '../../dist/memory/index.js';
import { dropPostgresStore } from '../../dist/postgres/index.js';
import { runOutcomes } from '../../test/fixtures/exactly-once/outcomes-run.mjs';
import { flagArgs } from '../lib/figures.mjs';

const flags = flagArgs();
const producers = 4, consumers = 4, partitions = 2;
const kills = Number(flags.kills ?? 100);
const HISTORY = 100_000;
// file: every commit rewrites the whole file, change log included (three changes per message): a few thousand messages.
const DEFAULTS = {
  memory: { messages: 40_000, killEvery: '300,900' },
  sqlite: { messages: 20_000, killEvery: '1000,3000' },
  postgres: { messages: 10_000, killEvery: '1500,4000' },
  redis: { messages: 20_000, killEvery: '1000,3000' },
  file: { messages: 2_000, killEvery: '1500,4000' },
};
const pgUrl = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test`;
const redisUrl = process.env.REVKIT_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const natsUrl = process.env.REVKIT_NATS_URL ?? 'nats://127.0.0.1:4222';
const dir = mkdtempSync(join(tmpdir(), 'revkit-eo-outcomes-soak-'));
const logRoot = flags['log-dir'] ?? join(dir, 'logs');
const tag = `rk_eo_oc_${process.pid.toString(36)}`;
const targets = {
  sqlite: () => `sqlite:${join(dir, 'soak.db')}?historyRetention=${10 * HISTORY}`,
  postgres: () => `${pgUrl}?prefix=${tag}_&historyDepth=${HISTORY}`,
  redis: () => `${redisUrl}?prefix=${tag}&historyDepth=${HISTORY}`,
  file: () => `file:${join(dir, 'soak.json')}?changeLog=${10 * HISTORY}`,
  memory: () => 'memory:',
};
const wanted = (flags.stores ?? 'memory,sqlite,postgres,redis,file').split(',');
let failed = 0;
try {
  for (const name of wanted) {
    const url = targets[name]?.();
    if (!url) throw new Error(`unknown store ${name}`);
    const store = name === 'memory' ? new MemoryStore({ historyDepth: HISTORY }) : await open(url);
    const messages = Number(flags.messages ?? DEFAULTS[name].messages);
    const perPartition = Math.ceil(messages / (producers * partitions));
    if (perPartition > 10_000) throw new Error(`${name}: ${perPartition} messages per (producer, partition): at most 10,000 (history() pages)`);
    const run = await runOutcomes({
      store, storeUrl: name === 'memory' ? undefined : url, inProcess: name === 'memory', logDir: join(logRoot, name),
      producers, consumers, partitions, perPartition, kills, natsUrl, retire: 1,
      killEveryMs: (flags['kill-every'] ?? DEFAULTS[name].killEvery).split(',').map(Number), ackWaitMs: 3_000,
      // Producers re-register of their own accord every few sends (CI: every 1–3), besides every kill.
      reRegisterEvery: (flags['re-register'] ?? '4,12').split(',').map(Number),
      lostAckRate: 0.02, lateLandingRate: 0.01, lostAckDelayMs: 1_500,
      timeoutMs: 12 * 3600_000, log: console.log, progressEveryMs: 60_000,
    }).catch((err) => ({ error: err }));
    await store.close();
    if (run.error) {
      failed++;
      console.log(`${name}: FAILED ${run.error.stack ?? run.error}`);
      continue;
    }
    const ok = run.failures.length === 0 && run.violationCount === 0 && run.missing.length === 0 && run.kills.producer + run.kills.consumer >= kills;
    if (!ok) failed++;
    console.log(`${name}: ${ok ? 'PASS' : 'FAIL'} ${run.positions} messages (${run.published} published), ${run.answers} answers checked ${JSON.stringify(run.counts)}; ` +
      `fenced 'unknown': ${run.unknownApplied} applied + ${run.unknownNever} not (${run.afterRetirement} after ${run.retired.join(', ')} was retired); kills ${run.kills.producer} producer + ${run.kills.consumer} consumer, ` +
      `${run.registrations} registrations, epochs per partition ${run.epochsPerPartition.min}–${run.epochsPerPartition.max}, ${run.logs} logs (${run.torn} torn last lines)` +
      `${run.faults ? `, faults ${JSON.stringify(run.faults)}` : ''}; counter sum ${run.counterSum} = weights ${run.weights}; ` +
      `${run.violationCount} violations; ${run.liveSeconds.toFixed(0)} s live + ${(run.seconds - run.liveSeconds).toFixed(0)} s final redelivery` +
      (run.missing.length ? `\n  outcome kinds never seen: ${run.missing.join(', ')}` : '') +
      (run.violations.length ? `\n  ${run.violations.slice(0, 20).join('\n  ')}` : '') +
      (run.failures.length ? `\n  worker failures: ${run.failures.join('\n  ')}` : ''));
  }
} finally {
  if (wanted.includes('postgres')) {
    const pool = new pg.Pool({ connectionString: pgUrl, max: 1 });
    await dropPostgresStore(pool, { prefix: `${tag}_` }).catch(() => undefined);
    await pool.end();
  }
  if (wanted.includes('redis')) {
    const { Redis } = await import('ioredis');
    const { dropRedisStore } = await import('../../dist/redis/index.js');
    const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
    client.on('error', () => undefined);
    await dropRedisStore(client, { prefix: tag }).catch(() => undefined);
    client.disconnect();
  }
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed === 0 ? 0 : 1);
