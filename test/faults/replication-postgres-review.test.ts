/**
 * PostgreSQL failovers, the cases a hostile review found (issue 25): what a
 * process told its callers must be checked against the promoted member
 * before it serves anything there, whatever told it (an atomic delete, a
 * list, a history, a get), what an acknowledgement means must follow the
 * serving member, and an old primary restarted as a primary after a
 * promotion (split brain) must not take writes. Private clusters on free
 * ports (never the machine's PostgreSQL); each failover makes the standby
 * miss the last commits (its walsenders SIGSTOPped) unless said otherwise.
 *
 * Each verdict is on the first answer a store gives once the failover is
 * over (transient connection errors from the dead primary are retried):
 * never on how long anything took.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { BackendError, DataLostError } from '../../src/core/index.js';
import { PostgresStore } from '../../src/postgres/index.js';
// @ts-expect-error plain ESM launcher without types
import { startPostgresCluster } from '../support/clusters/postgres.mjs';

interface Cluster {
  url: string;
  dir: string;
  primary: { name: string; port: number };
  standby: { name: string; port: number };
  holdReplication(): number;
  query(sql: string, port?: number): Promise<Record<string, unknown>[]>;
  failover(o?: object): Promise<unknown>;
  stop(): Promise<void>;
}

let cluster: Cluster | undefined;
const stores: PostgresStore[] = [];

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
  await cluster?.stop();
  cluster = undefined;
});

async function start(synchronous = false): Promise<Cluster> {
  cluster = (await startPostgresCluster({ synchronous, single: false })) as Cluster;
  return cluster;
}

async function openStore(url: string, prefix: string): Promise<PostgresStore> {
  const s = await PostgresStore.fromUrl(`${url}?prefix=${prefix}`);
  stores.push(s);
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `probe` answers true (a state, not a time: the deadline only bounds a hang). */
async function until(what: string, probe: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The first answer of `fn` that is not a transient connection error (a dead pooled connection, the member restarting). */
async function firstAnswer<T>(fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return { ok: true, value: await fn() };
    } catch (error) {
      if (!(BackendError.is(error) && error.transient) || Date.now() > deadline) return { ok: false, error };
      await sleep(50);
    }
  }
}

function expectDataLost(a: { ok: boolean; value?: unknown; error?: unknown }, what: string): void {
  expect(a.ok, `${what}: answered ${JSON.stringify(a.ok ? a.value : String(a.error)).slice(0, 300)} instead of DataLostError`).toBe(false);
  expect(DataLostError.is(a.error), `${what}: ${String(a.error)}`).toBe(true);
}

/** Until the standby replayed everything the primary has. */
async function caughtUp(c: Cluster): Promise<void> {
  await until('the standby to replay everything', async () => {
    const rows = await c.query(`SELECT count(*)::int AS n FROM pg_stat_replication WHERE replay_lsn = pg_current_wal_lsn()`);
    return Number(rows[0]?.n) === 1;
  });
}

/** The standby gets nothing more once everything so far reached it. */
async function holdAfterCatchUp(c: Cluster): Promise<void> {
  await caughtUp(c);
  expect(c.holdReplication()).toBeGreaterThan(0);
}

