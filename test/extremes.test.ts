/**
 * Every backend at its limits (issue "Correctness, round 2", blind spot
 * "Extremes"), CI size; bench/soak/extremes.mjs runs the large sizes.
 *
 * - values exactly at the value limit (multi-byte UTF-8, JSON escapes) are
 *   accepted and read back identical; one byte over is TooLargeError with
 *   nothing written (put, update, atomic);
 * - many limit-sized values at once: list pages (paged and one page of all
 *   of them), a watch that delivers all of them, one atomic commit carrying
 *   many of them — an answer or a typed error, never a crash, and the store
 *   reads back whole after a reopen;
 * - keys of exactly 1024 UTF-8 bytes (multi-byte, surrogate pairs, 1024
 *   `/`, characters NATS subjects, URLs, LIKE and Redis globs must encode)
 *   through put/get/list/watch/history/atomic/delete; one byte over is
 *   InvalidKeyError everywhere a key or prefix is taken;
 * - 100,000 keys listed by paging (every key once, in byte order) and
 *   watched from revision 0 and from a revision in the middle (every change
 *   once, in order);
 * - the file backend up to its file-length limit (scaled down by maxFileLength).
 *
 * Every outcome is an answer or a RevkitError (vitest fails the run on an
 * unhandled rejection); a plain TypeError/RangeError fails the test.
 *
 * CI sizes (about 1–2 minutes on 2 cores; each still crosses every page
 * size), overridden by the environment (bench/soak/extremes.mjs runs this
 * file at 200 × 1 MiB and 100,000 keys):
 * REVKIT_EXTREMES_VALUES (values at 1 MiB, 8; over HTTP REVKIT_EXTREMES_HTTP_VALUES, 8),
 * REVKIT_EXTREMES_BULK (1 MiB values in one atomic commit, 24),
 * REVKIT_EXTREMES_SMALL_VALUES (values at a 16 KiB limit, 1100),
 * REVKIT_EXTREMES_KEYS (6,000; NATS REVKIT_EXTREMES_NATS_KEYS, 5,000),
 * REVKIT_EXTREMES_BACKENDS (a comma list of backend names).
 */
import { randomBytes } from 'node:crypto';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import pg from 'pg';
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AsyncQueue, DEFAULT_MAX_VALUE_BYTES, HistoryGoneError, InvalidKeyError, RevkitError, TooLargeError, compareKeys,
  type Entry, type Store, type WatchEvent, type WatchOptions,
} from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { FileStore } from '../src/file/index.js';
import { PostgresStore, dropPostgresStore } from '../src/postgres/index.js';
import { RedisStore, dropRedisStore } from '../src/redis/index.js';
import { NatsStore } from '../src/nats/index.js';
import { createServer, HttpStore, type RevkitServer } from '../src/server/index.js';
import { tempDir } from './helpers.js';

const MiB = 1024 * 1024;
const LIMIT = DEFAULT_MAX_VALUE_BYTES;
/** Values at the default 1 MiB limit (the soak: 200); over HTTP at most HTTP_MANY (each costs ~0.5 s of CPU through the server and SSE). */
const MANY = Number(process.env.REVKIT_EXTREMES_VALUES ?? 8);
const HTTP_MANY = Number(process.env.REVKIT_EXTREMES_HTTP_VALUES ?? 8);
/** Limit-sized values in one atomic commit. */
const BULK = Number(process.env.REVKIT_EXTREMES_BULK ?? 24);
/** A small value limit, so that many values at it cross every list and watch page (500, 1000 rows) cheaply. */
const SMALL_LIMIT = 16 * 1024;
const SMALL_MANY = Number(process.env.REVKIT_EXTREMES_SMALL_VALUES ?? 1100);
/** Keys listed and watched (the soak: 100,000 and 1,000,000). */
const KEYS = Number(process.env.REVKIT_EXTREMES_KEYS ?? 6_000);
/**
 * NATS lists a page by reading the last message of every key under the
 * prefix (it has no key index), so listing N keys by pages costs N²/page:
 * CI lists fewer there.
 */
const NATS_KEYS = Number(process.env.REVKIT_EXTREMES_NATS_KEYS ?? Math.min(KEYS, 5000));
const ONLY = process.env.REVKIT_EXTREMES_BACKENDS?.split(',').filter(Boolean);

const PG_URL = process.env.REVKIT_PG_URL ?? `postgres://${encodeURIComponent(process.env.PGUSER || process.env.USER || userInfo().username)}@127.0.0.1:5432/test`;
const REDIS_URL = process.env.REVKIT_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const NATS_URL = process.env.REVKIT_NATS_URL ?? 'nats://127.0.0.1:4222';
const ADMIN = 'extremes-admin-token-0123456789';
/** NATS counts the headers and the subject against max_payload (1 MiB here): its stores run with a limit that leaves room for them. */
const NATS_LIMIT = LIMIT - 8 * 1024;

const dir = tempDir('extremes');
let serial = 0;
const uid = () => `${process.pid.toString(36)}_${Date.now().toString(36)}_${(serial++).toString(36)}`;

// ------------------------------------------------------------------ backends

interface Opened {
  store: Store;
  /** Closes the store and opens the same data again (memory: the same store). */
  reopen(): Promise<Store>;
  /** Closes and deletes everything it made (tables, keys, bucket, files). */
  drop(): Promise<void>;
}

