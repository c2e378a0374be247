// An idle transaction elsewhere on the cluster must not hold a watch back (issue: "one idle
// transaction anywhere on the cluster stops every watch"). It runs on a private PostgreSQL:
// the test leaves a transaction open in another database for its whole length, which the
// machine's own server must never see.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { BackendError, type WatchEvent } from '../src/core/index.js';
import { PostgresStore } from '../src/postgres/index.js';
import { ADMIN, startServer } from './server-helpers.js';
import { startPrivatePostgres, type PrivateServer } from './support/servers.js';

let server: PrivateServer;
let idle: pg.Client | undefined;
let idleHere: pg.Client | undefined;
const stores: PostgresStore[] = [];
let counter = 0;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean | Promise<boolean>, what: () => string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out: ${what()}`);
    await sleep(20);
  }
}

async function store(prefix: string): Promise<PostgresStore> {
  const s = await PostgresStore.fromUrl(server.url, { prefix, sweepIntervalMs: 0 });
  stores.push(s);
  return s;
}

const fresh = () => `rk_idle_${counter++}_`;

/** Collects a watch's events in the background. */
function collect(s: PostgresStore, options: { prefix: string; fromRevision?: number }) {
  const controller = new AbortController();
  const seen: WatchEvent[] = [];
  const done = (async () => {
    for await (const ev of s.watch({ ...options, signal: controller.signal })) seen.push(ev);
  })();
  return { seen, stop: async () => { controller.abort(); await done; } };
}

beforeAll(async () => {
  server = await startPrivatePostgres();
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query('CREATE DATABASE other');
  await admin.end();
  // The unrelated transaction: another database, an xid, idle for the rest of the file.
  const u = new URL(server.url);
  u.pathname = '/other';
  idle = new pg.Client({ connectionString: u.toString() });
  idle.on('error', () => undefined);
  await idle.connect();
  await idle.query('BEGIN');
  await idle.query('SELECT txid_current()');
  // And one in the store's own database that never touches the store.
  idleHere = new pg.Client({ connectionString: server.url });
  idleHere.on('error', () => undefined);
  await idleHere.connect();
  await idleHere.query('BEGIN');
  await idleHere.query('CREATE TABLE unrelated (x int)');
  await idleHere.query('INSERT INTO unrelated VALUES (1)');
}, 120_000);

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close().catch(() => undefined)));
  for (const c of [idle, idleHere]) {
    await c?.query('ROLLBACK').catch(() => undefined);
    await c?.end().catch(() => undefined);
  }
  await server?.stop();
}, 60_000);

describe('postgres watch and idle transactions that never touch the store', () => {
  it('a watch from a revision and a watch "from now" deliver, and headRevision() answers, while another database (and an unrelated session of this one) holds a transaction open', async () => {
    const s = await store(fresh());
    const base = await s.put('w/base', 0);
    const fromRev = collect(s, { prefix: 'w/', fromRevision: base.revision });
    const fromNow = collect(s, { prefix: 'w/' });
    try {
      const a = await s.put('w/a', 1);
      await until(() => fromRev.seen.length >= 1, () => `the watch from ${base.revision} saw ${JSON.stringify(fromRev.seen)}`);
      expect(fromRev.seen.map((e) => e.revision)).toEqual([a.revision]);
      await until(() => fromNow.seen.length >= 1, () => `the watch from now saw ${JSON.stringify(fromNow.seen)}`);
      expect(fromNow.seen.map((e) => e.revision)).toEqual([a.revision]);
      expect(await s.headRevision()).toBeGreaterThanOrEqual(a.revision);
    } finally {
      await fromRev.stop();
      await fromNow.stop();
    }
  }, 60_000);

  it('a watch "from now" over HTTP is served (not 503) and delivers', async () => {
    const s = await store(fresh());
    const { server: http, url } = await startServer({ store: s });
    const controller = new AbortController();
    try {
      const res = await fetch(`${url}/v1/watch?prefix=h/`, { headers: { authorization: `Bearer ${ADMIN}` }, signal: controller.signal });
      expect(res.status).toBe(200);
      const put = await s.put('h/1', 'x');
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let text = '';
      await until(async () => {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended: ${text}`);
        text += new TextDecoder().decode(value);
        return text.includes('"h/1"');
      }, () => `SSE so far: ${text}`);
      expect(text).toContain(`"revision":${put.revision}`);
    } finally {
      controller.abort();
      await http.close();
    }
  }, 60_000);

  it('a write to this store that drew a revision and commits later still holds back later revisions, and is delivered first', async () => {
    const prefix = fresh();
    const s = await store(prefix);
    const base = await s.put('o/base', 0);
    const w = collect(s, { prefix: 'o/', fromRevision: base.revision });
    const slow = new pg.Client({ connectionString: server.url });
    slow.on('error', () => undefined);
    await slow.connect();
    try {
      // A slow writer of this store: draws its revision in a transaction that stays open (as every write does, via next_revision()).
      await slow.query('BEGIN');
      const n = s.names;
      const r = await slow.query(`WITH r AS (SELECT ${n.next}() AS rev), k AS (
          INSERT INTO ${n.kv} (key, revision, created_revision, value, deleted, updated_at) SELECT 'o/slow', rev, rev, convert_to('1', 'UTF8'), false, 0 FROM r RETURNING revision)
        INSERT INTO ${n.changes} (key, revision, deleted, value, created_revision, updated_at) SELECT 'o/slow', revision, false, convert_to('1', 'UTF8'), revision, 0 FROM k RETURNING revision`);
      const slowRev = Number(r.rows[0].revision);
      const fromNow = collect(s, { prefix: 'o/' });
      try {
        const fast = await s.put('o/fast', 2); // a later revision, committed first
        expect(fast.revision).toBeGreaterThan(slowRev);
        // headRevision() waits for the slow writer, and says so when it does not end in time.
        const head = await s.headRevision().catch((e: unknown) => e);
        expect(BackendError.is(head) && head.transient).toBe(true);
        expect(w.seen).toEqual([]); // held back, never skipped
        expect(fromNow.seen).toEqual([]);
        await slow.query('COMMIT');
        await until(() => w.seen.length >= 2 && fromNow.seen.length >= 2, () => `saw ${JSON.stringify([w.seen, fromNow.seen])}`);
        expect(w.seen.map((e) => `${e.key}@${e.revision}`)).toEqual([`o/slow@${slowRev}`, `o/fast@${fast.revision}`]);
        expect(fromNow.seen.map((e) => `${e.key}@${e.revision}`)).toEqual([`o/slow@${slowRev}`, `o/fast@${fast.revision}`]);
        expect(await s.headRevision()).toBeGreaterThanOrEqual(fast.revision);
      } finally {
        await fromNow.stop();
      }
    } finally {
      await slow.query('ROLLBACK').catch(() => undefined);
      await slow.end().catch(() => undefined);
      await w.stop();
    }
  }, 60_000);
});