describe('PostgreSQL failover to a standby that missed commits: what a process told is checked before it serves', () => {
  it('an atomic delete, a list, a history and a get told before the failover are each reported lost, by the process that told them alone', async () => {
    const c = await start(false);
    // (i) W deletes a live key with atomic() and stays; (iii) R lists, H reads a history, G gets — their writer is gone.
    const W = await openStore(c.url, 'ra_');
    const writer = await openStore(c.url, 'rl_');
    const R = await openStore(c.url, 'rl_');
    const hWriter = await openStore(c.url, 'rh_');
    const H = await openStore(c.url, 'rh_');
    const gWriter = await openStore(c.url, 'rg_');
    const G = await openStore(c.url, 'rg_');
    for (let i = 0; i < 5; i++) await W.put('k', { v: i });
    await writer.put('seed', 1);
    await hWriter.put('h', { v: 0 });
    await gWriter.put('g', { v: 0 });
    await holdAfterCatchUp(c);

    const deleted = (await W.atomic().delete('k').commit()).revision;
    for (let i = 0; i < 50; i++) await writer.put(`x/${String(i).padStart(3, '0')}`, { i });
    const listed = await R.list({ prefix: 'x/' });
    expect(listed.entries).toHaveLength(50);
    for (let i = 1; i <= 3; i++) await hWriter.put('h', { v: i });
    const history = await H.history('h');
    expect(history[0]?.revision).toBeGreaterThan(1);
    await gWriter.put('g', { v: 1 });
    const got = await G.get('g');
    expect(got?.value).toEqual({ v: 1 });
    // Their writers are gone: nobody else is left to check these writes.
    for (const s of [writer, hWriter, gWriter]) await s.close();

    await c.failover({});

    // Every case answered first, then judged together (so a failure names each one that went back silently).
    const answers = {
      'W.get after its atomic delete': await firstAnswer(() => W.get('k')),
      'R.list after the listed writes': await firstAnswer(() => R.list({ prefix: 'x/' })),
      'H.history after the revisions shown': await firstAnswer(() => H.history('h')),
      'G.get after the revision read': await firstAnswer(() => G.get('g')),
    };
    const verdicts = Object.fromEntries(Object.entries(answers).map(([k, a]) => [k, a.ok ? `answered ${JSON.stringify(a.value).slice(0, 120)}` : DataLostError.is(a.error) ? 'DataLostError' : String(a.error)]));
    expect(verdicts).toEqual(Object.fromEntries(Object.keys(answers).map((k) => [k, 'DataLostError'])));
    const lost = (await W.replication()).lost;
    expect(lost?.ranges.some((r) => r.after < deleted && deleted <= r.upTo), JSON.stringify(lost)).toBe(true);
  });

  it('a reader never gets an older revision than one it read: its first answer after the failover is DataLostError (its writer gone)', async () => {
    const c = await start(false);
    const W = await openStore(c.url, 'rb_');
    const R = await openStore(c.url, 'rb_');
    for (let i = 0; i < 10; i++) await W.put('k', { v: i });
    await holdAfterCatchUp(c);
    for (let i = 10; i < 12; i++) await W.put('k', { v: i });
    const told = await R.get('k');
    expect(told?.value).toEqual({ v: 11 });
    await W.close();
    await c.failover({});
    const answers: unknown[] = [];
    const first = await firstAnswer(async () => {
      const e = await R.get('k');
      answers.push(e);
      return e;
    });
    expectDataLost(first, `R read revision ${told?.revision}`);
    // The latch holds for its later reads too.
    expectDataLost(await firstAnswer(() => R.get('k')), 'a later read');
    expect(answers).toEqual([]);
  });

  it('canary: with loss detection off the same reader is handed the older revision silently (the verdict above catches it)', async () => {
    const c = await start(false);
    const W = await openStore(c.url, 'rc_');
    const R = await PostgresStore.fromUrl(`${c.url}?prefix=rc_`, { lossDetection: false });
    stores.push(R);
    for (let i = 0; i < 10; i++) await W.put('k', { v: i });
    await holdAfterCatchUp(c);
    for (let i = 10; i < 12; i++) await W.put('k', { v: i });
    const told = await R.get('k');
    await W.close();
    await c.failover({});
    const first = await firstAnswer(() => R.get('k'));
    expect(first.ok).toBe(true);
    expect((first as { value: { revision: number } }).value.revision).toBeLessThan(told?.revision as number);
  });
});

