/**
 * Issue 22: every PostgreSQL connection error names the backend, the address
 * (no password) and the cause; a server out of connection slots says "too
 * many clients" and names max_connections, never "connection lost"; the
 * pool's own exhaustion is not a lost connection either.
 *
 * On private servers (test/support/configured-servers.ts), so the slots can
 * be used up and the server killed without touching the machine's
 * PostgreSQL: this file opens no connection to it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { BackendError, RevkitError } from '../src/core/index.js';
import { PostgresStore, mapPgError } from '../src/postgres/index.js';
import { freePort } from './support/servers.js';
import { pgQuery, startConfiguredPostgres, type ConfiguredServer } from './support/configured-servers.js';

const SECRET = 'pg-secret-pw-5821';
const APP_SECRET = 'app-secret-pw-9137';

/** The URL of a private server with a password in it (trust auth: accepted, unused). */
function withPassword(server: ConfiguredServer, user = 'postgres', password = SECRET, query = ''): string {
  return `postgres://${user}:${password}@127.0.0.1:${server.port}/test${query}`;
}

async function failure(p: Promise<unknown>): Promise<BackendError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err, 'the call should have failed').toBeDefined();
  expect(RevkitError.is(err), `not a RevkitError: ${String(err)}`).toBe(true);
  expect(BackendError.is(err), `not a BackendError: ${String(err)}`).toBe(true);
  return err as BackendError;
}

/** What every connection error holds: the backend and the address, never the password. */
function expectAddressed(err: Error, address: string, secrets: string[] = [SECRET, APP_SECRET]): void {
  if (process.env.REVKIT_SHOW_ERRORS) console.log(err.message);
  expect(err.message).toContain(`postgres at ${address}`);
  for (const s of secrets) {
    expect(err.message).not.toContain(s);
    expect(JSON.stringify(err)).not.toContain(s);
  }
}

async function hog(server: ConfiguredServer, user: string, n: number): Promise<pg.Client[]> {
  const clients: pg.Client[] = [];
  for (let i = 0; i < n; i++) {
    const c = new pg.Client({ host: '127.0.0.1', port: server.port, user, database: 'test' });
    c.on('error', () => undefined);
    await c.connect();
    clients.push(c);
  }
  return clients;
}

async function release(clients: pg.Client[]): Promise<void> {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
}

