// Bench target for revkit/nats (contract: bench/targets/README.md).
import { randomBytes } from 'node:crypto';

export const name = 'nats';

const SERVER = process.env.REVKIT_NATS_URL ?? 'nats://127.0.0.1:4222';
const made = new Set();

function hostPort(url) {
  const u = new URL(url);
  return u.host || '127.0.0.1:4222';
}

async function drivers() {
  const [{ connect }, { jetstreamManager }, { Kvm }] = await Promise.all([
    import('@nats-io/transport-node'), import('@nats-io/jetstream'), import('@nats-io/kv'),
  ]);
  return { connect, jetstreamManager, Kvm };
}

export async function available() {
  try {
    const { connect, jetstreamManager } = await drivers();
    const nc = await connect({ servers: hostPort(SERVER), timeout: 1000, maxReconnectAttempts: 0 });
    try {
      await (await jetstreamManager(nc, { timeout: 1000 })).getAccountInfo();
      return true;
    } finally {
      await nc.close();
    }
  } catch {
    return false;
  }
}

export async function freshUrl() {
  const bucket = `rk_bench_${process.pid}_${randomBytes(4).toString('hex')}`;
  made.add(bucket);
  return `${SERVER}?bucket=${bucket}`;
}

/**
 * The raw @nats-io/kv CAS loop with one writer: get, then update(key, value,
 * revision) (create() when the key is new), retry on a wrong-last-sequence
 * conflict (JetStream codes 10071 / 10164). JSON values, like revkit's codec.
 */
export async function rawLoop({ url, key, ops }) {
  const { connect, Kvm } = await drivers();
  const bucket = new URL(url).searchParams.get('bucket');
  // The same connection options revkit's own connections use (noAsyncTraces saves an Error per
  // request), so the ratio compares the CAS loops, not connection settings.
  const nc = await connect({ servers: hostPort(url), noAsyncTraces: true });
  try {
    const kv = await new Kvm(nc).create(bucket, { history: 64 });
    const enc = new TextEncoder();
    for (let i = 0; i < ops; i++) {
      for (;;) {
        const e = await kv.get(key);
        const live = e !== null && e.operation === 'PUT';
        const next = enc.encode(JSON.stringify((live ? e.json() : 0) + 1));
        try {
          if (e === null) await kv.create(key, next);
          else await kv.update(key, next, e.revision);
          break;
        } catch (err) {
          if (err?.code !== 10071 && err?.code !== 10164 && !/wrong last sequence/.test(String(err?.message))) throw err;
        }
      }
    }
  } finally {
    await nc.close();
  }
}

export async function cleanup() {
  if (made.size === 0) return;
  const { connect, jetstreamManager } = await drivers();
  const nc = await connect({ servers: hostPort(SERVER) });
  try {
    const jsm = await jetstreamManager(nc);
    for (const b of made) await jsm.streams.delete(`KV_${b}`).catch(() => undefined);
    made.clear();
  } finally {
    await nc.close();
  }
}