describe('a loss accepted before a caller of the process that was told it came by (soak: counts that went back)', () => {
  it('an update() under way across the failover fails with DataLostError although the loss was accepted before it went on; later ones go on', async () => {
    const c = await start(false);
    const W = await openStore(c.url, 'ro_');
    const operator = await openStore(c.url, 'ro_');
    for (let i = 1; i <= 5; i++) await W.put('k', { n: i });
    await holdAfterCatchUp(c);
    // Told n = 6: the standby never gets it.
    const told = await W.update('k', (x: { n: number }) => ({ n: x.n + 1 }));
    expect(told?.value).toEqual({ n: 6 });

    // An update() that read n = 6 and is held in its mutation across the failover, as a caller in
    // update()'s backoff is (up to 2 s) while a soak's operator accepts a second after the first report.
    let release = () => undefined as void;
    const gate = new Promise<void>((r) => (release = r));
    let entered = () => undefined as void;
    const inside = new Promise<void>((r) => (entered = r));
    let calls = 0;
    const held = W.update('k', async (x: { n: number }) => {
      if (++calls === 1) {
        entered();
        await gate;
      }
      return { n: x.n + 1 };
    }).then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
    await inside;

    await c.failover({});
    // W checks what it told on its first connection to the promoted member (replication() is exempt from
    // the latch): n = 6 is missing, the loss is latched.
    await until('W to detect its loss', async () => (await W.replication()).lost !== undefined);
    // The operator accepts at once, and W learns so, before the held update goes on.
    const accepted = await firstAnswer(() => operator.acceptLoss());
    expect(accepted.ok, String((accepted as { error?: unknown }).error)).toBe(true);
    await until('W to learn the acceptance', async () => (await W.replication()).lost === undefined);
    release();
    // Before the fix it read n = 5 on the promoted member and answered n = 6 again: told the count went back.
    expectDataLost(await held, `the update under way when revision ${told?.revision} (n = 6) was lost`);

    // The acceptance holds for operations begun after W learned it: they go on from what survived.
    const next = await firstAnswer(() => W.update('k', (x: { n: number }) => ({ n: x.n + 1 })));
    expect(next.ok, String((next as { error?: unknown }).error)).toBe(true);
    expect((next as { value: { value: unknown } }).value.value).toEqual({ n: 6 });
  });
});

describe('capabilities.durability follows the serving member', () => {
  it('a settings reload is seen by replication() and capabilities alike; a failover to a member with other settings by the next connection', async () => {
    const c = await start(false);
    // The primary acknowledges before any flush; the standby (copied before this) keeps synchronous_commit = on.
    await c.query(`ALTER SYSTEM SET synchronous_commit = 'off'`);
    await c.query('SELECT pg_reload_conf()');
    await until('the reload', async () => (await c.query(`SELECT current_setting('synchronous_commit') AS sc`))[0]?.sc === 'off');
    const s = await openStore(c.url, 'rd_');
    expect(s.capabilities.durability).toBe('os-buffered');
    await c.query(`ALTER SYSTEM SET synchronous_commit = 'on'`);
    await c.query('SELECT pg_reload_conf()');
    await until('the reload', async () => (await c.query(`SELECT current_setting('synchronous_commit') AS sc`))[0]?.sc === 'on');
    await until('replication() to see the reload', async () => (await s.replication()).durability === 'fsync');
    expect(s.capabilities.durability).toBe('fsync');

    await c.query(`ALTER SYSTEM SET synchronous_commit = 'off'`);
    await c.query('SELECT pg_reload_conf()');
    await until('replication() to see the reload', async () => (await s.replication()).durability === 'os-buffered');
    expect(s.capabilities.durability).toBe('os-buffered');
    // Nothing is lost in this failover: the standby has the store's tables and everything else.
    await caughtUp(c);
    await c.failover({});
    // No replication() call: the store's first write after the failover is made on a new connection to the promoted member.
    const put = await firstAnswer(() => s.put('after', 1));
    expect(put.ok, String((put as { error?: unknown }).error)).toBe(true);
    expect(s.capabilities.durability).toBe('fsync');
    expect((await s.replication()).durability).toBe(s.capabilities.durability);
  });
});

