/**
 * Model-based tests (test/support/model-based.ts): random operation sequences
 * on each backend and on the in-memory model side by side, shrunk to a
 * minimal sequence on any disagreement. CI runs a size that finishes in
 * minutes; `npm run soak` runs more and longer sequences
 * (REVKIT_MODEL_RUNS, REVKIT_MODEL_OPS, REVKIT_MODEL_SEED).
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import pg from 'pg';
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { MemoryStore } from '../src/memory/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { FileStore } from '../src/file/index.js';
import { PostgresStore, dropPostgresStore } from '../src/postgres/index.js';
import { RedisStore, dropRedisStore } from '../src/redis/index.js';
import { NatsStore } from '../src/nats/index.js';
import { servedStore } from './server-helpers.js';
import { tempDir } from './helpers.js';
import { compareWithModel, type Subject } from './support/model-based.js';

const RUNS = Number(process.env.REVKIT_MODEL_RUNS ?? 20);
const OPS = Number(process.env.REVKIT_MODEL_OPS ?? 30);
const SEED = process.env.REVKIT_MODEL_SEED === undefined ? undefined : Number(process.env.REVKIT_MODEL_SEED);
const PG_URL = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test`;
const REDIS_URL = process.env.REVKIT_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const NATS_URL = process.env.REVKIT_NATS_URL ?? 'nats://127.0.0.1:4222';
const dir = tempDir('model');
const id = () => randomBytes(5).toString('hex');

const subjects: Record<string, () => Promise<Subject>> = {
  // A change log of 8 commits: watches from older revisions must end in HistoryGoneError, never deliver a part.
  'memory (change log of 8)': async () => ({ store: new MemoryStore({ changeLogSize: 8 }), cleanup: async () => undefined }),
  sqlite: async () => {
    const path = join(dir, `${id()}.db`);
    return {
      store: await SqliteStore.fromUrl(`sqlite:${path}`),
      reopen: () => SqliteStore.fromUrl(`sqlite:${path}`),
      cleanup: async () => rmSync(path, { force: true }),
    };
  },
  file: async () => {
    const path = join(dir, `${id()}.json`);
    return {
      store: await FileStore.fromUrl(`file:${path}`),
      reopen: () => FileStore.fromUrl(`file:${path}`),
      cleanup: async () => rmSync(path, { force: true }),
    };
  },
  postgres: async () => {
    const prefix = `rk_model_${id()}_`;
    return {
      store: await PostgresStore.fromUrl(PG_URL, { prefix, poolSize: 3 }),
      reopen: () => PostgresStore.fromUrl(PG_URL, { prefix, poolSize: 3 }),
      cleanup: async () => {
        const pool = new pg.Pool({ connectionString: PG_URL, max: 1 });
        await dropPostgresStore(pool, { prefix }).finally(() => pool.end());
      },
    };
  },
  redis: async () => {
    const prefix = `rk_model_${id()}`;
    return {
      store: await RedisStore.fromUrl(REDIS_URL, { prefix }),
      reopen: () => RedisStore.fromUrl(REDIS_URL, { prefix }),
      cleanup: async () => {
        const client = new Redis(REDIS_URL);
        await dropRedisStore(client, { prefix }).finally(() => client.disconnect());
      },
    };
  },
  nats: async () => {
    const bucket = `model_${id()}`;
    return {
      store: await NatsStore.fromUrl(`${NATS_URL}?bucket=${bucket}`),
      reopen: () => NatsStore.fromUrl(`${NATS_URL}?bucket=${bucket}`),
      cleanup: async () => {
        const nc = await connect({ servers: NATS_URL.replace('nats://', '') });
        const jsm = await jetstreamManager(nc);
        await jsm.streams.delete(`KV_${bucket}`).catch(() => undefined);
        await nc.close();
      },
    };
  },
  'http over sqlite': async () => {
    const store = await servedStore(`sqlite:${join(dir, `${id()}.db`)}`);
    return { store, cleanup: async () => undefined };
  },
};

afterAll(() => undefined);

describe('model-based: random operation sequences agree with the in-memory model', () => {
  for (const [name, make] of Object.entries(subjects)) {
    it(`${name}: ${RUNS} sequences of up to ${OPS} operations`, async () => {
      await compareWithModel(make, { runs: RUNS, maxOps: OPS, seed: SEED, log: (line) => console.log(`[model ${name}] ${line}`) });
    }, Math.max(600_000, RUNS * OPS * 500));
  }
});