interface MakeOptions {
  /** The store's value limit (default 1 MiB; NATS: at most NATS_LIMIT). */
  maxValueBytes?: number;
  /** Changes a file store keeps for watch (default: its own). */
  changeLogSize?: number;
  maxFileLength?: number;
}

interface Backend {
  name: string;
  /** The value limit the stores it makes run with by default. */
  limit: number;
  /** The value limit of a store made with { maxValueBytes }. */
  limitFor(maxValueBytes?: number): number;
  atomic: boolean;
  /** Largest atomic commit it takes (ops), for bulk loads. */
  atomicOps: number;
  /** Bytes of values one atomic commit of a bulk load carries (HTTP: under the body limit). */
  atomicBytes: number;
  make(options?: MakeOptions): Promise<Opened>;
}

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  // Side by side: one slow drop does not keep the others from running within the hook's time.
  await Promise.all(cleanups.splice(0).map((c) => c().catch(() => undefined)));
}, 120_000);

function opened(first: Store, open: () => Promise<Store>, remove: () => Promise<void>): Opened {
  let current = first;
  let dropped = false;
  const o: Opened = {
    get store() {
      return current;
    },
    async reopen() {
      await current.close();
      current = await open();
      return current;
    },
    async drop() {
      if (dropped) return;
      dropped = true;
      // A store whose close() hangs (a test that timed out mid-read) must not keep its data on the server.
      await Promise.race([current.close().catch(() => undefined), new Promise((r) => setTimeout(r, 10_000).unref())]);
      await remove();
    },
  } as Opened;
  cleanups.push(() => o.drop());
  return o;
}

const backends: Backend[] = [
  {
    name: 'memory', limit: LIMIT, limitFor: (m = LIMIT) => m, atomic: true, atomicOps: 1000, atomicBytes: 64 * MiB,
    async make(options = {}) {
      const s = new MemoryStore({ maxValueBytes: options.maxValueBytes ?? LIMIT, changeLogSize: Math.max(100_000, KEYS + 1000) });
      // Nothing to reopen: read back from the same store.
      return { store: s, reopen: async () => s, drop: () => s.close() };
    },
  },
  {
    name: 'sqlite', limit: LIMIT, limitFor: (m = LIMIT) => m, atomic: true, atomicOps: 1000, atomicBytes: 64 * MiB,
    async make(options = {}) {
      const path = join(dir, `s_${uid()}.db`);
      const open = async () => new SqliteStore(path, { maxValueBytes: options.maxValueBytes ?? LIMIT });
      return opened(await open(), open, async () => {
        for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
      });
    },
  },
  {
    name: 'file', limit: LIMIT, limitFor: (m = LIMIT) => m, atomic: true, atomicOps: 1000, atomicBytes: 256 * MiB,
    async make(options = {}) {
      const path = join(dir, `f_${uid()}.json`);
      const open = async () => new FileStore(path, { fsync: false, ...options });
      return opened(await open(), open, async () => {
        rmSync(path, { force: true });
        rmSync(`${path}.lock`, { recursive: true, force: true });
      });
    },
  },
  {
    name: 'postgres', limit: LIMIT, limitFor: (m = LIMIT) => m, atomic: true, atomicOps: 1000, atomicBytes: 64 * MiB,
    async make(options = {}) {
      const prefix = `rkx_${uid()}_`;
      const open = () => PostgresStore.fromUrl(PG_URL, { prefix, maxValueBytes: options.maxValueBytes ?? LIMIT });
      return opened(await open(), open, async () => {
        const pool = new pg.Pool({ connectionString: PG_URL, max: 1 });
        pool.on('error', () => undefined);
        try {
          await dropPostgresStore(pool, { prefix });
        } finally {
          await pool.end();
        }
      });
    },
  },
  {
    name: 'redis', limit: LIMIT, limitFor: (m = LIMIT) => m, atomic: true, atomicOps: 1000, atomicBytes: 64 * MiB,
    async make(options = {}) {
      const prefix = `rkx_${uid()}`;
      const open = () => RedisStore.fromUrl(REDIS_URL, { prefix, maxValueBytes: options.maxValueBytes ?? LIMIT });
      return opened(await open(), open, async () => {
        const client = new Redis(REDIS_URL);
        try {
          await dropRedisStore(client, { prefix });
        } finally {
          client.disconnect();
        }
      });
    },
  },
  {
    name: 'nats', limit: NATS_LIMIT, limitFor: (m = NATS_LIMIT) => Math.min(m, NATS_LIMIT), atomic: false, atomicOps: 0, atomicBytes: 0,
    async make(options = {}) {
      const bucket = `rkx_${uid()}`;
      const open = () => NatsStore.fromUrl(`${NATS_URL}?bucket=${bucket}`, { maxValueBytes: Math.min(options.maxValueBytes ?? NATS_LIMIT, NATS_LIMIT) });
      return opened(await open(), open, () => dropBucket(bucket));
    },
  },
  {
    // `revkit serve` in process, over SQLite, through HttpStore.
    name: 'http', limit: LIMIT, limitFor: (m = LIMIT) => m, atomic: true, atomicOps: 1000, atomicBytes: 1 * MiB,
    async make(options = {}) {
      const path = join(dir, `h_${uid()}.db`);
      let server: RevkitServer | undefined;
      const open = async () => {
        server = await createServer({ store: `sqlite:${path}`, adminToken: ADMIN, limits: { maxValueBytes: options.maxValueBytes ?? LIMIT } });
        const url = await server.listen({ host: '127.0.0.1', port: 0 });
        const client = await HttpStore.fromUrl(`${url}?token=${ADMIN}`);
        const close = client.close.bind(client);
        const own = server;
        client.close = async () => {
          await close();
          await own.close();
        };
        return client;
      };
      return opened(await open(), open, async () => {
        await server?.close().catch(() => undefined);
        for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
      });
    },
  },
];