describe('split brain: the old primary restarted as a primary after a standby was promoted', () => {
  it('a process opened afterwards with the old primary listed first writes on the promoted member, not on the old one', async () => {
    const c = await start(false);
    const A = { ...c.primary, data: dataDir(c, c.primary.name) };
    const B = { ...c.standby, data: dataDir(c, c.standby.name) };
    const P1 = await openStore(c.url, 'rs_');
    for (let i = 1; i <= 5; i++) await P1.put('k', { v: i });
    await caughtUp(c);
    // By hand (the launcher's failover() rebuilds the old primary as a standby): kill A, promote B, start A again as it was.
    killTree(pidOf(A.data));
    await until('A to die', async () => !existsSync(join(A.data, 'postmaster.pid')) || !alive(pidOf(A.data)));
    pgCtl(['-D', B.data, '-w', '-t', '60', 'promote']);
    const onB = await firstAnswer(() => P1.put('k', { v: 6, by: 'P1 on B' }));
    expect(onB.ok, String((onB as { error?: unknown }).error)).toBe(true);
    await until('A to start again as a primary', async () => {
      pgCtl(['-D', A.data, '-l', join(c.dir, 'a-again.log'), '-o', `-p ${A.port} -k ${c.dir}`, '-w', '-t', '60', 'start']);
      return true;
    });
    expect((await c.query('SELECT pg_is_in_recovery() AS r', A.port))[0]?.r).toBe(false);

    // The URL lists A first: P2 must find that B was promoted since and refuse A.
    const P2 = await openStore(c.url, 'rs_');
    const seen = await P2.get('k');
    expect(seen?.value).toEqual({ v: 6, by: 'P1 on B' });
    const e2 = await P2.update('k', (x: { v: number }) => ({ v: x.v + 1, by: 'P2' }));
    expect(e2.value).toEqual({ v: 7, by: 'P2' });
    expect((await P2.replication()).serving).toBe(`127.0.0.1:${B.port}`);
    const onA = await c.query(`SELECT count(*)::int AS n FROM rs_kv WHERE key = 'k' AND revision >= ${e2.revision}`, A.port);
    expect(Number(onA[0]?.n)).toBe(0);
    expect((await P1.get('k'))?.value).toEqual({ v: 7, by: 'P2' });
    // Canary: A really serves the old state — a store given A alone (nothing to compare it with) reads and writes the past there.
    const stale = await openStore(`postgres://postgres@127.0.0.1:${A.port}/test`, 'rs_');
    expect((await stale.get('k'))?.value).toEqual({ v: 5 });
  });
});

