/**
 * update() on PostgreSQL and Redis starts from what this store object's last update() of the key wrote,
 * without reading it, guarded by that write's revision AND writer token (core/own-writes.ts). A first
 * version guarded by the revision alone (0d9decb, reverted) failed the first cases here: a store whose
 * revisions started over underneath an open store object (dropped and created again) let that guard pass
 * on another writer's value — a lost update (ABA) — and a mutation that builds an oversized value from the
 * stale state was refused although, on the value as it is, it returns a small one. The canary runs the same
 * loop over a store whose own-write guard is the revision alone, and must lose the update. Two store objects
 * on one store stand for two processes.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { open, type OpenOptions } from '../src/open.js';
import { OWN_WRITE_BYTES, takeWrittenBytes } from '../src/core/own-writes.js';
import { SKIP, type Codec, type Entry, type PutOptions, type Store } from '../src/core/index.js';
import { runUpdate, type UpdatableStore } from '../src/core/update.js';
import type { FindsWrites } from '../src/core/own-write.js';
import { dropPostgresStore } from '../src/postgres/index.js';
import { dropRedisStore } from '../src/redis/index.js';
import { PG_URL } from './checkpoints-backends.js';
import { REDIS_URL } from './redis-helpers.js';
import { tempDir, uniqueName } from './helpers.js';
import { startCutProxy } from './support/cut-proxy.js';

const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
const redis = new Redis(REDIS_URL, { lazyConnect: true });
const pgPrefixes: string[] = [];
const redisPrefixes: string[] = [];
const opened: Store[] = [];
afterAll(async () => {
  for (const s of opened) await s.close().catch(() => undefined);
  for (const prefix of pgPrefixes) await dropPostgresStore(admin, { prefix }).catch(() => undefined);
  for (const prefix of redisPrefixes) await dropRedisStore(redis, { prefix }).catch(() => undefined);
  await admin.end();
  redis.disconnect();
});
const dir = tempDir('reads-first');
const inc = (v: { n: number } | null) => ({ n: (v?.n ?? 0) + 1 });

async function opening(url: string): Promise<Store> {
  return openWith(url, {});
}

async function openWith(url: string, options: OpenOptions): Promise<Store> {
  const s = await open(url, options);
  opened.push(s);
  return s;
}

interface Fresh {
  url: string;
  /** Drops the store from outside. */
  drop(): Promise<unknown>;
  /** Another writer's value at the key's revision, written from outside (a store restored, an operator's hand). */
  replaceAtSameRevision(key: string, value: unknown): Promise<void>;
  /** Records that the change log was pruned (trimmed) through `revision`, as the sweep does. */
  prunedThrough(revision: number): Promise<void>;
}
interface Backend {
  name: string;
  fresh(): Fresh;
  /** The server's port, and what a request of the guessed write of key `k` holds on the wire. */
  port: number;
  ownWriteMarkers: string[];
  /** Whether a store dropped under an open store object is met with DataLostError (Redis' incarnation marker). */
  dropIsLoss: boolean;
}
const backends: Backend[] = [
  {
    name: 'postgres',
    fresh() {
      const prefix = `rk_rf_${randomBytes(4).toString('hex')}_`;
      pgPrefixes.push(prefix);
      return {
        url: `${PG_URL}?prefix=${prefix}`,
        drop: () => dropPostgresStore(admin, { prefix }),
        async replaceAtSameRevision(key, value) {
          await admin.query(`UPDATE "public"."${prefix}kv" SET value = $2, writer = 'someone else' WHERE key = $1`, [key, Buffer.from(JSON.stringify(value))]);
        },
        async prunedThrough(revision) {
          await admin.query(`UPDATE "public"."${prefix}meta" SET pruned_through = $1`, [revision]);
        },
      };
    },
    dropIsLoss: false,
    port: 5432,
    // The lean statement's name (src/postgres/cas.ts): in its Parse and every Bind.
    ownWriteMarkers: ['put_own'],
  },
  {
    name: 'redis',
    fresh() {
      const prefix = `rkt_rf_${randomBytes(4).toString('hex')}`;
      redisPrefixes.push(prefix);
      return {
        url: `${REDIS_URL}?prefix=${prefix}`,
        drop: () => dropRedisStore(redis, { prefix }),
        async replaceAtSameRevision(key, value) {
          // A record is `rev,crev,at,exp,del,<writer length>:<writer><value>` (src/redis/scripts.ts, pack()).
          const rec = `rk:{${prefix}}:rec`;
          const packed = (await redis.hgetBuffer(rec, key))?.toString() ?? '';
          const head = /^(\d+,\d+,\d+,\d+,\d),/.exec(packed)?.[1];
          if (head === undefined) throw new Error(`no record of ${key} in ${rec}`);
          await redis.hset(rec, key, `${head},12:someone else${JSON.stringify(value)}`);
        },
        async prunedThrough(revision) {
          await redis.hset(`rk:{${prefix}}:meta`, 'trimmed', String(revision));
        },
      };
    },
    dropIsLoss: true,
    port: 6379,
    // The put script's key and mode arguments, as RESP bulk strings.
    ownWriteMarkers: ['$1\r\nk\r\n', '$3\r\nown\r\n'],
  },
];

