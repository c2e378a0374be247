/** The stores the checkpoint tests run on: every backend, each test with a fresh namespace. */
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';
import { open, supportedSchemes } from '../src/open.js';
import type { Store } from '../src/core/index.js';
import { tempDir, uniqueName } from './helpers.js';

export const PG_URL = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test`;
export const NATS_URL = process.env.REVKIT_NATS_URL ?? 'nats://127.0.0.1:4222';
export const REDIS_URL = process.env.REVKIT_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

export interface Backend {
  name: string;
  /** A URL of a fresh, empty store that several processes can open. */
  freshUrl(): string;
  crossProcess: boolean;
}

const pgPrefixes = new Set<string>();
const natsBuckets = new Set<string>();
const redisPrefixes = new Set<string>();

export function backends(label: string): Backend[] {
  const dir = tempDir(`cp-${label}`);
  const list: Backend[] = [
    { name: 'memory', freshUrl: () => 'memory:', crossProcess: false },
    { name: 'sqlite', freshUrl: () => `sqlite:${join(dir, `${uniqueName('cp')}.db`)}`, crossProcess: true },
    {
      name: 'postgres',
      freshUrl: () => {
        const prefix = `rk_cp_${process.pid.toString(36)}_${randomBytes(3).toString('hex')}_`;
        pgPrefixes.add(prefix);
        // Pools of 2: the multi-process files open a store per worker process (see test/support/postgres-pool.ts).
        return `${PG_URL}?prefix=${prefix}&poolSize=2`;
      },
      crossProcess: true,
    },
    {
      name: 'nats',
      freshUrl: () => {
        const bucket = `rk_cp_${process.pid}_${randomBytes(4).toString('hex')}`;
        natsBuckets.add(bucket);
        return `${NATS_URL}?bucket=${bucket}`;
      },
      crossProcess: true,
    },
  ];
  list.push({
    name: 'redis',
    freshUrl: () => {
      const prefix = `rk_cp_${process.pid.toString(36)}_${randomBytes(4).toString('hex')}`;
      redisPrefixes.add(prefix);
      return `${REDIS_URL}?prefix=${prefix}`;
    },
    crossProcess: true,
  });
  // The file backend is being built alongside; it joins the list as soon as it exists.
  if (supportedSchemes().includes('file:')) {
    list.push({ name: 'file', freshUrl: () => `file:${join(dir, `${uniqueName('cp')}.json`)}`, crossProcess: true });
  }
  afterAll(dropAll, 60_000);
  return list;
}

export async function openFresh(backend: Backend): Promise<Store> {
  return open(backend.freshUrl());
}

async function dropAll(): Promise<void> {
  if (pgPrefixes.size > 0) {
    const { default: pg } = await import('pg');
    const { dropPostgresStore } = await import('../src/postgres/index.js');
    const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
    pool.on('error', () => undefined);
    for (const prefix of pgPrefixes) await dropPostgresStore(pool, { prefix }).catch(() => undefined);
    pgPrefixes.clear();
    await pool.end();
  }
  if (redisPrefixes.size > 0) {
    const { Redis } = await import('ioredis');
    const { dropRedisStore } = await import('../src/redis/index.js');
    const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
    client.on('error', () => undefined);
    for (const prefix of redisPrefixes) await dropRedisStore(client, { prefix }).catch(() => undefined);
    redisPrefixes.clear();
    client.disconnect();
  }
  if (natsBuckets.size > 0) {
    const { connect } = await import('@nats-io/transport-node');
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: NATS_URL.replace(/^nats:\/\//, '') });
    const jsm = await jetstreamManager(nc);
    for (const bucket of natsBuckets) await jsm.streams.delete(`KV_${bucket}`).catch(() => undefined);
    natsBuckets.clear();
    await nc.close();
  }
}