describe('pooled connections to a superseded primary (review round 11)', () => {
  it('a watch goes on across a promotion while the old primary\'s sessions still answer: no change written on the promoted member is passed over', async () => {
    const c = await start(false);
    const A = { ...c.primary, data: dataDir(c, c.primary.name) };
    const B = { ...c.standby, data: dataDir(c, c.standby.name) };
    const W = await PostgresStore.fromUrl(`${c.url}?prefix=mx_&poolSize=3&connect_timeout=1&sweepIntervalMs=20&watchPollMs=20`);
    stores.push(W);
    const events: number[] = [];
    const controller = new AbortController();
    const watching = (async () => {
      for await (const e of W.watch({ prefix: 'p/', fromRevision: 0, signal: controller.signal })) events.push(e.revision);
    })().catch((err: unknown) => err);
    let stopped = false;
    try {
      for (let i = 0; i < 3; i++) await W.put(`p/a${i}`, i);
      await Promise.all([W.get('p/a0'), W.get('p/a1'), W.history('p/a2')]); // the pool holds several sessions on A
      await caughtUp(c);
      // A connection of our own to A, made before its postmaster stops: after that no new one can be.
      const adminA = new pg.Client({ host: '127.0.0.1', port: A.port, user: 'postgres', database: 'test' });
      await adminA.connect();
      const sessionsOfW = (await adminA.query(`SELECT pid FROM pg_stat_activity WHERE datname = 'test' AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND query NOT LIKE 'LISTEN%'`)).rows as { pid: number }[];
      // A's postmaster stops (new connections hang) while its sessions go on answering, and B is promoted.
      process.kill(pidOf(A.data), 'SIGSTOP');
      stopped = true;
      pgCtl(['-D', B.data, '-w', '-t', '60', 'promote']);
      const Wr = await PostgresStore.fromUrl(`postgres://postgres@127.0.0.1:${B.port}/test?prefix=mx_&sweepIntervalMs=0`);
      stores.push(Wr);
      let reading = true;
      const readers = [0, 1].map(async () => {
        while (reading) await W.get('p/a0').catch(() => undefined);
      });
      const written: number[] = [];
      const writing = (async () => {
        for (let i = 0; i < 300; i++) {
          written.push((await Wr.put(`p/b${i % 5}`, i)).revision);
          await sleep(15);
        }
      })();
      // One of W's sessions on A ends: W's next new connection goes to B and meets the new timeline.
      await adminA.query('SELECT pg_terminate_backend($1)', [sessionsOfW[0]?.pid]);
      await adminA.end();
      await writing;
      reading = false;
      await Promise.all(readers);
      const last = (await Wr.put('p/last', 1)).revision;
      await until('the watch to deliver the last write', async () => events.includes(last), 60_000);
      const missing = written.filter((r) => !events.includes(r));
      expect(missing, `${missing.length} of ${written.length} writes on the promoted member passed over`).toEqual([]);
    } finally {
      controller.abort();
      await watching;
      if (stopped) process.kill(pidOf(A.data), 'SIGCONT');
    }
  });
});

describe('a statement in flight on a superseded primary (review round 12)', () => {
  it('a put that waited on the old primary and committed there after the process met the promoted member is not acknowledged', async () => {
    const { W, told } = await putEndingDuringAdoption('ix_', { lockOnB: false }, async ({ z }) => {
      const adopted = await z;
      expect(adopted.ok && adopted.value.revision).toBeGreaterThan(1_000_000_000); // on B: the raised sequence
    });
    expectNotAcknowledged(told);
    expect((await W.get('x'))?.value).toBe('v1');
  });
});

type Answer = Awaited<ReturnType<typeof firstAnswer<{ revision: number }>>>;

/**
 * W's put waits on a row lock on the old primary A; A's postmaster stops (its sessions go on), B is
 * promoted, (with `lockOnB`) the store's table is locked on B, and W's idle sessions on A end: W's next
 * call (a put of z) connects to B and adopts its timeline — with the lock, its check of what W told
 * waits there. Then `act` runs; the put on A commits (a write B will never have) and its answer is returned.
 */