describe('postgres: a server out of connection slots', () => {
  // 5 slots, 2 of them reserved for superusers: `app` (no superuser) gets 3.
  let server: ConfiguredServer;
  beforeAll(async () => {
    server = await startConfiguredPostgres({ max_connections: 5, superuser_reserved_connections: 2 });
    await pgQuery(server.port, 'postgres', `CREATE ROLE app LOGIN PASSWORD '${APP_SECRET}'`);
    await pgQuery(server.port, 'postgres', 'ALTER DATABASE test OWNER TO app');
  }, 90_000);
  afterAll(async () => server?.stop(), 60_000);

  it('every slot taken ("sorry, too many clients already"): a store that needs another connection gets a transient BackendError saying too many clients, max_connections (5) and its pool size, not "connection lost"', async () => {
    const store = await PostgresStore.fromUrl(withPassword(server, 'postgres', SECRET, '?poolSize=10&connectWaitMs=0'), { prefix: 'slots_', sweepIntervalMs: 0 });
    // The store holds one idle connection (from open); these take the other four.
    const others = await hog(server, 'postgres', 4);
    try {
      const results = await Promise.allSettled([store.list(), store.list({ prefix: 'a' }), store.list({ prefix: 'b' }), store.history('k')]);
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as BackendError);
      expect(refused.length, 'at most one call gets the connection the store has').toBeGreaterThanOrEqual(3);
      for (const err of refused) {
        expect(RevkitError.is(err)).toBe(true);
        expect(err.code).toBe('ERR_BACKEND');
        expect(err.transient).toBe(true);
        expect(err.ambiguous).toBe(false);
        expect(err.message).toMatch(/too many clients/);
        expect(err.message).toMatch(/max_connections \(5 when this store last looked, 2 of them reserved/);
        expect(err.message).toContain("this store's pool opens up to 10 connections");
        expect(err.message).toContain('53300');
        expect(err.message).not.toMatch(/connection lost|was lost/i);
        expectAddressed(err, `postgres://postgres@127.0.0.1:${server.port}/test`);
      }
    } finally {
      await release(others);
      await store.close();
    }
  });

  it('a store opened while every slot is taken: the error says too many clients and names "the server\'s max_connections" (it cannot be asked)', async () => {
    const others = await hog(server, 'postgres', 5);
    try {
      const err = await failure(PostgresStore.fromUrl(withPassword(server, 'postgres', SECRET, '?connectWaitMs=0'), { prefix: 'slots_', sweepIntervalMs: 0 }));
      expect(err.code).toBe('ERR_BACKEND');
      expect(err.transient).toBe(true);
      expect(err.message).toMatch(/refused a connection for open: too many clients/);
      expect(err.message).toContain("the server's max_connections");
      expect(err.message).toContain("this store's pool opens up to 5 connections");
      expect(err.message).not.toMatch(/connection lost|was lost/i);
      expectAddressed(err, `postgres://postgres@127.0.0.1:${server.port}/test`);
    } finally {
      await release(others);
    }
  });

  it('the slots left are reserved for superusers ("remaining connection slots are reserved"): a role without superuser gets the same too-many-clients error', async () => {
    const store = await PostgresStore.fromUrl(withPassword(server, 'app', APP_SECRET, '?poolSize=4&connectWaitMs=0'), { prefix: 'slots_app_', sweepIntervalMs: 0 });
    // app's three slots: the store's idle one and these two.
    const others = await hog(server, 'app', 2);
    try {
      const results = await Promise.allSettled([store.list(), store.list({ prefix: 'a' }), store.history('k')]);
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as BackendError);
      expect(refused.length).toBeGreaterThanOrEqual(2);
      for (const err of refused) {
        expect(err.code).toBe('ERR_BACKEND');
        expect(err.transient).toBe(true);
        expect(String((err.cause as Error)?.message)).toMatch(/remaining connection slots are reserved/);
        expect(err.message).toMatch(/too many clients/);
        expect(err.message).toMatch(/max_connections \(5 when this store last looked, 2 of them reserved/);
        expect(err.message).toContain("this store's pool opens up to 4 connections");
        expect(err.message).not.toMatch(/connection lost|was lost/i);
        expectAddressed(err, `postgres://app@127.0.0.1:${server.port}/test`);
      }
    } finally {
      await release(others);
      await store.close();
    }
  });

  it('the pool\'s own exhaustion (every connection it may open in use past connect_timeout) is said so, not reported as a lost connection', async () => {
    const store = await PostgresStore.fromUrl(withPassword(server, 'postgres', SECRET, '?poolSize=1&connect_timeout=1'), { prefix: 'pool_', sweepIntervalMs: 0 });
    const held = await store.pool.connect();
    try {
      const err = await failure(store.get('k'));
      expect(err.transient).toBe(true);
      expect(err.ambiguous).toBe(false);
      expect(err.message).toMatch(/no pooled connection came free for get within 1000 ms/);
      expect(err.message).toContain("all 1 connection of this store's pool stayed in use");
      expect(err.message).not.toMatch(/connection lost|was lost|connection failure/i);
      expectAddressed(err, `postgres://postgres@127.0.0.1:${server.port}/test`);
    } finally {
      held.release();
      await store.close();
    }
  });
});