/** How many reads and own-write puts an update() made: shows the guess was (or was not) taken. */
function counting(store: Store): { reads: number; own: number } {
  const counts = { reads: 0, own: 0 };
  const s = store as Store & UpdatableStore;
  const getRecord = s.getRecord.bind(s);
  s.getRecord = ((key: string) => (counts.reads++, getRecord(key))) as typeof s.getRecord;
  const own = s.putOnOwnWrite?.bind(s);
  if (own) s.putOnOwnWrite = (...args) => (counts.own++, own(...args));
  return counts;
}

/** The canary: the same update loop over a store whose own-write guard is the revision alone (0d9decb's). */
function revisionOnlyGuard(store: Store): UpdatableStore {
  const s = store as Store & UpdatableStore;
  return {
    backend: s.backend,
    capabilities: s.capabilities,
    getRecord: (key) => s.getRecord(key),
    history: (key, options) => s.history(key, options),
    put: (key, value, options) => s.put(key, value, options),
    checkValue: (value, key) => s.checkValue?.(value, key),
    copyValue: (value) => s.copyValue?.(value),
    putOnOwnWrite: (key: string, value: unknown, guard: PutOptions): Promise<Entry<unknown>> => s.put(key, value, guard),
    decodeOwnWrite: (bytes) => s.decodeOwnWrite?.(bytes),
  };
}