async function putEndingDuringAdoption(prefix: string, { lockOnB }: { lockOnB: boolean }, act: (ctx: { c: Cluster; B: { port: number }; z: Promise<Answer> }) => Promise<void>) {
  const c = await start(false);
  const A = { ...c.primary, data: dataDir(c, c.primary.name) };
  const B = { ...c.standby, data: dataDir(c, c.standby.name) };
  const W = await PostgresStore.fromUrl(`${c.url}?prefix=${prefix}&poolSize=3&connect_timeout=1&sweepIntervalMs=0`);
  stores.push(W);
  await W.put('x', 'v1');
  await Promise.all([W.get('x'), W.get('x'), W.history('x')]); // three sessions on A
  await caughtUp(c);
  const adminA = new pg.Client({ host: '127.0.0.1', port: A.port, user: 'postgres', database: 'test' });
  await adminA.connect();
  const adminB = new pg.Client({ host: '127.0.0.1', port: B.port, user: 'postgres', database: 'test' });
  let stopped = false;
  try {
    await adminA.query('BEGIN');
    await adminA.query(`SELECT 1 FROM ${prefix}kv WHERE key = 'x' FOR UPDATE`);
    const put = W.put('x', 'v2').then((e) => ({ ok: e.revision }), (err: unknown) => ({ err }));
    await until('the put to wait on the row lock', async () => (await adminA.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'test' AND wait_event_type = 'Lock'`)).rows[0].n === 1);
    process.kill(pidOf(A.data), 'SIGSTOP');
    stopped = true;
    pgCtl(['-D', B.data, '-w', '-t', '60', 'promote']);
    await adminB.connect();
    await adminB.query('BEGIN');
    if (lockOnB) await adminB.query(`LOCK TABLE ${prefix}kv IN ACCESS EXCLUSIVE MODE`);
    const idle = await adminA.query(`SELECT pid FROM pg_stat_activity WHERE datname = 'test' AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state = 'idle'`);
    for (const r of idle.rows as { pid: number }[]) await adminA.query('SELECT pg_terminate_backend($1)', [r.pid]);
    const z = firstAnswer(() => W.put('z', 1));
    // (Asked on a connection of its own: inside adminB's transaction pg_stat_activity stays the snapshot of its first read.)
    if (lockOnB) await until('the adoption\'s check to wait on B', async () => (await c.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'test' AND wait_event_type = 'Lock'`, B.port))[0]?.n === 1);
    await act({ c, B, z });
    await adminA.query('COMMIT');
    const told = await put;
    await adminB.query('COMMIT');
    return { W, told, z: await z };
  } finally {
    await adminA.end().catch(() => undefined);
    await adminB.end().catch(() => undefined);
    if (stopped) process.kill(pidOf(A.data), 'SIGCONT');
  }
}

function expectNotAcknowledged(told: { ok: number } | { err: unknown }): void {
  expect('ok' in told, `told ${JSON.stringify(told)} for a write that exists only on the superseded primary`).toBe(false);
  const err = (told as { err: unknown }).err;
  expect(BackendError.is(err) && err.ambiguous, String(err)).toBe(true);
}

describe('a statement on a superseded primary that ends while the process adopts the promoted member', () => {
  it('is not acknowledged: its acknowledgement would miss the check of what the process was told', async () => {
    const { W, told, z } = await putEndingDuringAdoption('ad_', { lockOnB: true }, async () => undefined);
    expectNotAcknowledged(told);
    expect(z.ok && z.value.revision).toBeGreaterThan(1_000_000_000); // on B: the raised sequence
    expect((await W.get('x'))?.value).toBe('v1');
  });

  it('nor after an adoption of the promoted member failed; nor is the old primary read from', async () => {
    const { W, told, z } = await putEndingDuringAdoption('fa_', { lockOnB: true }, async ({ c, B }) => {
      // The adoption fails: its session on B is ended (B restarting, an operator, a pooler).
      const waiting = await c.query(`SELECT pid FROM pg_stat_activity WHERE datname = 'test' AND wait_event_type = 'Lock'`, B.port);
      await c.query(`SELECT pg_terminate_backend(${Number(waiting[0]?.pid)})`, B.port);
    });
    expectNotAcknowledged(told);
    expect(z.ok, 'the put of z that adopted is answered, on B, once asked again').toBe(true);
    const next = await firstAnswer(() => W.get('x'));
    expect(next.ok && next.value?.value, JSON.stringify(next.ok ? next.value : String(next.error))).toBe('v1');
  });
});

