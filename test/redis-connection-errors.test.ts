/**
 * Issue 22: every Redis connection error names the backend, the address (no
 * password) and the cause — not ioredis' bare "Connection is closed." or
 * "Reached the max retries per request limit".
 *
 * On private servers (test/support/configured-servers.ts) with a password,
 * so they can be killed without touching the machine's Redis.
 */
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { Redis, type RedisOptions } from 'ioredis';
import { BackendError, RevkitError } from '../src/core/index.js';
import { RedisStore } from '../src/redis/index.js';
import { redisAddress } from '../src/redis/connection.js';
import { freePort } from './support/servers.js';
import { startConfiguredRedis, type ConfiguredServer } from './support/configured-servers.js';

const SECRET = 'redis-secret-pw-4409';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
}, 60_000);

async function server(): Promise<ConfiguredServer> {
  const s = await startConfiguredRedis(['--requirepass', SECRET]);
  cleanup.push(() => s.stop());
  return s;
}

/** An application's client (fromClient), with an 'error' listener as ioredis asks of one. */
function appClient(port: number, options: RedisOptions = {}): Redis {
  const client = new Redis({ host: '127.0.0.1', port, password: SECRET, lazyConnect: true, ...options });
  client.on('error', () => undefined);
  cleanup.push(async () => client.disconnect());
  return client;
}

async function failure(p: Promise<unknown>): Promise<BackendError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err, 'the call should have failed').toBeDefined();
  expect(RevkitError.is(err), `not a RevkitError: ${String(err)}`).toBe(true);
  expect(BackendError.is(err), `not a BackendError: ${String(err)}`).toBe(true);
  return err as BackendError;
}

/** Names the backend and the address; the password nowhere, not in the error's cause either. */
function expectAddressed(err: Error, port: number): void {
  if (process.env.REVKIT_SHOW_ERRORS) console.log(err.message);
  expect(err.message).toMatch(/^redis /);
  expect(err.message).toContain(`redis://127.0.0.1:${port}`);
  expect(err.message).not.toContain(SECRET);
  expect(inspect(err, { depth: 5 })).not.toContain(SECRET);
}

describe('redis: connection errors name the backend, the address and the cause, never the password', () => {
  it('a closed port (an application\'s client that gives up after one retry): the address and ECONNREFUSED', async () => {
    const port = await freePort();
    const client = appClient(port, { maxRetriesPerRequest: 1 });
    client.connect().catch(() => undefined);
    const err = await failure(RedisStore.fromClient(client, { prefix: 'closed' }));
    expect(err.transient).toBe(true);
    expect(err.ambiguous).toBe(false);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expectAddressed(err, port);
  });

  it('a server killed mid-use, the client not reconnecting: "Connection is closed." names the address', async () => {
    const s = await server();
    const client = appClient(s.port, { retryStrategy: () => null });
    await client.connect();
    const store = await RedisStore.fromClient(client, { prefix: 'killed', sweepIntervalMs: 0 });
    cleanup.push(() => store.close());
    await store.put('k', 1);
    await s.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    const err = await failure(store.put('k', 2));
    expect(err.transient).toBe(true);
    expect(err.message).toMatch(/Connection is closed/);
    expectAddressed(err, s.port);
  });

  it('a server killed mid-use (a client from a URL with a password): a write in flight and the calls after it fail naming the address and the cause', async () => {
    const s = await server();
    // Gives up on a command after one reconnect attempt; RedisStore.fromUrl's own client waits out
    // ioredis' default of 20 (about 70 s of backoff) before the same errors.
    const client = new Redis(`redis://:${SECRET}@127.0.0.1:${s.port}`, { lazyConnect: true, maxRetriesPerRequest: 1, autoResendUnfulfilledCommands: false });
    client.on('error', () => undefined);
    cleanup.push(async () => client.disconnect());
    await client.connect();
    const store = await RedisStore.fromClient(client, { prefix: 'killed', sweepIntervalMs: 0 });
    cleanup.push(() => store.close());
    await store.put('k', 1);
    // A write sent and unanswered (the server stopped), then the server dies.
    s.signal('SIGSTOP');
    const inFlight = failure(store.put('k', 'in flight'));
    await new Promise((r) => setTimeout(r, 200));
    await s.kill('SIGKILL');
    const after = failure(store.get('k'));
    const [cut, next] = await Promise.all([inFlight, after]);
    expect(cut.transient).toBe(true);
    expect(cut.ambiguous, 'a write that was sent may have run').toBe(true);
    expect(cut.message).toMatch(/closed before the answer came; last connection error: (read ECONNRESET|connect ECONNREFUSED)/);
    expectAddressed(cut, s.port);
    expect(next.transient).toBe(true);
    expect(next.message).toMatch(/ECONNREFUSED/);
    expectAddressed(next, s.port);
  });

  it('RedisStore.fromUrl on a closed port names redis://host:port and the cause, never the password', async () => {
    const port = await freePort();
    const err = await failure(RedisStore.fromUrl(`redis://:${SECRET}@127.0.0.1:${port}`));
    expect(err.transient).toBe(true);
    expectAddressed(err, port);
    expect(err.message).toMatch(/ECONNREFUSED/);
  });
});

describe('redis: the address in errors', () => {
  const client = (options: RedisOptions) => {
    const c = new Redis({ lazyConnect: true, ...options });
    cleanup.push(async () => c.disconnect());
    return c;
  };

  it('redis://user@host:port/db, rediss:// over TLS, the sentinels and master name; never the password', () => {
    expect(redisAddress(client({ host: '10.0.0.7', port: 6380, password: SECRET }))).toBe('redis://10.0.0.7:6380');
    expect(redisAddress(client({ host: 'cache.example', port: 6379, username: 'app', password: SECRET, db: 2, tls: {} }))).toBe('rediss://app@cache.example:6379/2');
    expect(redisAddress(client({ host: '::1', port: 6379 }))).toBe('redis://[::1]:6379');
    expect(redisAddress(client({ sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26380 }], name: 'main', password: SECRET }))).toBe('redis+sentinel://s1:26379,s2:26380/main');
    const fromUrl = new Redis(`redis://app:${SECRET}@127.0.0.1:6390/3`, { lazyConnect: true });
    cleanup.push(async () => fromUrl.disconnect());
    expect(redisAddress(fromUrl)).toBe('redis://app@127.0.0.1:6390/3');
  });
});
