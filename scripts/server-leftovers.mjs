// What a test run left on the machine's shared servers under the names a
// store takes when its URL names none: the NATS stream KV_revkit (bucket
// `revkit`), the PostgreSQL tables revkit_* (prefix `revkit_`) in the test
// database, and the Redis keys rk:{revkit}:* (prefix `revkit`). Tests open
// stores of their own (a unique bucket or prefix) and drop them; a default
// store appearing during a run is a test that forgot to. Each server that
// cannot be reached (or whose driver is missing) is skipped.
//
// Only the default names are looked at: other engineers' runs on the same
// servers create and drop uniquely named stores all the time, and a
// before/after comparison of those would blame this run for theirs.
import { userInfo } from 'node:os';

const NATS = process.env.REVKIT_NATS_URL ?? 'nats://127.0.0.1:4222';
const PG = process.env.REVKIT_PG_URL ?? `postgres://${encodeURIComponent(process.env.PGUSER || process.env.USER || userInfo().username)}@127.0.0.1:5432/test`;
const REDIS = process.env.REVKIT_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

/** `{ what: present }` for each default-named store found, one entry per server reached. */
export async function defaultStores() {
  const found = {};
  await Promise.all([
    nats().then((v) => v !== undefined && (found['NATS stream KV_revkit'] = v)),
    postgres().then((v) => v !== undefined && (found['PostgreSQL tables revkit_*'] = v)),
    redis().then((v) => v !== undefined && (found['Redis keys rk:{revkit}:*'] = v)),
  ]);
  return found;
}

/** The default stores present after a run and not before it. */
export function leftBehind(before, after) {
  return Object.keys(after).filter((what) => after[what] === true && before[what] === false);
}

async function nats() {
  try {
    const { connect } = await import('@nats-io/transport-node');
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: NATS.replace(/^nats:\/\//, '').replace(/\?.*$/, ''), timeout: 2_000, maxReconnectAttempts: 0 });
    try {
      const jsm = await jetstreamManager(nc);
      return await jsm.streams.info('KV_revkit').then(() => true, (err) => (/not found/i.test(String(err?.message)) ? false : undefined));
    } finally {
      await nc.close();
    }
  } catch {
    return undefined;
  }
}

async function postgres() {
  try {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: PG, connectionTimeoutMillis: 2_000 });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const { rows } = await client.query("SELECT count(*)::int AS n FROM pg_tables WHERE tablename IN ('revkit_kv', 'revkit_meta', 'revkit_changes', 'revkit_schema_migrations')");
      return rows[0].n > 0;
    } finally {
      await client.end();
    }
  } catch {
    return undefined;
  }
}

async function redis() {
  try {
    const { Redis } = await import('ioredis');
    const client = new Redis(REDIS, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2_000, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      // A store's keys (src/redis): its meta, records, key index, expiries and change log.
      return (await client.exists(...['meta', 'rec', 'keys', 'ttl', 'log'].map((k) => `rk:{revkit}:${k}`))) > 0;
    } finally {
      client.disconnect();
    }
  } catch {
    return undefined;
  }
}