async function dropBucket(bucket: string): Promise<void> {
  const nc = await connect({ servers: NATS_URL.replace(/^nats:\/\//, '') });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(`KV_${bucket}`).catch(() => undefined);
  } finally {
    await nc.close();
  }
}

const selected = backends.filter((b) => !ONLY || ONLY.includes(b.name));

// ------------------------------------------------------------------ values

/** Random base64 text (one byte per character in UTF-8 and in JSON): the body of the big values. */
const BASE = randomBytes(Math.ceil((LIMIT + 8192) * 0.75)).toString('base64');

/** JSON-encoded size of a value. */
const encodedBytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v), 'utf8');

/** The i-th limit-sized value: a string whose JSON encoding is exactly `bytes` bytes; distinct for every i. */
function bigValue(i: number, bytes: number): string {
  const head = `${i}:`;
  const offset = (i * 7919) % 4096;
  const v = head + BASE.slice(offset, offset + bytes - 2 - head.length);
  return v;
}

/**
 * A string whose JSON encoding is exactly `bytes` bytes, made of characters
 * of every UTF-8 length and of characters JSON escapes (", \, newline,
 * \u0001 → 6 bytes), so a backend that counts characters instead of encoded
 * bytes, or re-encodes, is caught.
 */
function mixedValue(bytes: number, seed = 0): string {
  // [text, its JSON-encoded size]
  const pieces: Array<[string, number]> = [['a', 1], ['é', 2], ['€', 3], ['😀', 4], ['"', 2], ['\\', 2], ['\n', 2], ['\u0001', 6], ['\u2028', 3], ['<', 1]];
  const parts: string[] = [];
  let size = 2; // the quotes
  for (let i = seed; ; i++) {
    const [text, n] = pieces[i % pieces.length] as [string, number];
    if (size + n > bytes - 8) break;
    parts.push(text);
    size += n;
  }
  while (size < bytes) {
    parts.push('a');
    size++;
  }
  const v = parts.join('');
  expect(encodedBytes(v)).toBe(bytes);
  return v;
}

function isTyped(err: unknown): boolean {
  return RevkitError.is(err);
}

/** The outcome of a call: its value, or the error it threw — which must be a RevkitError. */
async function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: RevkitError }> {
  try {
    return { ok: true, value: await p };
  } catch (err) {
    expect(isTyped(err), `a plain error instead of a RevkitError: ${String((err as Error)?.stack ?? err)}`).toBe(true);
    return { ok: false, error: err as RevkitError };
  }
}

async function expectError<E extends RevkitError>(p: Promise<unknown>, kind: { is(e: unknown): e is E; name: string }): Promise<E> {
  const r = await settle(p);
  expect(r.ok, `expected ${kind.name}, got an answer`).toBe(false);
  const err = (r as { error: RevkitError }).error;
  expect(kind.is(err), `expected ${kind.name}, got ${String(err)}`).toBe(true);
  return err as E;
}

/** Every live entry under `prefix`, by pages of `limit`; checks that pages continue where the previous one ended. */
async function listAll(store: Store, prefix: string, limit?: number, visit?: (e: Entry) => void): Promise<{ keys: string[]; pages: number }> {
  const keys: string[] = [];
  let after: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await store.list({ prefix, ...(limit !== undefined ? { limit } : {}), ...(after !== undefined ? { after } : {}) });
    pages++;
    for (const e of page.entries) {
      keys.push(e.key);
      visit?.(e);
    }
    if (page.cursor === undefined) break;
    expect(page.entries.length, 'a page with a cursor carries entries').toBeGreaterThan(0);
    expect(page.cursor).toBe(page.entries[page.entries.length - 1]?.key);
    after = page.cursor;
  }
  return { keys, pages };
}

/**
 * Reads a watch until it has delivered `count` events, or fails after
 * `timeoutMs` without progress (a liveness bound, not a verdict on speed).
 */
