// Bench target for revkit/redis (contract: bench/targets/README.md).
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

export const name = 'redis';

const BASE = process.env.REVKIT_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const made = new Set();

async function driver() {
  return (await import('ioredis')).Redis;
}

export async function available() {
  try {
    const Redis = await driver();
    const client = new Redis(BASE, { lazyConnect: true, retryStrategy: () => null, connectTimeout: 2000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return (await client.ping()) === 'PONG';
    } finally {
      client.disconnect();
    }
  } catch {
    return false;
  }
}

export async function version() {
  const Redis = await driver();
  const client = new Redis(BASE);
  try {
    const info = await client.info('server');
    const server = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
    const [, aof] = await client.config('GET', 'appendonly');
    const [, fsync] = await client.config('GET', 'appendfsync');
    const pkg = createRequire(import.meta.url)('ioredis/package.json').version;
    return `Redis ${server} (appendonly ${aof}, appendfsync ${fsync}), ioredis ${pkg}`;
  } finally {
    client.disconnect();
  }
}

export async function freshUrl() {
  const prefix = `rk_bench_${process.pid}_${randomBytes(4).toString('hex')}`;
  made.add(prefix);
  return `${BASE}${BASE.includes('?') ? '&' : '?'}prefix=${prefix}`;
}

function prefixOf(url) {
  return new URL(url).searchParams.get('prefix') ?? 'revkit';
}

function connectionOf(url) {
  const u = new URL(url);
  u.searchParams.delete('prefix');
  return u.toString();
}

// The compare-and-swap an application writes by hand: a hash { value, rev } per key,
// a Lua script that writes only when rev is still the one read.
const CAS = `
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if rev ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'value', ARGV[2], 'rev', rev + 1)
return 1`;

/**
 * The raw ioredis Lua CAS loop with one writer: HMGET value, rev; then the
 * CAS script (defineCommand: EVALSHA, the source on NOSCRIPT); retry when it
 * answers 0. Same value encoding as revkit (JSON), its own key (`rk:{prefix}:raw:<key>`),
 * one connection like revkit's.
 * The key sits among the store's own keys, so that dropRedisStore removes it too.
 */
export async function rawLoop({ url, key, ops }) {
  const Redis = await driver();
  const client = new Redis(connectionOf(url));
  client.defineCommand('cas', { numberOfKeys: 1, lua: CAS });
  const k = `rk:{${prefixOf(url)}}:raw:${key}`;
  try {
    for (let i = 0; i < ops; i++) {
      for (;;) {
        const [value, rev] = await client.hmget(k, 'value', 'rev');
        const next = JSON.stringify((value === null ? 0 : JSON.parse(value)) + 1);
        if ((await client.cas(k, rev ?? '0', next)) === 1) break;
      }
    }
  } finally {
    client.disconnect();
  }
}

// The same CAS keeping what watch() and history() need, at its smallest: the
// revision drawn from one counter for the whole store, the change appended to
// a stream, in the same script.
const CAS_LOGGED = `
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if rev ~= tonumber(ARGV[1]) then return 0 end
local next = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'value', ARGV[2], 'rev', next)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'key', KEYS[1], 'rev', next, 'value', ARGV[2])
return 1`;

/** The raw loop with a change log (CAS_LOGGED): the floor of any design that keeps one in Redis. */
export async function logLoop({ url, key, ops }) {
  const Redis = await driver();
  const client = new Redis(connectionOf(url));
  client.defineCommand('casLogged', { numberOfKeys: 3, lua: CAS_LOGGED });
  const base = `rk:{${prefixOf(url)}}:log`;
  const k = `${base}:kv:${key}`;
  try {
    for (let i = 0; i < ops; i++) {
      for (;;) {
        const [value, rev] = await client.hmget(k, 'value', 'rev');
        const next = JSON.stringify((value === null ? 0 : JSON.parse(value)) + 1);
        if ((await client.casLogged(k, `${base}:head`, `${base}:changes`, rev ?? '0', next)) === 1) break;
      }
    }
  } finally {
    client.disconnect();
  }
}

export async function cleanup() {
  if (made.size === 0) return;
  const Redis = await driver();
  const { dropRedisStore } = await import('../../dist/redis/index.js');
  const client = new Redis(BASE);
  try {
    for (const prefix of made) await dropRedisStore(client, { prefix });
    made.clear();
  } finally {
    client.disconnect();
  }
}
