// P04: a PostgreSQL group-commit batch whose connection is cut while it runs may still commit (the server
// session goes on). Sending it again must not happen: the writes would land twice, or a CAS that committed would
// be answered with a ConflictError (a definite "not written") — a caller that retries then applies its change twice.
// Deterministic, as test/postgres-late-landing.test.ts: a row lock holds the batch until the cut.
import { afterAll, expect, it } from 'vitest';
import pg from 'pg';
import { PostgresStore, dropPostgresStore } from '../src/postgres/index.js';
import { startCutProxy } from './support/cut-proxy.js';
import { lockWaiters } from './support/lock-waiters.js';
import { PG_URL } from './support/postgres-pool.js';

const PG_USER = process.env.PGUSER ?? 'root';
const made: string[] = [];
const APP = `p04_${process.pid}`;
afterAll(async () => {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
  for (const prefix of made) await dropPostgresStore(pool, { prefix }).catch(() => undefined);
  await pool.end();
}, 60_000);


it('P04: a batch cut from its client is not sent again: each CAS that committed is not answered ConflictError', async () => {
  const prefix = `rk_p04_${process.pid.toString(36)}_${Date.now().toString(36)}_`;
  made.push(prefix);
  const proxy = await startCutProxy(5432);
  const store = await PostgresStore.fromUrl(`postgres://${PG_USER}@127.0.0.1:${proxy.port}/test?application_name=${APP}`, { prefix });
  const locker = new pg.Client(PG_URL);
  await locker.connect();
  try {
    await store.put('x', 0);
    const a0 = await store.put('a', 0);
    const b0 = await store.put('b', 0);
    await locker.query('BEGIN');
    await locker.query(`SELECT 1 FROM "public"."${prefix}kv" WHERE key IN ('x', 'b') FOR UPDATE`);
    const settle = (p: Promise<any>) => p.then((v) => ({ ok: true, revision: v.revision }), (e) => ({ ok: false, code: e.code, ambiguous: e.ambiguous, message: e.message }));
    // x goes out alone at once (and waits on its lock); a and b arrive in the same turn: one batch statement, waiting on b's lock.
    const x = settle(store.put('x', 1));
    const a = settle(store.put('a', 1, { ifRevision: a0.revision }));
    const b = settle(store.put('b', 1, { ifRevision: b0.revision }));
    const state: Record<string, unknown> = {};
    x.then((v) => (state.x = v)); a.then((v) => (state.a = v)); b.then((v) => (state.b = v));
    await new Promise((r) => setTimeout(r, 1000));
    { const snd = (store as any).writes.sender; console.log('P04 after 1 s:', JSON.stringify(state), 'sender', snd.inFlight, snd.queue.length, [...snd.busy], snd.maxInFlight); }
    await lockWaiters(2, prefix, { tries: 500, applicationName: APP });
    proxy.cut(); // both statements go on inside PostgreSQL; the client hears "connection lost"
    await new Promise((r) => setTimeout(r, 500)); // a resent batch would now wait behind the orphaned one
    await locker.query('COMMIT');
    const answers = { x: await x, a: await a, b: await b };
    const history = { a: (await store.history('a')).map((r: any) => `${r.value}@${r.revision}`), b: (await store.history('b')).map((r: any) => `${r.value}@${r.revision}`) };
    console.log('P04 answers:', JSON.stringify(answers), '\nP04 history (newest first):', JSON.stringify(history));
    // The CAS of a and b committed (history holds value 1). Their callers must not be told a definite conflict.
    expect(history.a[0]?.startsWith('1@')).toBe(true);
    for (const k of ['a', 'b'] as const) expect(answers[k].ok || answers[k].code !== 'ERR_CONFLICT').toBe(true);
  } finally {
    await locker.query('ROLLBACK').catch(() => undefined);
    await locker.end();
    await store.close();
    await proxy.close();
  }
}, 60_000);
