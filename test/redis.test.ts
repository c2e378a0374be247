import { afterAll } from 'vitest';
import { Redis } from 'ioredis';
import { describeConformance } from '../src/testing/vitest.js';
import { RedisStore, type RedisStoreOptions } from '../src/redis/index.js';

// The machine's shared redis-server; every store gets its own prefix (files run in parallel) and is removed afterwards.
const REDIS_URL = process.env.REVKIT_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

let counter = 0;
const made = new Set<string>();

function freshPrefix(tag = 's'): string {
  const p = `rkt_${tag}_${process.pid.toString(36)}_${Date.now().toString(36)}_${(counter++).toString(36)}`;
  made.add(p);
  return p;
}

async function freshStore(options: RedisStoreOptions = {}): Promise<RedisStore> {
  return RedisStore.fromUrl(REDIS_URL, { prefix: freshPrefix(), ...options });
}

/** Deletes every key of every store this file made (they all start with rk:{prefix}:). */
async function dropAll(): Promise<void> {
  const client = new Redis(REDIS_URL);
  try {
    for (const prefix of made) {
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `rk:{${prefix}}:*`, 'COUNT', 1000);
        if (keys.length > 0) await client.unlink(...keys);
        cursor = next;
      } while (cursor !== '0');
    }
    made.clear();
  } finally {
    client.disconnect();
  }
}

afterAll(dropAll, 60_000);

describeConformance({
  name: 'redis',
  create: () => freshStore({ sweepIntervalMs: 50 }),
  url: async () => `${REDIS_URL}?prefix=${freshPrefix('mp')}`,
  timeoutMs: 30_000,
});