async function collect(store: Store, options: WatchOptions, count: number, timeoutMs: number, visit?: (e: WatchEvent, i: number) => void): Promise<number> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => ac.abort(), timeoutMs);
  };
  arm();
  let n = 0;
  try {
    for await (const event of store.watch({ ...options, signal: ac.signal })) {
      visit?.(event, n);
      n++;
      if (n >= count) break;
      if (n % 64 === 0) arm();
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return n;
}

/** Milliseconds per named phase, for the log line a test prints (figures, never verdicts). */
function phases(): { mark(name: string): void; toString(): string } {
  const out: string[] = [];
  let t = Date.now();
  return {
    mark(name) {
      const now = Date.now();
      out.push(`${name} ${now - t} ms`);
      t = now;
    },
    toString: () => out.join(', '),
  };
}

/** Keys in the order every backend lists them: UTF-8 bytes. */
const byBytes = (keys: string[]) => [...keys].sort(compareKeys);

const pad = (i: number, w = 6) => String(i).padStart(w, '0');

// ------------------------------------------------------------------ keys at the limit

/** Keys of exactly 1024 UTF-8 bytes. */
function limitKeys(): Array<[string, string]> {
  const specials = '.*>$= %?#&+[]\\_\'"<>{}|^`~!@;:,';
  // `base`, then `ch` as often as it fits in 1024 bytes, then 'a' up to exactly 1024.
  const fill = (base: string, ch: string) => {
    const room = 1024 - Buffer.byteLength(base);
    const n = Math.floor(room / Buffer.byteLength(ch));
    return base + ch.repeat(n) + 'a'.repeat(room - n * Buffer.byteLength(ch));
  };
  const keys: Array<[string, string]> = [
    ['3-byte €, levels', `k/${'€'.repeat(340)}bb`],
    ['4-byte surrogate pairs', '😀'.repeat(256)],
    ['2-byte é', `k/${'é'.repeat(511)}`],
    ['1024 slashes', '/'.repeat(1024)],
    ['512 one-char levels', 'x/'.repeat(512)],
    ['ends with /', `k/${'a'.repeat(1021)}/`],
    ['NATS/URL/LIKE/glob specials', fill(`k/${specials}/${specials}/`, '.')],
    ['= levels (NATS encoding marker)', fill('k/=/==/=a/', '=')],
    ['percent and dots', fill('k/%2F/../', '%')],
    ['mixed widths across levels', fill(`k/é/€/😀/${'ab/'.repeat(10)}`, '😀')],
  ];
  for (const [name, key] of keys) expect(Buffer.byteLength(key, 'utf8'), name).toBe(1024);
  return keys;
}

/** Keys of 1025 bytes: one byte over, several ways. */
function overKeys(): Array<[string, string]> {
  const keys: Array<[string, string]> = [
    ['1025 ASCII', 'a'.repeat(1025)],
    ['€ one byte over', `k/${'€'.repeat(340)}bbb`],
    ['a 4-byte character crossing the limit', `${'a'.repeat(1021)}😀`],
    ['a 2-byte character crossing the limit', `${'a'.repeat(1023)}é`],
    ['1025 slashes', '/'.repeat(1025)],
  ];
  for (const [name, key] of keys) expect(Buffer.byteLength(key, 'utf8'), name).toBe(1025);
  return keys;
}

// ------------------------------------------------------------------ tests

describe.each(selected)('extremes: $name', (b) => {
  it('a value exactly at the limit is stored and read back identical; one byte over is TooLargeError and writes nothing (put, update, atomic)', async () => {
    const o = await b.make();
    try {
      const s = o.store;
      const exact = mixedValue(b.limit, 3);
      const over = mixedValue(b.limit + 1, 3);
      const plainOver = bigValue(1, b.limit + 1);
      const put = await s.put('lim/exact', exact);
      expect((await s.get('lim/exact'))?.value === exact).toBe(true);
      const plain = await s.put('lim/plain', bigValue(0, b.limit));
      expect(plain.revision).toBeGreaterThan(put.revision);

      const refused = await expectError(s.put('lim/over', over), TooLargeError);
      expect(refused.limit).toBeLessThanOrEqual(Math.max(b.limit, LIMIT));
      await expectError(s.put('lim/over', plainOver), TooLargeError);
      expect(await s.getRecord('lim/over')).toBeNull();
      // Over an existing value: it stays as it was.
      await expectError(s.put('lim/exact', over, { ifRevision: put.revision }), TooLargeError);
      await expectError(s.update<string>('lim/exact', () => over), TooLargeError);
      const still = await s.get<string>('lim/exact');
      expect(still?.revision).toBe(put.revision);
      expect(still?.value === exact).toBe(true);
      if (b.atomic) {
        await expectError(s.atomic().set('lim/a', 'small').set('lim/over', over).commit(), TooLargeError);
        expect(await s.getRecord('lim/a')).toBeNull();
        expect(await s.getRecord('lim/over')).toBeNull();
        const c = await s.atomic().check('lim/b', null).set('lim/b', exact).commit();
        expect((await s.get('lim/b'))?.revision).toBe(c.revision);
      }
      // history and a watch carry the value whole too.
      const h = await s.history<string>('lim/exact');
      expect(h[0]?.revision).toBe(put.revision);
      expect((h[0] as Entry<string>).value === exact).toBe(true);
      const seen: WatchEvent[] = [];
      await collect(s, { key: 'lim/exact', fromRevision: put.revision - 1 }, 1, 30_000, (e) => seen.push(e));
      expect(seen[0]?.type).toBe('put');
      expect((seen[0] as { entry: Entry }).entry.value === exact).toBe(true);

      const again = await o.reopen();
      expect((await again.get('lim/exact'))?.value === exact).toBe(true);
      expect((await again.get('lim/plain'))?.value === bigValue(0, b.limit)).toBe(true);
      expect(await again.getRecord('lim/over')).toBeNull();
      if (b.atomic) {
        expect((await again.get('lim/b'))?.value === exact).toBe(true);
        expect(await again.getRecord('lim/a')).toBeNull();
      }
    } finally {
      await o.drop();
    }
  }, 120_000);

  /**
   * `n` values exactly at a store's value limit of `maxValueBytes`: loaded by
   * atomic commits (or puts side by side), listed by the default pages, by
   * pages of a tenth and in one page of all of them, watched from before the
   * load, then one atomic commit of `m` more; reopened and read back.
   */
  const manyValues = async (maxValueBytes: number, n: number, m: number) => {
    const o = await b.make({ maxValueBytes });
    const limit = b.limitFor(maxValueBytes);
    try {
      let s = o.store;
      const key = (i: number) => `many/${pad(i, 5)}`;
      const time = phases();
      const marker = await s.put('marker', 0);
      // Load: atomic commits where they carry several values, else puts side by side.
      const perCommit = b.atomic ? Math.min(b.atomicOps, Math.max(1, Math.floor(b.atomicBytes / limit) - 1)) : 1;
      if (perCommit > 1) {
        for (let i = 0; i < n; i += perCommit) {
          const batch = s.atomic();
          for (let j = i; j < Math.min(n, i + perCommit); j++) batch.set(key(j), bigValue(j, limit));
          await batch.commit();
        }
      } else {
        const width = limit > 64 * 1024 ? 4 : 32;
        for (let i = 0; i < n; i += width) {
          await Promise.all(Array.from({ length: Math.min(width, n - i) }, (_, d) => s.put(key(i + d), bigValue(i + d, limit))));
        }
      }
      time.mark('load');
      const checkEntry = (e: { key: string; value: unknown }) => {
        const i = Number(e.key.slice('many/'.length));
        expect(e.key).toBe(key(i));
        if (e.value !== bigValue(i, limit)) expect.fail(`value of ${e.key} differs (${String(e.value).length} characters)`);
      };
      const expected = Array.from({ length: n }, (_, i) => key(i));

      // Default pages, pages of a tenth, and one page of all of them (an answer or a typed error).
      expect((await listAll(s, 'many/', undefined, checkEntry)).keys).toEqual(expected);
      const tenth = Math.max(1, Math.ceil(n / 10));
      const small = await listAll(s, 'many/', tenth, checkEntry);
      expect(small.keys).toEqual(expected);
      expect(small.pages).toBe(Math.ceil(n / tenth));
      // (A server clamps a page to its maxPageSize, 1000 by default, and says where to go on.)
      const one = await settle(s.list({ prefix: 'many/', limit: 10_000 }));
      if (one.ok) {
        const got = one.value.entries.map((e) => e.key);
        expect(got).toEqual(expected.slice(0, got.length));
        expect(got.length === n ? undefined : one.value.cursor).toBe(got.length === n ? one.value.cursor : got[got.length - 1]);
        if (b.name !== 'http') expect(got.length).toBe(n);
        for (const e of one.value.entries) checkEntry(e);
      }
      time.mark(`lists${one.ok ? '' : ` (one page: ${one.error.code})`}`);

      // A watch from before the load delivers every value once, in revision order.
      let last = 0;
      const got: string[] = [];
      const delivered = await collect(s, { prefix: 'many/', fromRevision: marker.revision }, n, 60_000, (e) => {
        expect(e.type).toBe('put');
        expect(e.revision).toBeGreaterThanOrEqual(last);
        last = e.revision;
        got.push(e.key);
        checkEntry((e as { entry: Entry }).entry);
      });
      expect(delivered).toBe(n);
      // Puts side by side commit in any order: each key once.
      expect(perCommit > 1 ? got : [...got].sort()).toEqual(expected);
      time.mark('watch');

      // One atomic commit of many limit-sized values: an answer (all of them there) or a typed error (none).
      const bulkKey = (i: number) => `bulk/${pad(i, 4)}`;
      if (b.atomic) {
        const batch = s.atomic();
        for (let i = 0; i < m; i++) batch.set(bulkKey(i), bigValue(100_000 + i, limit));
        const r = await settle(batch.commit());
        const present = await listAll(s, 'bulk/', undefined, (e) => {
          if (e.value !== bigValue(100_000 + Number(e.key.slice(5)), limit)) expect.fail(`value of ${e.key} differs`);
          if (r.ok) expect(e.revision).toBe(r.value.revision);
        });
        if (r.ok) expect(present.keys.length).toBe(m);
        else {
          expect(present.keys, `after ${r.error.code} some writes are there`).toEqual([]);
          // Over HTTP the body limit (2 MiB) refuses it before sending.
          if (b.name === 'http') expect(TooLargeError.is(r.error), String(r.error)).toBe(true);
        }
        time.mark(`atomic ${m} x ${limit} B (${r.ok ? 'committed' : r.error.code})`);
      }

      // Reopened: everything reads back identical.
      s = await o.reopen();
      expect((await listAll(s, 'many/', undefined, checkEntry)).keys).toEqual(expected);
      for (const i of [0, Math.floor(n / 2), n - 1]) checkEntry((await s.get(key(i))) as Entry);
      time.mark('reopen and list');
      console.log(`[extremes] ${b.name}: ${n} values of ${limit} B: ${time}`);
    } finally {
      await o.drop();
    }
  };

  it(`${MANY} values at the default 1 MiB limit: paged and one-page lists, a watch of all of them and an atomic commit of ${BULK} more answer whole, and read back after a reopen`, () => manyValues(LIMIT, b.name === 'http' ? Math.min(MANY, HTTP_MANY) : MANY, BULK), 60_000 + MANY * 1500);

  it(`${SMALL_MANY} values at a ${SMALL_LIMIT / 1024} KiB limit: lists, watch pages and an atomic commit of 1000 cross every page size`, () => manyValues(SMALL_LIMIT, SMALL_MANY, 1000), 120_000);

  it('keys of exactly 1024 UTF-8 bytes work everywhere a key is taken; one byte over is InvalidKeyError', async () => {
    const o = await b.make();
    try {
      let s = o.store;
      const keys = limitKeys();
      const start = await s.put('start', 0);
      const revs = new Map<string, number>();
      for (const [name, k] of keys) {
        const e = await s.put(k, { name, k });
        expect(e.key, name).toBe(k);
        revs.set(k, e.revision);
        const got = await s.get<{ k: string }>(k);
        expect(got?.key, name).toBe(k);
        expect(got?.value.k, name).toBe(k);
        expect((await s.history(k))[0]?.key, name).toBe(k);
        // The key as its own prefix: exactly itself (no other key of the set starts with it).
        const own = await s.list({ prefix: k });
        expect(own.entries.map((x) => x.key), name).toEqual(keys.map(([, x]) => x).filter((x) => x.startsWith(k) && revs.has(x)));
        // A prefix ending in the middle of the key, and at a level boundary.
        const points = Array.from(k);
        const cut = points.slice(0, Math.floor(points.length / 2)).join('');
        expect((await s.list({ prefix: cut })).entries.map((x) => x.key), name).toContain(k);
        const level = k.lastIndexOf('/', k.length - 2);
        if (level > 0) expect((await s.list({ prefix: k.slice(0, level + 1) })).entries.map((x) => x.key), name).toContain(k);
        // Listing after the key: it is not repeated.
        const afterIt = await s.list({ prefix: cut, after: k });
        expect(afterIt.entries.map((x) => x.key), name).not.toContain(k);
      }
      // Watches by key and by prefix see the writes (from a revision).
      for (const [name, k] of keys) {
        const ev: WatchEvent[] = [];
        await collect(s, { key: k, fromRevision: start.revision }, 1, 30_000, (e) => ev.push(e));
        expect(ev[0]?.key, name).toBe(k);
        expect(ev[0]?.revision, name).toBe(revs.get(k));
      }
      const all: string[] = [];
      await collect(s, { prefix: '', fromRevision: start.revision }, keys.length, 30_000, (e) => all.push(e.key));
      expect(all).toEqual(keys.map(([, k]) => k));
      // Atomic check + set and conditional delete on them.
      if (b.atomic) {
        const [, k0] = keys[0] as [string, string];
        const [, k1] = keys[1] as [string, string];
        const c = await s.atomic().check(k0, revs.get(k0) as number).set(k0, 'a').set(k1, 'b').commit();
        revs.set(k0, c.revision);
        revs.set(k1, c.revision);
        expect((await s.get(k1))?.value).toBe('b');
      }
      const [, gone] = keys[2] as [string, string];
      expect(await s.delete(gone, { ifRevision: revs.get(gone) as number })).toBeGreaterThan(0);
      expect(await s.get(gone)).toBeNull();
      const tomb = await s.history(gone);
      expect(tomb[0]).toMatchObject({ key: gone, deleted: true });

      // One byte over: refused by every operation that takes a key or a prefix.
      for (const [, k] of overKeys()) {
        await expectError(s.put(k, 1), InvalidKeyError);
        await expectError(s.get(k), InvalidKeyError);
        await expectError(s.getRecord(k), InvalidKeyError);
        await expectError(s.delete(k), InvalidKeyError);
        await expectError(s.update(k, () => 1), InvalidKeyError);
        await expectError(s.history(k), InvalidKeyError);
        await expectError(s.list({ prefix: k }), InvalidKeyError);
        await expectError((async () => s.atomic().set(k, 1).commit())(), InvalidKeyError);
        await expectError((async () => s.atomic().check(k, null).commit())(), InvalidKeyError);
        await expectError((async () => {
          for await (const _ of s.watch({ key: k, fromRevision: 0 })) break;
        })(), InvalidKeyError);
        await expectError((async () => {
          for await (const _ of s.watch({ prefix: k, fromRevision: 0 })) break;
        })(), InvalidKeyError);
      }

      // Reopened: every key reads back, listed once, in byte order.
      s = await o.reopen();
      const live = keys.map(([, k]) => k).filter((k) => k !== gone);
      expect((await listAll(s, '', 3)).keys).toEqual(byBytes([...live, 'start']));
      for (const k of live) expect((await s.get(k))?.key).toBe(k);
    } finally {
      await o.drop();
    }
  }, 120_000);

  it('one commit of keys that sort differently by UTF-16 code units and by UTF-8 bytes (U+FF5E, an emoji, é, U+E000): a watch from before it delivers every one; a list pages them in byte order', async () => {
    const o = await b.make();
    try {
      const s = o.store;
      const start = await s.put('start', 0);
      const keys = ['w/\uff5e', 'w/😀', 'w/é', 'w/\ue000', 'w/a', 'w/\uffff', 'w/𐀀', 'w/\ud7ff'];
      if (b.atomic) {
        const batch = s.atomic();
        for (const k of keys) batch.set(k, k);
        await batch.commit();
      } else {
        for (const k of keys) await s.put(k, k);
      }
      for (const prefix of ['w/', '']) {
        const got: string[] = [];
        const n = await collect(s, { prefix, fromRevision: start.revision }, keys.length, 30_000, (e) => got.push(e.key));
        expect(n, `prefix ${JSON.stringify(prefix)}: ${JSON.stringify(got)}`).toBe(keys.length);
        expect(byBytes(got)).toEqual(byBytes(keys));
      }
      expect((await listAll(o.store, 'w/', 3)).keys).toEqual(byBytes(keys));
    } finally {
      await o.drop();
    }
  }, 60_000);

  it(`${b.name === 'nats' ? NATS_KEYS : KEYS} keys: listed by paging (every key once, in byte order) and watched from revision 0 and from the middle (every change once, in order)`, async () => {
    const count = b.name === 'nats' ? NATS_KEYS : KEYS;
    const o = await b.make({ changeLogSize: count + 1000 });
    try {
      let s = o.store;
      // Keys that sort differently by UTF-16 and by UTF-8 bytes (é, 😀, U+FF5E) among plain ones.
      const keyOf = (i: number) => (i % 7 === 0 ? `n/${'\uff5e'}${pad(i)}` : i % 11 === 0 ? `n/😀${pad(i)}` : i % 13 === 0 ? `n/é/${pad(i)}` : `n/${pad(i)}`);
      const keys = Array.from({ length: count }, (_, i) => keyOf(i));
      // Batches of varied sizes, so that commits straddle watch and list pages.
      const sizes = [1000, 999, 1, 500, 1000, 250, 1000, 1];
      const starts: Array<{ first: number; revision: number }> = [];
      const t0 = Date.now();
      if (b.atomic) {
        for (let i = 0, j = 0; i < count; j++) {
          const size = Math.min(sizes[j % sizes.length] as number, b.atomicOps, count - i);
          const batch = s.atomic();
          for (let x = i; x < i + size; x++) batch.set(keys[x] as string, x);
          const { revision } = await batch.commit();
          starts.push({ first: i, revision });
          i += size;
        }
      } else {
        const width = 64;
        for (let i = 0; i < count; i += width) {
          const done = await Promise.all(keys.slice(i, i + width).map((k, d) => s.put(k, i + d)));
          starts.push({ first: i, revision: Math.max(...done.map((e) => e.revision)) });
        }
      }
      const loaded = Date.now() - t0;

      // Listed by pages of the default size, and of 10,000.
      const t1 = Date.now();
      const sorted = byBytes(keys);
      const listed = await listAll(s, 'n/');
      expect(listed.keys.length).toBe(count);
      expect(listed.keys).toEqual(sorted);
      const big = await listAll(s, 'n/', 10_000);
      expect(big.keys).toEqual(sorted);
      const listedIn = Date.now() - t1;

      // From revision 0: every change once, in revision order.
      const t2 = Date.now();
      const seen = new Set<string>();
      let last = 0;
      let dupes = 0;
      let outOfOrder = 0;
      const all = await collect(s, { prefix: 'n/', fromRevision: 0 }, count, 60_000, (e) => {
        if (e.type !== 'put') expect.fail(`a ${e.type} event for ${e.key}`);
        if (seen.has(e.key)) dupes++;
        seen.add(e.key);
        if (e.revision < last) outOfOrder++;
        last = e.revision;
      });
      expect({ all, dupes, outOfOrder, distinct: seen.size }).toEqual({ all: count, dupes: 0, outOfOrder: 0, distinct: count });
      // From the revision of a commit in the middle: exactly the writes after it.
      const mid = starts[Math.floor(starts.length / 2)] as { first: number; revision: number };
      const rest = new Set(keys.slice(keys.findIndex((_, i) => i >= mid.first)).filter((_, d) => {
        const i = mid.first + d;
        const commit = starts.findLast((c) => c.first <= i) as { revision: number };
        return commit.revision > mid.revision;
      }));
      const after = new Set<string>();
      let dupesAfter = 0;
      const n2 = await collect(s, { prefix: 'n/', fromRevision: mid.revision }, rest.size, 60_000, (e) => {
        if (after.has(e.key)) dupesAfter++;
        after.add(e.key);
        if (e.revision <= mid.revision) expect.fail(`revision ${e.revision} at or before ${mid.revision}`);
      });
      expect({ n2, dupesAfter, missing: [...rest].filter((k) => !after.has(k)).length }).toEqual({ n2: rest.size, dupesAfter: 0, missing: 0 });
      const watchedIn = Date.now() - t2;

      s = await o.reopen();
      expect((await listAll(s, 'n/', 10_000)).keys.length).toBe(count);
      console.log(`[extremes] ${b.name}: ${count} keys loaded in ${loaded} ms, listed (twice) in ${listedIn} ms, watched (from 0 and the middle) in ${watchedIn} ms`);
    } finally {
      await o.drop();
    }
  }, 60_000 + (b.name === 'nats' ? NATS_KEYS * 20 : KEYS * 3));
});

describe('extremes: backend specifics', () => {
  it('core: a watch backlog of 300,000 events drains, in order, within a liveness bound of 30 s (AsyncQueue took items with Array#shift: O(n²), ~250 s here; 1,000,000 changes from revision 0 on memory took 812 s)', async () => {
    // Objects, like watch events (moving numbers is cheaper, moving objects is what a watch does).
    const n = 300_000;
    const q = new AsyncQueue<{ i: number }>();
    for (let i = 0; i < n; i++) q.push({ i });
    const deadline = Date.now() + 30_000;
    let taken = 0;
    for await (const x of q) {
      if (x.i !== taken) expect.fail(`item ${x.i} in place ${taken}`);
      taken++;
      if (taken === n || ((taken & 0x3fff) === 0 && Date.now() > deadline)) break;
    }
    expect(taken).toBe(n);
    // Ended and failed queues still hand out what they hold first.
    const ended = new AsyncQueue<number>();
    for (let i = 0; i < 3000; i++) ended.push(i);
    ended.fail(new Error('after the items'));
    const got: number[] = [];
    await expect((async () => {
      for await (const x of ended) got.push(x);
    })()).rejects.toThrow('after the items');
    expect(got).toEqual(Array.from({ length: 3000 }, (_, i) => i));
  }, 60_000);

  it.runIf(!ONLY || ONLY.includes('nats'))('nats: a value of the default 1 MiB limit does not fit max_payload with its headers: TooLargeError naming the server limit, nothing written; the largest value that fits reads back whole', async () => {
    const bucket = `rkx_${uid()}`;
    cleanups.push(() => dropBucket(bucket));
    const s = await NatsStore.fromUrl(`${NATS_URL}?bucket=${bucket}`);
    try {
      const err = await expectError(s.put('v', bigValue(0, LIMIT)), TooLargeError);
      expect(err.limit).toBe(s.features.maxPayload);
      expect(await s.getRecord('v')).toBeNull();
      // Find the largest value that fits by halving (each refusal writes nothing).
      let lo = LIMIT - 64 * 1024;
      let hi = LIMIT;
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        const r = await settle(s.put('probe', bigValue(mid, mid), { ifAbsent: true }).then(() => s.delete('probe')));
        if (r.ok) lo = mid;
        else {
          expect(TooLargeError.is(r.error), String(r.error)).toBe(true);
          hi = mid;
        }
      }
      const e = await s.put('v', bigValue(1, lo));
      expect((await s.get('v'))?.value === bigValue(1, lo)).toBe(true);
      expect(e.revision).toBeGreaterThan(0);
      console.log(`[extremes] nats: largest value on a 1 MiB max_payload: ${lo} bytes (${LIMIT - lo} bytes for headers and subject)`);
    } finally {
      await s.close();
    }
  }, 120_000);

  it.runIf(!ONLY || ONLY.includes('file'))('file: writes up to its file-length limit (maxFileLength, scaled down): then TooLargeError with nothing written; the file reopens with every acknowledged value', async () => {
    const max = 8 * MiB;
    const o = await backends.find((x) => x.name === 'file')!.make({ maxFileLength: max });
    try {
      let s = o.store;
      const path = (s as FileStore).path as string;
      const acked: number[] = [];
      let refusedAt = -1;
      for (let i = 0; i < 32; i++) {
        const r = await settle(s.put(`f/${pad(i, 3)}`, bigValue(i, LIMIT)));
        if (r.ok) acked.push(i);
        else {
          expect(TooLargeError.is(r.error), String(r.error)).toBe(true);
          refusedAt = i;
          break;
        }
      }
      expect(refusedAt).toBeGreaterThan(0);
      expect(statSync(path).size).toBeLessThanOrEqual(max);
      expect(await s.getRecord(`f/${pad(refusedAt, 3)}`)).toBeNull();
      // An atomic group that would pass the limit: refused whole. A small write still fits.
      await expectError(s.atomic().set('g/1', 'x').set('g/2', bigValue(99, LIMIT)).commit(), TooLargeError);
      expect(await s.getRecord('g/1')).toBeNull();
      await s.put('small', 1);
      s = await o.reopen();
      for (const i of acked) expect((await s.get(`f/${pad(i, 3)}`))?.value === bigValue(i, LIMIT)).toBe(true);
      expect((await listAll(s, 'f/')).keys.length).toBe(acked.length);
      expect((await s.get('small'))?.value).toBe(1);
    } finally {
      await o.drop();
    }
  }, 120_000);

  it.runIf(!ONLY || ONLY.includes('file'))('file: a watch from a revision older than its change log is HistoryGoneError, not a silent skip (20,000 keys, default change log of 4096)', async () => {
    const o = await backends.find((x) => x.name === 'file')!.make();
    try {
      const s = o.store;
      for (let i = 0; i < 20_000; i += 1000) {
        const batch = s.atomic();
        for (let x = i; x < i + 1000; x++) batch.set(`n/${pad(x)}`, x);
        await batch.commit();
      }
      await expectError(collect(s, { prefix: 'n/', fromRevision: 0 }, 20_000, 30_000), HistoryGoneError);
    } finally {
      await o.drop();
    }
  }, 120_000);
});
