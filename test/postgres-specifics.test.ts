import { spawn } from 'node:child_process';
import net from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { BackendError, ClosedError, ConflictError, HistoryGoneError, isTombstone, type Store, type WatchEvent } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { MIGRATIONS } from '../src/postgres/schema.js';
import { PostgresStore, dropPostgresStore, postgresStore, type PostgresStoreOptions } from '../src/postgres/index.js';
import { PG_URL, TEST_POOL_SIZE } from './support/postgres-pool.js';

let counter = 0;
const made = new Set<string>();
const open: PostgresStore[] = [];

function freshPrefix(tag = 'x'): string {
  const p = `rk_${tag}_${process.pid.toString(36)}_${Date.now().toString(36)}_${(counter++).toString(36)}_`;
  made.add(p);
  return p;
}

async function store(prefix: string, options: PostgresStoreOptions = {}, url = PG_URL): Promise<PostgresStore> {
  // Pools of TEST_POOL_SIZE, closed after each test: the connection budget is in test/support/postgres-pool.ts.
  const s = await PostgresStore.fromUrl(url, { prefix, poolSize: TEST_POOL_SIZE, ...options });
  open.push(s);
  return s;
}

function adminPool(): pg.Pool {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
  pool.on('error', () => undefined);
  return pool;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean | Promise<boolean>, what: () => string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out: ${what()}`);
    await sleep(20);
  }
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close().catch(() => undefined)));
}, 60_000);

afterAll(async () => {
  const pool = adminPool();
  for (const prefix of made) await dropPostgresStore(pool, { prefix }).catch(() => undefined);
  await pool.end();
}, 60_000);

describe('postgres specifics', () => {
  it('concurrent unconditional writes from two pools keep per-key revisions strictly increasing', async () => {
    const prefix = freshPrefix('inc');
    const [a, b] = [await store(prefix, { historyDepth: 1000 }), await store(prefix, { historyDepth: 1000 })];
    const revs: number[] = [];
    await Promise.all(Array.from({ length: 16 }, (_, w) => (async () => {
      const s = w % 2 === 0 ? a : b;
      for (let i = 0; i < 25; i++) revs.push((await s.put('k', { w, i })).revision);
    })()));
    expect(new Set(revs).size).toBe(400);
    const hist = await a.history('k', { limit: 1000 });
    expect(hist.length).toBe(400);
    // Newest first, strictly decreasing: the revision order is the commit order of the key.
    for (let i = 1; i < hist.length; i++) expect((hist[i - 1] as { revision: number }).revision).toBeGreaterThan((hist[i] as { revision: number }).revision);
    expect((await a.get('k'))?.revision).toBe(Math.max(...revs));
  });

  it('revisions are never reused after a delete or a purge of the tombstone', async () => {
    const prefix = freshPrefix('purge');
    const s = await store(prefix, { tombstoneRetentionMs: 0, sweepIntervalMs: 0, changeRetentionMs: 0 });
    const e = await s.put('p', 1);
    const tomb = (await s.delete('p')) as number;
    expect(tomb).toBeGreaterThan(e.revision);
    await sleep(5);
    await s.sweep(); // first sweep also purges tombstones
    expect(await s.getRecord('p')).toBeNull(); // purged: never written, as far as anyone can tell
    const again = await s.put('p', 2, { ifAbsent: true });
    expect(again.revision).toBeGreaterThan(tomb);
    // An old revision never matches the new incarnation (no ABA).
    expect(ConflictError.is(await s.put('p', 3, { ifRevision: e.revision }).catch((x) => x))).toBe(true);
    expect(ConflictError.is(await s.put('p', 3, { ifRevision: tomb }).catch((x) => x))).toBe(true);
  });

  it('concurrent ifAbsent creates from several pools: exactly one wins, the others see its revision', async () => {
    const prefix = freshPrefix('abs');
    const stores = [await store(prefix), await store(prefix), await store(prefix)];
    for (let round = 0; round < 10; round++) {
      const key = `c${round}`;
      const results = await Promise.allSettled(Array.from({ length: 24 }, (_, i) => (stores[i % 3] as PostgresStore).put(key, i, { ifAbsent: true })));
      const won = results.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<{ revision: number }>[];
      expect(won.length).toBe(1);
      const winner = (won[0] as PromiseFulfilledResult<{ revision: number }>).value.revision;
      for (const r of results) {
        if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'ERR_CONFLICT', actual: winner });
      }
    }
  });

  it('watch delivers every change committed by concurrent writers exactly once, in per-key order', async () => {
    const prefix = freshPrefix('wat');
    const writers = [await store(prefix), await store(prefix), await store(prefix)];
    const watcher = await store(prefix);
    const start = await watcher.put('cw/start', 0);
    const controller = new AbortController();
    const seen: WatchEvent[] = [];
    const lateSeen: WatchEvent[] = [];
    const watching = (async () => {
      for await (const ev of watcher.watch({ prefix: 'cw/', fromRevision: start.revision, signal: controller.signal })) seen.push(ev);
    })();
    const written: Array<{ key: string; revision: number; type: 'put' | 'delete' }> = [];
    let lateFrom = 0;
    let lateWatching: Promise<void> | undefined;
    await Promise.all(Array.from({ length: 12 }, (_, w) => (async () => {
      const s = writers[w % 3] as PostgresStore;
      for (let i = 0; i < 40; i++) {
        const key = `cw/${(w * 7 + i) % 9}`;
        if (i % 7 === 6) {
          const rev = await s.delete(key);
          if (rev !== null) written.push({ key, revision: rev, type: 'delete' });
        } else if (i % 5 === 4) {
          const r = await s.atomic().set(key, { w, i }).set(`cw/a${w}`, i).commit();
          written.push({ key, revision: r.revision, type: 'put' }, { key: `cw/a${w}`, revision: r.revision, type: 'put' });
        } else {
          const e = await s.update<{ n: number }>(key, (v) => ({ n: (v?.n ?? 0) + 1 }), { combine: w % 2 === 0 });
          if (e) written.push({ key, revision: e.revision, type: 'put' });
        }
        if (w === 0 && i === 20) {
          // A second watcher joins mid-way, from a revision it just saw acknowledged.
          lateFrom = (written[written.length - 1] as { revision: number }).revision;
          lateWatching = (async () => {
            for await (const ev of watcher.watch({ prefix: 'cw/', fromRevision: lateFrom, signal: controller.signal })) lateSeen.push(ev);
          })();
        }
      }
    })()));
    const expected = [...written].sort((x, y) => x.revision - y.revision || (x.key < y.key ? -1 : 1));
    await until(() => seen.length >= expected.length, () => `saw ${seen.length} of ${expected.length}`);
    const expectedLate = expected.filter((e) => e.revision > lateFrom);
    await until(() => lateSeen.length >= expectedLate.length, () => `late watcher saw ${lateSeen.length} of ${expectedLate.length}`);
    await sleep(300); // nothing more may arrive
    controller.abort();
    await Promise.all([watching, lateWatching]);
    const view = (evs: WatchEvent[]) => evs.map((e) => `${e.key}@${e.revision}:${e.type}`);
    const sortedSeen = [...seen].sort((x, y) => x.revision - y.revision || (x.key < y.key ? -1 : 1));
    expect(view(sortedSeen)).toEqual(view(expected as WatchEvent[]));
    expect(view(seen)).toEqual(view(sortedSeen)); // delivered in revision order (hence per-key order)
    expect(view(lateSeen)).toEqual(view(expectedLate as WatchEvent[]));
  }, 60_000);

  it('a transaction that commits out of revision order is delivered before the later revision, never skipped', async () => {
    const prefix = freshPrefix('ooo');
    const s = await store(prefix);
    const base = await s.put('o/base', 0);
    const controller = new AbortController();
    const seen: number[] = [];
    const watching = (async () => {
      for await (const ev of s.watch({ prefix: 'o/', fromRevision: base.revision, signal: controller.signal })) seen.push(ev.revision);
    })();
    // A slow writer: draws its revision in an open transaction (as every write does, via next_revision()).
    const pool = adminPool();
    const slow = await pool.connect();
    try {
      await slow.query('BEGIN');
      const n = s.names;
      const r = await slow.query(`WITH r AS (SELECT ${n.next}() AS rev), k AS (
          INSERT INTO ${n.kv} (key, revision, created_revision, value, deleted, updated_at) SELECT 'o/slow', rev, rev, convert_to('1', 'UTF8'), false, 0 FROM r RETURNING revision)
        INSERT INTO ${n.changes} (key, revision, deleted, value, created_revision, updated_at) SELECT 'o/slow', revision, false, convert_to('1', 'UTF8'), revision, 0 FROM k RETURNING revision`);
      const slowRev = Number(r.rows[0].revision);
      const fast = await s.put('o/fast', 2); // a later revision, committed first
      expect(fast.revision).toBeGreaterThan(slowRev);
      await sleep(800); // several polls: the watcher must hold the later revision back
      expect(seen).toEqual([]);
      await slow.query('COMMIT');
      await until(() => seen.length >= 2, () => `saw ${JSON.stringify(seen)}`);
      expect(seen).toEqual([slowRev, fast.revision]);
    } finally {
      await slow.query('ROLLBACK').catch(() => undefined);
      slow.release();
      await pool.end();
      controller.abort();
      await watching;
    }
  });

  it('a watch without fromRevision delivers a write whose transaction drew its revision before the watch started and commits after', async () => {
    const prefix = freshPrefix('now');
    const s = await store(prefix);
    await s.put('n/before', 0);
    const pool = adminPool();
    const slow = await pool.connect();
    const controller = new AbortController();
    const seen: string[] = [];
    let watching: Promise<void> | undefined;
    try {
      await slow.query('BEGIN');
      const n = s.names;
      const r = await slow.query(`WITH r AS (SELECT ${n.next}() AS rev), k AS (
          INSERT INTO ${n.kv} (key, revision, created_revision, value, deleted, updated_at) SELECT 'n/slow', rev, rev, convert_to('1', 'UTF8'), false, 0 FROM r RETURNING revision)
        INSERT INTO ${n.changes} (key, revision, deleted, value, created_revision, updated_at) SELECT 'n/slow', revision, false, convert_to('1', 'UTF8'), revision, 0 FROM k RETURNING revision`);
      const slowRev = Number(r.rows[0].revision);
      watching = (async () => {
        for await (const ev of s.watch({ prefix: 'n/', signal: controller.signal })) seen.push(`${ev.key}@${ev.revision}`);
      })();
      await sleep(600); // the watch has taken its start (this is ordering, not a timing assertion)
      await slow.query('COMMIT');
      const after = await s.put('n/after', 2);
      await until(() => seen.length >= 2, () => `saw ${JSON.stringify(seen)}`);
      expect(seen).toEqual([`n/slow@${slowRev}`, `n/after@${after.revision}`]);
    } finally {
      await slow.query('ROLLBACK').catch(() => undefined);
      slow.release();
      await pool.end();
      controller.abort();
      await watching;
    }
  });

  it('idle watchers on other prefixes share one poller: writes do not make each of them query', async () => {
    const pool = adminPool();
    let checkouts = 0;
    const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
    (pool as unknown as { connect: () => Promise<pg.PoolClient> }).connect = () => {
      checkouts++;
      return connect();
    };
    const s = await postgresStore(pool, { prefix: freshPrefix('fan'), sweepIntervalMs: 0, notify: false });
    const controller = new AbortController();
    const idle = Array.from({ length: 20 }, (_, i) => (async () => {
      for await (const ev of s.watch({ prefix: `idle${i}/`, signal: controller.signal })) throw new Error(`idle watcher got ${ev.key}`);
    })());
    const busy: string[] = [];
    const watching = (async () => {
      for await (const ev of s.watch({ prefix: 'busy/', fromRevision: 0, signal: controller.signal })) busy.push(ev.key);
    })();
    try {
      await sleep(300);
      checkouts = 0;
      const puts = 100;
      for (let i = 0; i < puts; i++) await s.put(`other/${i}`, i);
      // One checkout per put, plus the poller's own rounds; with a poller per watch each put cost 20 more.
      expect(checkouts).toBeLessThan(puts * 2);
      await s.put('busy/1', 1);
      await until(() => busy.length === 1, () => `busy watcher saw ${JSON.stringify(busy)}`);
    } finally {
      controller.abort();
      await Promise.all([...idle, watching]);
      await s.close();
      await pool.end();
    }
  });

  it('watch from a revision whose changes were pruned throws HistoryGoneError, never skips', async () => {
    const prefix = freshPrefix('gone');
    const s = await store(prefix, { historyDepth: 2, changeRetentionMs: 0, sweepIntervalMs: 0 });
    const first = await s.put('g', 0);
    let last = first;
    for (let i = 1; i <= 6; i++) last = await s.put('g', i);
    await sleep(5);
    await s.sweep();
    expect((await s.history('g', { limit: 10 })).length).toBe(2);
    const err = await s.watch({ key: 'g', fromRevision: first.revision })[Symbol.asyncIterator]().next().catch((e) => e);
    expect(HistoryGoneError.is(err)).toBe(true);
    expect(err.oldestRevision).toBeGreaterThan(first.revision + 1);
    // From a revision that is still covered, it works.
    const it = s.watch({ key: 'g', fromRevision: last.revision - 1 })[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ type: 'put', revision: last.revision });
    await it.return?.();
  });

  it('an expired key is invisible at once and removed in the background as a tombstone with a delete event', async () => {
    const prefix = freshPrefix('ttl');
    const s = await store(prefix, { sweepIntervalMs: 50 });
    const e = await s.put('t', 1, { ttlMs: 200 });
    const events: WatchEvent[] = [];
    const controller = new AbortController();
    const watching = (async () => {
      for await (const ev of s.watch({ key: 't', fromRevision: e.revision - 1, signal: controller.signal })) {
        events.push(ev);
        if (events.length === 2) break;
      }
    })();
    await watching;
    controller.abort();
    expect(events.map((x) => x.type)).toEqual(['put', 'delete']);
    const record = await s.getRecord('t');
    expect(isTombstone(record)).toBe(true);
    expect(record?.revision).toBeGreaterThan(e.revision);
    const pool = adminPool();
    const row = (await pool.query(`SELECT deleted FROM ${s.names.kv} WHERE key = 't'`)).rows[0];
    await pool.end();
    expect(row.deleted).toBe(true);
  });

  it('a constructor takes an existing pg.Pool and leaves it open on close', async () => {
    const pool = adminPool();
    try {
      const prefix = freshPrefix('pool');
      const s = await postgresStore(pool, { prefix });
      expect((await s.put('a', 1)).value).toBe(1);
      expect(s.capabilities).toMatchObject({ crossProcess: true, atomic: true, watch: true, history: true, ttl: true });
      expect(['fsync', 'replicated', 'os-buffered']).toContain(s.capabilities.durability);
      await s.close();
      expect((await pool.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('several processes migrating one empty database at once do not trip over each other', async () => {
    const prefix = freshPrefix('mig');
    const url = `${PG_URL}?prefix=${prefix}&poolSize=${TEST_POOL_SIZE}`;
    const code = `import('${new URL('../dist/index.js', import.meta.url).href}').then(async (m) => { const s = await m.open(process.argv[1]); await s.put('p' + process.pid, 1); await s.close(); })`;
    const results = await Promise.all(Array.from({ length: 6 }, () => new Promise<{ code: number | null; err: string }>((resolve) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', code, url], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      child.on('close', (c) => resolve({ code: c, err }));
    })));
    expect(results).toEqual(Array.from({ length: 6 }, () => ({ code: 0, err: '' })));
    const s = await store(prefix);
    expect((await s.list()).entries.length).toBe(6);
    const pool = adminPool();
    const versions = (await pool.query(`SELECT version FROM "public"."${prefix}schema_migrations"`)).rows;
    await pool.end();
    expect(versions).toEqual(MIGRATIONS.map((m) => ({ version: m.version })));
  }, 60_000);

  it('ambiguous write, not committed: the backend connection is terminated mid-write; update() retries and applies once', async () => {
    const prefix = freshPrefix('term');
    const s = await store(prefix);
    await s.put('amb', 0);
    const pool = adminPool();
    const locker = await pool.connect();
    try {
      // Hold the row so the write blocks inside its statement, then kill its backend.
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM ${s.names.kv} WHERE key = 'amb' FOR UPDATE`);
      const errors: unknown[] = [];
      const updating = s.update<number>('amb', (n) => (n as number) + 1, { combine: false, onRetry: (i) => errors.push(i.error) });
      let pid: number | undefined;
      await until(async () => {
        const r = await pool.query(`SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '/*revkit:put*/%' AND query LIKE $1`, [`%${s.names.kv}%`]);
        pid = r.rows[0]?.pid;
        return pid !== undefined;
      }, () => 'the write never blocked');
      await pool.query('SELECT pg_terminate_backend($1)', [pid]);
      await sleep(50);
      await locker.query('ROLLBACK');
      const e = await updating;
      expect(e?.value).toBe(1);
      expect(errors.some((x) => BackendError.is(x) && x.transient && x.ambiguous)).toBe(true);
      expect((await s.get('amb'))?.value).toBe(1);
      expect((await s.history('amb')).length).toBe(2); // the put of 0 and exactly one increment
    } finally {
      locker.release();
      await pool.end();
    }
  });

  it('ambiguous write, committed but the acknowledgement lost: update() recognises its own write and does not apply it twice', async () => {
    // A TCP proxy between pg and the server that forwards the write, then cuts
    // the connection instead of delivering the server's answer (the commit
    // happened: autocommit commits before the reply is sent).
    let armed = false;
    const sockets = new Set<net.Socket>();
    const proxy = net.createServer((client) => {
      const server = net.connect(5432, '127.0.0.1');
      sockets.add(client).add(server);
      let cutNext = false;
      client.on('data', (d) => {
        if (armed && d.includes('_put_')) {
          armed = false;
          cutNext = true;
        }
        server.write(d);
      });
      server.on('data', (d) => {
        if (cutNext) {
          client.destroy();
          server.destroy();
          return;
        }
        client.write(d);
      });
      const end = () => { client.destroy(); server.destroy(); };
      client.on('error', end).on('close', end);
      server.on('error', end).on('close', end);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    const port = (proxy.address() as net.AddressInfo).port;
    const prefix = freshPrefix('ack');
    const u = new URL(PG_URL);
    u.host = `127.0.0.1:${port}`;
    const s = await store(prefix, {}, u.toString());
    try {
      await s.put('ack', 0);
      const errors: unknown[] = [];
      armed = true;
      const e = await s.update<number>('ack', (n) => (n as number) + 1, { combine: false, onRetry: (i) => errors.push(i.error) });
      expect(errors.length).toBe(1);
      expect(errors[0]).toMatchObject({ code: 'ERR_BACKEND', transient: true, ambiguous: true });
      expect(e?.value).toBe(1);
      expect((await s.get('ack'))?.value).toBe(1);
      const hist = await s.history('ack');
      expect(hist.map((h) => ('value' in h ? h.value : 'deleted'))).toEqual([1, 0]); // written once
      expect(e?.revision).toBe(hist[0]?.revision);
    } finally {
      for (const sock of sockets) sock.destroy();
      proxy.close();
    }
  });
  it('a watch "from now" delivers writes made right after watch() returned, before next() was called — by this store and by another pool (20 rounds)', async () => {
    const prefix = freshPrefix('fnow');
    const s = await store(prefix);
    const other = await store(prefix); // another process's view: its own pool, its own connections
    const within = <T>(p: Promise<T>, what: string): Promise<T> => {
      let t: NodeJS.Timeout | undefined;
      return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out: ${what}`)), 15_000)))]).finally(() => clearTimeout(t));
    };
    for (let round = 0; round < 20; round++) {
      const controller = new AbortController();
      const it = s.watch({ prefix: `r${round}/`, signal: controller.signal })[Symbol.asyncIterator]();
      try {
        // Immediately after watch() returned, in both orders; next() only afterwards.
        const [first, second] = round % 2 === 0 ? [s, other] : [other, s];
        const a = await first.put(`r${round}/a`, round);
        const b = await second.put(`r${round}/b`, round);
        const seen: string[] = [];
        while (seen.length < 2) {
          const r = await within(it.next(), `round ${round}: saw ${JSON.stringify(seen)} of r${round}/a@${a.revision}, r${round}/b@${b.revision}`);
          if (r.done) throw new Error('watch ended');
          seen.push(`${r.value.key}@${r.value.revision}`);
        }
        expect(seen).toEqual([`r${round}/a@${a.revision}`, `r${round}/b@${b.revision}`]);
      } finally {
        controller.abort();
        await it.return?.();
      }
    }
  }, 120_000);

  it('a watch "from now" whose start statement runs late (its store\'s connections are all busy) still delivers what another process wrote after watch() returned', async () => {
    const prefix = freshPrefix('late');
    // Two connections: the first one freed goes to the watch's LISTEN (asked for first), the second to its start.
    const s = await store(prefix, { poolSize: 2, sweepIntervalMs: 0 });
    const other = await store(prefix);
    const before = await other.put('l/before', 0); // written and acknowledged before watch(): not delivered
    await s.get('l/before'); // s has seen it
    const pool = adminPool();
    const locker = await pool.connect();
    const controller = new AbortController();
    const seen: string[] = [];
    let watching: Promise<void> | undefined;
    try {
      await s.put('l/held', 0);
      await s.put('l/held2', 0);
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM ${s.names.kv} WHERE key IN ('l/held', 'l/held2') FOR UPDATE`);
      // Each takes one of s's connections until the lock is released.
      const held = [s.put('l/held', 1), s.put('l/held2', 1, { ifRevision: (await s.get('l/held2'))!.revision })];
      await until(async () => (await pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`, [`%${s.names.kv}%`])).rows[0].n >= 2, () => 'the puts never blocked');
      watching = (async () => {
        for await (const ev of s.watch({ prefix: 'l/', signal: controller.signal })) seen.push(`${ev.key}@${ev.revision}`);
      })();
      // Written and committed while the watch cannot have run its start statement yet.
      const after = await other.put('l/after', 1);
      await locker.query('ROLLBACK');
      const heldRevs = (await Promise.all(held)).map((e) => `${e.key}@${e.revision}`);
      await until(() => seen.length >= 3, () => `saw ${JSON.stringify(seen)}`);
      const rev = (x: string) => Number(x.split('@')[1]);
      expect([...seen].sort()).toEqual([`l/after@${after.revision}`, ...heldRevs].sort());
      expect(seen.map(rev)).toEqual(seen.map(rev).sort((a, b) => a - b)); // in revision order
      expect(before.revision).toBeLessThan(after.revision);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
      await pool.end();
      controller.abort();
      await watching;
    }
  });

  it('close() with writes in flight (held by a row lock of another session): every call settles — ClosedError, ambiguous where a write was sent', async () => {
    const prefix = freshPrefix('close');
    const s = await PostgresStore.fromUrl(PG_URL, { prefix, poolSize: 2, closeTimeoutMs: 200, sweepIntervalMs: 0 });
    open.push(s);
    await s.put('held', 0);
    await s.put('free', 0);
    const pool = adminPool();
    const locker = await pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM ${s.names.kv} WHERE key = 'held' FOR UPDATE`);
      const settled: Array<{ what: string; outcome?: { ok: unknown } | { err: unknown } }> = [];
      const track = (what: string, p: Promise<unknown>) => {
        const entry: (typeof settled)[number] = { what };
        settled.push(entry);
        p.then((ok) => (entry.outcome = { ok }), (err: unknown) => (entry.outcome = { err }));
      };
      track('put', s.put('held', 1));
      track('atomic', s.atomic().set('held', 2).set('other', 2).commit());
      const blocked = async (n: number) => {
        const r = await pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`, [`%${s.names.kv}%`]);
        return r.rows[0].n >= n;
      };
      await until(() => blocked(2), () => 'the put and the atomic commit never blocked on the row lock');
      // The pool (2 connections) is taken: these wait for a connection, nothing of them was sent.
      track('put waiting for a connection', s.put('free', 1));
      track('delete waiting for a connection', s.delete('free'));
      track('update', s.update<number>('free', (n) => (n ?? 0) + 1, { combine: false }));
      track('get', s.get('free'));
      const closing = s.close();
      await until(() => settled.every((e) => e.outcome !== undefined), () => `unsettled: ${settled.filter((e) => !e.outcome).map((e) => e.what).join(', ')}`);
      await closing;
      const errorOf = (what: string) => {
        const o = settled.find((e) => e.what === what)?.outcome;
        expect(o && 'err' in o, `${what} should fail`).toBe(true);
        return (o as { err: ClosedError & { ambiguous?: boolean } }).err;
      };
      // The put's statement was running: it may still commit.
      expect(ClosedError.is(errorOf('put'))).toBe(true);
      expect(errorOf('put').ambiguous).toBe(true);
      // The atomic commit never sent COMMIT: it cannot commit.
      expect(ClosedError.is(errorOf('atomic'))).toBe(true);
      expect(errorOf('atomic').ambiguous).toBe(false);
      for (const what of ['put waiting for a connection', 'delete waiting for a connection', 'update', 'get']) {
        expect(ClosedError.is(errorOf(what)), what).toBe(true);
        expect(errorOf(what).ambiguous ?? false, what).toBe(false);
      }
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
      await pool.end();
    }
  }, 60_000);

  it('ifValue on values holding \\u0000 or a lone surrogate answers as on memory: success when equal, ConflictError when not (put, delete, and batched)', async () => {
    const pgStore = await store(freshPrefix('nul'));
    const memory = new MemoryStore();
    const values: unknown[] = [
      { s: 'a\u0000b', n: [1, { z: '\u0000' }] },
      'plain\u0000',
      { lone: 'x\ud800y' },
      { s: 'no escape here' },
    ];
    const others: unknown[] = [
      { n: [1, { z: '\u0000' }], s: 'a\u0000b' }, // equal, keys in another order
      { s: 'a\u0000c', n: [1, { z: '\u0000' }] },
      { s: 'a b', n: [1, { z: '\u0000' }] },
      'plain\u0000',
      'plain',
      { lone: 'x\ud800y' },
      { lone: 'x\udc00y' },
      { s: 'no escape here' },
      { s: 'no escape here\u0000' },
    ];
    const outcome = async (p: Promise<unknown>): Promise<string> =>
      p.then(() => 'ok', (err: { code?: string; actual?: unknown }) => (ConflictError.is(err) ? 'conflict' : `error ${String(err.code)}: ${String((err as Error).message)}`));
    for (const [i, stored] of values.entries()) {
      for (const [j, cond] of others.entries()) {
        const key = `k${i}_${j}`;
        const answers: string[][] = [];
        for (const s of [memory, pgStore] as Store[]) {
          const written = await s.put(key, stored);
          const put = await outcome(s.put(key, { next: j }, { ifValue: cond }));
          await s.put(key, stored);
          const del = await outcome(s.delete(key, { ifValue: cond }));
          // Batched: several ifValue writes in one turn share a statement (group commit).
          await s.put(key, stored);
          await s.put(`${key}_b`, stored);
          const batched = await Promise.all([
            outcome(s.put(`${key}_b`, 'lead')), // goes first, alone
            outcome(s.put(key, 'batched', { ifValue: cond })),
            outcome(s.put(`${key}_c`, 'c')),
          ]);
          answers.push([put, del, batched[1] as string]);
          expect(written.revision).toBeGreaterThan(0);
        }
        expect(answers[1], `stored ${JSON.stringify(stored)}, ifValue ${JSON.stringify(cond)}`).toEqual(answers[0]);
      }
    }
    // A conflict names the current revision, as on every condition.
    const e = await pgStore.put('conf', { s: '\u0000' });
    expect(await pgStore.put('conf', 1, { ifValue: { s: '\u0001' } }).catch((x) => x)).toMatchObject({ code: 'ERR_CONFLICT', actual: e.revision, expected: 'value' });
    expect(await pgStore.delete('nothing', { ifValue: { s: '\u0000' } }).catch((x) => x)).toMatchObject({ code: 'ERR_CONFLICT', actual: null });
    await memory.close();
  }, 60_000);
});