describe('review of 2026-12-06: the check of what a process told, against a promoted member', () => {
  it('a lost write is reported although another process pruned on the promoted member before this one adopted it', async () => {
    const c = await start(false);
    const A = { ...c.primary, data: dataDir(c, c.primary.name) };
    const B = { ...c.standby, data: dataDir(c, c.standby.name) };
    const P = await PostgresStore.fromUrl(`${c.url}?prefix=pt_&poolSize=3&connect_timeout=1&sweepIntervalMs=0`);
    stores.push(P);
    await P.put('victim', 'v1');
    // The victim's revision must lie in the sequence block the standby's copy already covers (not "beyond").
    for (let i = 0; ; i++) {
      const [seq] = await c.query('SELECT log_cnt FROM pt_revision_seq');
      if (Number(seq?.log_cnt) >= 2) break;
      await P.put(`pad/${i}`, i);
    }
    await Promise.all([P.get('victim'), P.get('victim'), P.history('victim')]); // sessions on A
    await holdAfterCatchUp(c);
    const told = await P.put('victim', 'v2'); // acknowledged: on A only
    const adminA = new pg.Client({ host: '127.0.0.1', port: A.port, user: 'postgres', database: 'test' });
    await adminA.connect();
    let stopped = false;
    try {
      process.kill(pidOf(A.data), 'SIGSTOP');
      stopped = true;
      pgCtl(['-D', B.data, '-w', '-t', '60', 'promote']);
      // Another process serves on B first: adopts its timeline, rewrites a key, sweeps (pruned_through jumps past the raise).
      const Q = await PostgresStore.fromUrl(`postgres://postgres@127.0.0.1:${B.port}/test?prefix=pt_&sweepIntervalMs=0&historyDepth=1&changeRetentionMs=0`);
      stores.push(Q);
      for (let i = 0; i < 3; i++) await Q.put('other', i);
      await Q.sweep();
      const [meta] = await c.query('SELECT pruned_through FROM pt_meta WHERE id = 1', B.port);
      expect(Number(meta?.pruned_through)).toBeGreaterThan(1_000_000_000);
      // P's sessions on A end: its next connection goes to B and adopts.
      const sessions = await adminA.query(`SELECT pid FROM pg_stat_activity WHERE datname = 'test' AND pid <> pg_backend_pid() AND backend_type = 'client backend'`);
      for (const r of sessions.rows as { pid: number }[]) await adminA.query('SELECT pg_terminate_backend($1)', [r.pid]);
      expectDataLost(await firstAnswer(() => P.get('victim')), `P was told v2 at ${told.revision}`);
      const lost = (await P.replication()).lost;
      expect(lost?.ranges.some((r) => r.after < told.revision && told.revision <= r.upTo), JSON.stringify(lost)).toBe(true);
    } finally {
      await adminA.end().catch(() => undefined);
      if (stopped) process.kill(pidOf(A.data), 'SIGCONT');
    }
  });
});

function binDir(): string {
  if (process.env.REVKIT_PG_BIN) return process.env.REVKIT_PG_BIN;
  const versions = readdirSync('/usr/lib/postgresql').filter((v) => existsSync(join('/usr/lib/postgresql', v, 'bin', 'pg_ctl')));
  versions.sort((a, b) => Number(b) - Number(a));
  return join('/usr/lib/postgresql', versions[0] as string, 'bin');
}

function pgCtl(args: string[]): void {
  const cmd = join(binDir(), 'pg_ctl');
  const [file, argv] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  execFileSync(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A member's current data directory (the launcher names them <member>-<n>). */
function dataDir(c: Cluster, name: string): string {
  const dirs = readdirSync(c.dir).filter((d) => d.startsWith(`${name}-`)).sort((a, b) => Number(b.split('-').pop()) - Number(a.split('-').pop()));
  return join(c.dir, dirs[0] as string);
}

function pidOf(data: string): number {
  return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** SIGKILLs a postmaster of this test's cluster and its children (a walsender must not outlive it). */
function killTree(pid: number): void {
  const children = readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number).filter((p) => {
    try {
      const st = readFileSync(`/proc/${p}/stat`, 'utf8');
      return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === pid;
    } catch {
      return false;
    }
  });
  process.kill(pid, 'SIGKILL');
  for (const p of children) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}
