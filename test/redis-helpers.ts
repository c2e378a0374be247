import { afterAll } from 'vitest';
import { Redis } from 'ioredis';
import { RedisStore, dropRedisStore, type RedisStoreOptions } from '../src/redis/index.js';

// The machine's shared redis-server; every store gets its own prefix (files run in parallel) and is removed afterwards.
export const REDIS_URL = process.env.REVKIT_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

let counter = 0;
const made = new Set<string>();

export function freshPrefix(tag = 's'): string {
  const p = `rkt_${tag}_${process.pid.toString(36)}_${Date.now().toString(36)}_${(counter++).toString(36)}`;
  made.add(p);
  return p;
}

export async function freshStore(options: RedisStoreOptions = {}): Promise<RedisStore> {
  return RedisStore.fromUrl(REDIS_URL, { prefix: freshPrefix(), ...options });
}

/** Every key of a store: they all start with rk:{prefix}:. */
export async function storeKeys(client: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    // Matched literally: a prefix may hold glob characters (*, ?, [, ], backslash).
    const base = `rk:{${prefix}}:`;
    const [next, keys] = await client.scan(cursor, 'MATCH', `${base.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`, 'COUNT', 1000);
    found.push(...keys.filter((k) => k.startsWith(base)));
    cursor = next;
  } while (cursor !== '0');
  return found;
}

/** Deletes every store this test file made, after its last test. */
export function dropStoresAfterAll(): void {
  afterAll(async () => {
    const client = new Redis(REDIS_URL);
    try {
      for (const prefix of made) await dropRedisStore(client, { prefix });
      made.clear();
    } finally {
      client.disconnect();
    }
  }, 60_000);
}
