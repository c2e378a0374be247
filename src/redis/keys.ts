import type { Redis } from 'ioredis';
import { InvalidArgumentError } from '../core/index.js';

/**
 * The Redis keys of one store: all are `rk:{<prefix>}:…`, one hash tag, so
 * one cluster slot and every script may touch any of them.
 */
export class StoreKeys {
  readonly meta: string;
  readonly rec: string;
  readonly keys: string;
  readonly ttl: string;
  readonly log: string;

  constructor(prefix: string) {
    const base = storeBase(prefix);
    this.meta = `${base}meta`;
    this.rec = `${base}rec`;
    this.keys = `${base}keys`;
    this.ttl = `${base}ttl`;
    this.log = `${base}log`;
  }

  /** The history list of `key`. */
  hist(key: string): string {
    return `${this.meta.slice(0, -'meta'.length)}h:${key}`;
  }

  /** The keys a single-key write script touches. */
  forWrite(key: string): string[] {
    return [this.meta, this.rec, this.keys, this.ttl, this.log, this.hist(key)];
  }
}

function storeBase(prefix: string): string {
  return `rk:{${prefix}}:`;
}

export function assertStorePrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string' || prefix === '' || /[{}]/.test(prefix)) {
    throw new InvalidArgumentError(`a redis store prefix must be a non-empty string, without { or }: got ${JSON.stringify(prefix)}`);
  }
}

/**
 * Deletes every key of the store `prefix` (`rk:{prefix}:*`): its data, history,
 * change log and incarnation marker. Stores open on it then fail as having
 * lost their data. Returns how many Redis keys were deleted.
 *
 * Only that store's keys: the prefix is matched literally — the glob
 * characters a prefix may hold (`*`, `?`, `[`, `]`, `\`) are escaped in the
 * SCAN pattern, and every key found is checked to start with `rk:{prefix}:`
 * — so dropping `a*` leaves the store `ab` alone. A prefix that no store can
 * have (empty, or with `{` or `}`) is an `InvalidArgumentError`.
 */
export async function dropRedisStore(client: Redis, options: { prefix: string }): Promise<number> {
  const prefix = options?.prefix;
  assertStorePrefix(prefix);
  const base = storeBase(prefix);
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, found] = await client.scan(cursor, 'MATCH', `${escapeGlob(base)}*`, 'COUNT', 1000);
    const keys = found.filter((k) => k.startsWith(base));
    if (keys.length > 0) deleted += await client.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
  return deleted;
}

/** A SCAN / KEYS pattern that matches `text` literally: Redis glob-matching escapes with a backslash. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