describe.each(backends)('update() builds on the key as it is, whatever this process wrote before: $name', (backend) => {
  it('reads nothing while it is the key\'s only writer, and reads again once another writer came in', async () => {
    const { url } = backend.fresh();
    const [a, b] = [await opening(url), await opening(url)];
    const counts = counting(a);
    for (let i = 0; i < 5; i++) await a.update('k', inc);
    expect(counts).toEqual({ reads: 1, own: 4 });
    await b.update('k', inc);
    expect((await a.update('k', inc))?.value).toEqual({ n: 7 });
    expect(counts).toEqual({ reads: 2, own: 5 });
  });

  it('the store dropped and created again under an open store object: another writer\'s value at the same revision', async () => {
    const { url, drop } = backend.fresh();
    const a = await opening(url);
    const first = await a.update('k', inc);
    await drop();
    const b = await opening(url);
    const theirs = await b.put('k', { n: 100 });
    expect(theirs.revision).toBe(first?.revision);
    if (backend.dropIsLoss) {
      await expect(a.update('k', inc)).rejects.toMatchObject({ code: 'ERR_DATA_LOST' });
      expect((await b.get('k'))?.value).toEqual({ n: 100 });
    } else {
      expect((await a.update('k', inc))?.value).toEqual({ n: 101 });
      expect((await b.get('k'))?.value).toEqual({ n: 101 });
    }
  });

  it('another writer\'s value at the very revision this object wrote: the writer token tells them apart', async () => {
    const fresh = backend.fresh();
    const a = await opening(fresh.url);
    await a.update('k', inc);
    await fresh.replaceAtSameRevision('k', { n: 100 });
    expect((await a.update('k', inc))?.value).toEqual({ n: 101 });
  });

  it('canary: guarded by the revision alone, the same sequence loses the other writer\'s value', async () => {
    const fresh = backend.fresh();
    const a = await opening(fresh.url);
    const canary = revisionOnlyGuard(a);
    await runUpdate(canary, 'k', inc);
    await fresh.replaceAtSameRevision('k', { n: 100 });
    expect((await runUpdate(canary, 'k', inc))?.value).toEqual({ n: 2 });
  });

  it('a mutation that would build an oversized value on the stale state is answered on the value as it is', async () => {
    const { url } = backend.fresh();
    const [a, b] = [await opening(url), await opening(url)];
    await a.update('job', () => ({ state: 'open' }));
    await b.put('job', { state: 'closed' });
    const answered = await a.update<{ state: string; pad?: string }>('job', (job) => (job?.state === 'open' ? { state: 'open', pad: 'x'.repeat(2 << 20) } : { state: 'reopened' }));
    expect(answered?.value).toEqual({ state: 'reopened' });
  });

  it('a SKIP or an error on the stale state is not the answer: the key is read and the mutation runs again', async () => {
    const { url } = backend.fresh();
    const [a, b] = [await opening(url), await opening(url)];
    await a.update('flag', () => ({ on: false }));
    await b.put('flag', { on: true });
    // Turn it on unless it is on: on the guess (off) it writes, on the real value (on) it SKIPs.
    const skipped = await a.update<{ on: boolean }>('flag', (f) => (f?.on ? SKIP : { on: true }));
    expect(skipped?.value).toEqual({ on: true });
    await a.update('gate', () => ({ open: true }));
    await b.put('gate', { open: false });
    // Throws on the kept value (open), writes on the real one (closed).
    const opened = await a.update<{ open: boolean; by?: string }>('gate', (g) => {
      if (g?.open) throw new Error('already open');
      return { open: true, by: 'a' };
    });
    expect(opened?.value).toEqual({ open: true, by: 'a' });
  });

  it('what the caller does to its answer, or a mutation to its argument, does not change what the next update() starts from', async () => {
    const { url } = backend.fresh();
    const [a, b] = [await opening(url), await opening(url)];
    const answered = await a.update('k', inc);
    (answered?.value as { n: number }).n = 999;
    expect((await a.update('k', inc))?.value).toEqual({ n: 2 });
    await b.put('k', { n: 50 });
    // Changes its argument in place: on the guess ({n: 2}) and again on the value read ({n: 50}).
    expect((await a.update<{ n: number }>('k', (v) => { (v as { n: number }).n += 1; return v; }))?.value).toEqual({ n: 51 });
    expect((await a.update('k', inc))?.value).toEqual({ n: 52 });
    expect((await b.get('k'))?.value).toEqual({ n: 52 });
  });

  it('a mutation that changes its argument and then throws leaves nothing of it for the next update()', async () => {
    const { url } = backend.fresh();
    const a = await opening(url);
    await a.update('k', inc);
    await expect(a.update<{ n: number }>('k', (v) => {
      (v as { n: number }).n = 999;
      throw new Error('changed my mind');
    })).rejects.toThrow('changed my mind');
    expect((await a.update('k', inc))?.value).toEqual({ n: 2 });
  });

  it('a codec that cannot encode what it decodes: the committed update() is answered with its value (review: ValidationError after the commit)', async () => {
    const { url } = backend.fresh();
    const stamped: Codec = {
      name: 'stamped',
      encode(v) {
        (v as { schema?: number }).schema = 2;
        return Buffer.from(JSON.stringify(v));
      },
      decode: (b) => Object.freeze(JSON.parse(Buffer.from(b).toString())),
    };
    const a = await openWith(url, { codec: stamped });
    const answered = await a.update('doc', () => ({ title: 'hello' }));
    expect(answered?.value).toEqual({ title: 'hello', schema: 2 });
    expect(await a.get('doc')).toMatchObject({ value: { title: 'hello', schema: 2 }, revision: answered?.revision });
  });

  it('an async mutation is not run on a guess: run once, within its deadline, after another writer came in (review: run twice, deadline missed)', async () => {
    const { url } = backend.fresh();
    const [a, b] = [await opening(url), await opening(url)];
    await a.update('k', inc);
    await b.update('k', inc);
    let calls = 0;
    const slow = async (v: { n: number } | undefined) => {
      calls++;
      await new Promise((r) => setTimeout(r, 300));
      return inc(v ?? null);
    };
    expect((await a.update('k', slow, { deadlineMs: 5_000 }))?.value).toEqual({ n: 3 });
    expect(calls).toBe(1);
    // Nor is the write of an async mutation kept: the next update() reads.
    const counts = counting(a);
    expect((await a.update('k', inc))?.value).toEqual({ n: 4 });
    expect(counts).toEqual({ reads: 1, own: 0 });
  });

  it('a value over 16 KiB is not kept (the keeping is bounded): the next update() reads', async () => {
    const { url } = backend.fresh();
    const a = await opening(url);
    const counts = counting(a);
    const big = 'x'.repeat(OWN_WRITE_BYTES);
    await a.update('big', () => ({ big }));
    expect((await a.update<{ big: string; n?: number }>('big', (v) => ({ big: v?.big ?? '', n: 1 })))?.value.n).toBe(1);
    expect(counts).toEqual({ reads: 2, own: 0 });
  });

  it('the guessed write loses its acknowledgement after other writers took the key past its history: found absent, run again once (review: OutcomeUnknownError)', async () => {
    const { url } = backend.fresh();
    const proxy = await startCutProxy(backend.port);
    try {
      const a = await opening(url.replace(`:${backend.port}/`, `:${proxy.port}/`));
      const b = await opening(url);
      await a.update('k', inc);
      for (let i = 0; i < 70; i++) await b.update('k', inc);
      let cut = false;
      void proxy.loseReplyTo(backend.ownWriteMarkers).then(() => (cut = true));
      expect((await a.update('k', inc, { deadlineMs: 20_000 }))?.value).toEqual({ n: 72 });
      expect(cut).toBe(true);
      expect((await b.get('k'))?.value).toEqual({ n: 72 });
    } finally {
      await proxy.close();
    }
  });

  it('findWrite: the write of a token above a revision, from the whole change log; absent only when the log is known whole above it', async () => {
    const fresh = backend.fresh();
    const { url } = fresh;
    const a = (await opening(url)) as Store & FindsWrites;
    const first = await a.put('k', 1, { writer: 'w-first' });
    for (let i = 0; i < 70; i++) await a.put('k', i, { writer: `w-${i}` });
    const mine = await a.put('k', 'mine', { writer: 'w-mine' });
    for (let i = 0; i < 70; i++) await a.put('k', i, { writer: `w-after-${i}` });
    expect((await a.history('k', { limit: 10_000 })).some((r) => r.writer === 'w-mine')).toBe(false);
    expect(await a.findWrite?.('k', 'w-mine', first.revision)).toMatchObject({ revision: mine.revision, value: 'mine', writer: 'w-mine' });
    expect(await a.findWrite?.('k', 'w-nobody', first.revision)).toBe('absent');
    // Another key's write with the token is not this key's.
    await a.put('other', 1, { writer: 'w-elsewhere' });
    expect(await a.findWrite?.('k', 'w-elsewhere', first.revision)).toBe('absent');
    // Found past more than one page of the log (Redis searches it 1,000 changes a script).
    for (let i = 0; i < 25; i++) await Promise.all(Array.from({ length: 100 }, (_, j) => a.put(`filler/${i}/${j}`, j)));
    const late = await a.put('k', 'late', { writer: 'w-late' });
    expect(await a.findWrite?.('k', 'w-late', first.revision)).toMatchObject({ revision: late.revision, value: 'late' });
    expect(await a.findWrite?.('k', 'w-nobody', first.revision)).toBe('absent');
    // Changes above the revision may have been pruned: a write not found may be among them.
    await fresh.prunedThrough(first.revision + 1);
    expect(await a.findWrite?.('k', 'w-nobody', first.revision)).toBeUndefined();
  });

  it('a mutation without a prototype is run as any other (review: a plain TypeError)', async () => {
    const { url } = backend.fresh();
    const a = await opening(url);
    const bare = (v: { n: number } | undefined) => inc(v ?? null);
    Object.setPrototypeOf(bare, null);
    await a.update('k', inc);
    expect((await a.update('k', bare))?.value).toEqual({ n: 2 });
  });

  it('a put() with a writer token leaves no second copy of its value beside the entry it answers (review: 50 MiB for 200 kept entries)', async () => {
    const { url } = backend.fresh();
    const a = await opening(url);
    const entry = await a.put('k', { big: 'x'.repeat(1000) }, { writer: 'w-kept-by-caller' });
    expect(takeWrittenBytes(entry)).toBeUndefined();
  });

  it('several update()s of the key at once, not combined: one starts from the kept write, the others read', async () => {
    const { url } = backend.fresh();
    const a = await opening(url);
    await a.update('k', inc);
    const counts = counting(a);
    const answers = await Promise.all(Array.from({ length: 8 }, () => a.update('k', inc, { combine: false })));
    expect(answers.map((e) => e?.value.n).sort((x, y) => (x ?? 0) - (y ?? 0))).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    expect(counts.own).toBe(1);
  });

  it('a key other writers keep changing is guessed on less and less: 8, then 16 reads first after each miss', async () => {
    const { url } = backend.fresh();
    const [a, b] = [await opening(url), await opening(url)];
    await a.update('k', inc);
    const counts = counting(a);
    const missOnce = async () => {
      await b.update('k', inc);
      const own = counts.own;
      await a.update('k', inc);
      expect(counts.own).toBe(own + 1);
    };
    const readsFor = async (n: number) => {
      const [reads, own] = [counts.reads, counts.own];
      for (let i = 0; i < n; i++) await a.update('k', inc);
      return { reads: counts.reads - reads, own: counts.own - own };
    };
    await missOnce();
    expect(await readsFor(8)).toEqual({ reads: 8, own: 0 });
    await missOnce();
    expect(await readsFor(16)).toEqual({ reads: 16, own: 0 });
    // Then a guess that lands: misses start over.
    expect(await readsFor(1)).toEqual({ reads: 0, own: 1 });
    await missOnce();
    expect(await readsFor(9)).toEqual({ reads: 8, own: 1 });
  });

  it('a key written with a TTL is read again: once expired it is absent', async () => {
    const { url } = backend.fresh();
    const a = await opening(url);
    const counts = counting(a);
    await a.update('t', () => 'first', { ttlMs: 150 });
    await new Promise((r) => setTimeout(r, 400));
    expect((await a.update<string>('t', (v) => (v === undefined ? 'fresh' : `stale ${v}`)))?.value).toBe('fresh');
    expect(counts.own).toBe(0);
  });

  it('a put() or delete() of the key by the same object between two update()s: the next one reads', async () => {
    const { url } = backend.fresh();
    const a = await opening(url);
    const counts = counting(a);
    await a.update('k', inc);
    await a.put('k', { n: 10 });
    expect((await a.update('k', inc))?.value).toEqual({ n: 11 });
    await a.delete('k');
    expect((await a.update('k', inc))?.value).toEqual({ n: 1 });
    expect(counts).toEqual({ reads: 3, own: 0 });
  });
});

describe('update() builds on the key as it is: the file store reads every time', () => {
  it('file: the file removed and the store created again by another process', async () => {
    const file = join(dir, `${uniqueName('rf')}.json`);
    const a = await opening(`file:${file}`);
    await a.update('k', inc);
    rmSync(file, { force: true });
    const b = await opening(`file:${file}`);
    await b.put('k', { n: 100 });
    expect((await a.update('k', inc))?.value).toEqual({ n: 101 });
  });
});