describe('postgres: connection errors name the backend, the address and the cause, never the password', () => {
  it('a closed port: "cannot connect to postgres at postgres://user@host:port/db", the cause (ECONNREFUSED), no password', async () => {
    const port = await freePort();
    const err = await failure(PostgresStore.fromUrl(`postgres://app:${SECRET}@127.0.0.1:${port}/test?connectWaitMs=0&sslmode=disable`));
    expect(err.transient).toBe(true);
    expect(err.message).toContain(`cannot connect to postgres at postgres://app@127.0.0.1:${port}/test for open`);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expectAddressed(err, `postgres://app@127.0.0.1:${port}/test`);
  });

  it('a server killed mid-use: the next calls fail naming the address and the cause, no password', async () => {
    const server = await startConfiguredPostgres({ max_connections: 20 });
    let store: PostgresStore | undefined;
    try {
      store = await PostgresStore.fromUrl(withPassword(server, 'postgres', SECRET, '?connectWaitMs=200'), { prefix: 'killed_', sweepIntervalMs: 0 });
      await store.put('k', 1);
      expect((await store.get('k'))?.value).toBe(1);
      // A put in flight when the server dies: it waits on a row lock held elsewhere.
      const locker = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'postgres', database: 'test' });
      locker.on('error', () => undefined);
      await locker.connect();
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM ${store.names.kv} WHERE key = 'k' FOR UPDATE`);
      const inFlight = failure(store.put('k', 'in flight'));
      await new Promise((r) => setTimeout(r, 300));
      // Immediate shutdown: the postmaster cuts every connection and exits.
      await server.kill('SIGQUIT');
      await locker.end().catch(() => undefined);
      const cut = await inFlight;
      expect(cut.transient).toBe(true);
      expect(cut.ambiguous).toBe(true);
      expect(cut.message).toMatch(/the connection to postgres at .* was lost during put/);
      expectAddressed(cut, `postgres://postgres@127.0.0.1:${server.port}/test`);
      for (const call of [() => store!.put('k', 2), () => store!.get('k'), () => store!.list()]) {
        const err = await failure(call());
        expect(err.transient).toBe(true);
        expect(err.message).toMatch(/cannot connect to postgres at|the connection to postgres at .* was lost/);
        expect(err.message).toMatch(/ECONNREFUSED|terminat|57P0|closed|ended/i);
        expectAddressed(err, `postgres://postgres@127.0.0.1:${server.port}/test`);
      }
    } finally {
      await store?.close();
      await server.stop();
    }
  }, 90_000);
});

describe('postgres: mapPgError on refusals as the drivers report them', () => {
  const where = { address: 'postgres://app@db.example:5432/test', poolSize: 5 };
  const cases: Array<[string, { code?: string; message: string }]> = [
    ['53300 "sorry, too many clients already"', { code: '53300', message: 'sorry, too many clients already' }],
    ['53300 "remaining connection slots are reserved"', { code: '53300', message: 'remaining connection slots are reserved for non-replication superuser connections' }],
    ['53300 "too many connections for role"', { code: '53300', message: 'too many connections for role "app"' }],
    ['53400 about connections', { code: '53400', message: 'too many connections for database "test"' }],
    ['the message without a code (a driver that drops it)', { message: 'sorry, too many clients already' }],
  ];
  for (const [name, raw] of cases) {
    it(`${name}: a transient, unambiguous BackendError saying too many clients, max_connections, the address and the pool size`, () => {
      const err = mapPgError(Object.assign(new Error(raw.message), raw.code ? { code: raw.code } : {}), { writeSent: true, what: 'put', where }) as BackendError;
      expect(BackendError.is(err)).toBe(true);
      expect(err.transient).toBe(true);
      expect(err.ambiguous, 'refused before anything was sent').toBe(false);
      expect(err.message).toContain('postgres at postgres://app@db.example:5432/test refused a connection for put: too many clients');
      expect(err.message).toContain("the server's max_connections");
      expect(err.message).toContain("this store's pool opens up to 5 connections");
      expect(err.message).not.toMatch(/connection lost|was lost/);
    });
  }

  it('a refused dual-stack connect (AggregateError without a message) names the causes inside it', () => {
    const refused = (host: string) => Object.assign(new Error(`connect ECONNREFUSED ${host}:5432`), { code: 'ECONNREFUSED' });
    const agg = Object.assign(new AggregateError([refused('::1'), refused('127.0.0.1')], ''), { code: 'ECONNREFUSED' });
    const err = mapPgError(agg, { writeSent: false, what: 'open', connecting: true, where: { address: 'postgres://app@localhost:5432/test' } }) as BackendError;
    expect(err.transient).toBe(true);
    expect(err.message).toBe('cannot connect to postgres at postgres://app@localhost:5432/test for open: connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432');
  });
});
