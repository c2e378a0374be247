#!/usr/bin/env node
// Soak: every backend at its limits, at the sizes test/extremes.test.ts scales down.
//
//   node bench/soak/extremes.mjs                   everything below (what `npm run soak` runs)
//   node bench/soak/extremes.mjs --parts grow,keys --gib 2 --keys 1000000 --backends sqlite,postgres
//   --json                                         print the figures as one JSON line at the end
//
// Parts (each runs in a child process of its own, so a crash — a heap out of
// memory, an unhandled rejection, an exit — is reported as that part's outcome
// instead of ending the soak):
//
//   test    test/extremes.test.ts at the issue's sizes: 200 values of 1 MiB (also over HTTP),
//           an atomic commit of 64 of them, 100,000 keys listed and watched (NATS too)
//   grow    SQLite, PostgreSQL and memory grown to --gib GiB of 1 MiB values (default 2): load, reopen,
//           read every value back by list pages (a page of 1000 values of 1 MiB: ~1 GiB) and by a
//           watch from 0, one atomic commit of 256 values of 1 MiB; figures: time, disk bytes per
//           key, the process's memory
//   keys    --keys keys (default 1,000,000) on memory, SQLite, PostgreSQL, Redis, file, HTTP and
//           NATS: loaded, listed by pages (every key once, in byte order), watched from 0 (every
//           change once, in order), reopened and counted; a NATS page reads every key and a
//           memory page sorts every key, so there only --nats-pages pages are listed and the
//           total is extrapolated
//   backlog what a watch from 0 over 4000 values of 64 KiB (250 MiB) holds in memory once its
//           reader has taken one event and waits: a page (500–1000 events) when the backend reads
//           ahead by pages, the whole store when its read-ahead has no bound
//   decode  a default list page (memory) and a watch from 0 (SQLite, PostgreSQL) over 300 values of 1 MiB
//           whose decoded form is ~17 MiB each (`[{},{},…]`): either needs ~5 GiB of heap at once
//   file    the file backend to its real limit (one string: ~512 MiB): 1 MiB values until
//           TooLargeError, nothing written by the refused commit, the file reopens whole
//   http    a server's list page and history of 600 values of 1 MiB (a response over the
//           longest string the engine can build): the answer or error the client gets
//
// Every part checks what it reads (values byte-identical, keys once and in order) and
// cleans up after itself (tables dropped, keys deleted, buckets deleted, files removed).
// REVKIT_DIST points at a build other than ../../dist (e.g. one made from HEAD only).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const self = fileURLToPath(import.meta.url);
const root = resolve(self, '../../..');
const DIST = process.env.REVKIT_DIST ? resolve(process.env.REVKIT_DIST) : join(root, 'dist');
const lib = (p) => import(pathToFileURL(join(DIST, p)).href);

const PG_URL = process.env.REVKIT_PG_URL ?? `postgres://${encodeURIComponent(process.env.PGUSER || process.env.USER || userInfo().username)}@127.0.0.1:5432/test`;
const REDIS_URL = process.env.REVKIT_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const NATS_URL = process.env.REVKIT_NATS_URL ?? 'nats://127.0.0.1:4222';
const ADMIN = 'soak-extremes-admin-token-0123456789';
const MiB = 1024 * 1024;
const LIMIT = MiB;

function flags(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) continue;
    const next = argv[i + 1];
    out[argv[i].slice(2)] = next === undefined || next.startsWith('--') ? true : (i++, next);
  }
  return out;
}
const opts = flags(process.argv.slice(2));

// ------------------------------------------------------------------ shared helpers (child side)

const BASE = randomBytes(Math.ceil((LIMIT + 8192) * 0.75)).toString('base64');
/** The i-th value: a string whose JSON encoding is exactly `bytes` bytes, distinct for every i. */
const bigValue = (i, bytes = LIMIT) => {
  const head = `${i}:`;
  const off = (i * 7919) % 4096;
  return head + BASE.slice(off, off + bytes - 2 - head.length);
};
const pad = (i, w = 7) => String(i).padStart(w, '0');
const keyOf = (i) => (i % 7 === 0 ? `n/\uff5e${pad(i)}` : i % 11 === 0 ? `n/😀${pad(i)}` : i % 13 === 0 ? `n/é/${pad(i)}` : `n/${pad(i)}`);

let peak = { rss: 0, heapUsed: 0, external: 0 };
function sample() {
  const m = process.memoryUsage();
  peak = { rss: Math.max(peak.rss, m.rss), heapUsed: Math.max(peak.heapUsed, m.heapUsed), external: Math.max(peak.external, m.external) };
}
const sampler = () => {
  const t = setInterval(sample, 200);
  t.unref();
  return t;
};
const mb = (n) => Math.round(n / MiB);
const secs = (ms) => Math.round(ms / 100) / 10;

class Failure extends Error {}
function check(ok, message) {
  if (!ok) throw new Failure(message);
}

async function isTyped(err) {
  const { RevkitError } = await lib('core/index.js');
  return RevkitError.is(err);
}

/** Every entry under prefix by pages; calls visit on each. */
async function listAll(store, prefix, limit, visit) {
  let after;
  let pages = 0;
  let count = 0;
  let previous;
  const { compareKeys } = await lib('core/index.js');
  for (;;) {
    const page = await store.list({ prefix, ...(limit ? { limit } : {}), ...(after !== undefined ? { after } : {}) });
    pages++;
    for (const e of page.entries) {
      if (previous !== undefined) check(compareKeys(previous, e.key) < 0, `list: ${JSON.stringify(e.key)} after ${JSON.stringify(previous)}`);
      previous = e.key;
      count++;
      visit?.(e);
    }
    sample();
    if (page.cursor === undefined) break;
    after = page.cursor;
  }
  return { pages, count };
}

/** Reads a watch until `count` events; fails after `idleMs` without one (a liveness bound). */
async function collect(store, options, count, idleMs, visit) {
  const ac = new AbortController();
  let timer;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => ac.abort(), idleMs);
  };
  arm();
  let n = 0;
  try {
    for await (const e of store.watch({ ...options, signal: ac.signal })) {
      visit?.(e, n);
      n++;
      if (n % 256 === 0) {
        arm();
        sample();
      }
      if (n >= count) break;
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return n;
}

// ------------------------------------------------------------------ stores

/**
 * A child works in the folder its parent made (REVKIT_SOAK_SCRATCH) and notes
 * every table prefix, Redis prefix and bucket it creates in its ledger, so
 * that the parent removes them all when the child dies before its own clean-up
 * (a heap out of memory is one of the outcomes this soak looks for).
 */
const scratchDir = () => mkdtempSync(join(process.env.REVKIT_SOAK_SCRATCH ?? tmpdir(), 'revkit-soak-extremes-'));
function ledger(kind, name) {
  if (process.env.REVKIT_SOAK_SCRATCH) appendFileSync(join(process.env.REVKIT_SOAK_SCRATCH, 'ledger.jsonl'), `${JSON.stringify({ kind, name })}\n`);
}

async function dropLeftovers(scratch) {
  const file = join(scratch, 'ledger.jsonl');
  if (!existsSync(file)) return [];
  const done = [];
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const { kind, name } = JSON.parse(line);
    try {
      if (kind === 'postgres') {
        const { dropPostgresStore } = await lib('postgres/index.js');
        const { default: pg } = await import('pg');
        const pool = new pg.Pool({ connectionString: PG_URL, max: 1 });
        try {
          await dropPostgresStore(pool, { prefix: name });
        } finally {
          await pool.end();
        }
      } else if (kind === 'redis') {
        const { dropRedisStore } = await lib('redis/index.js');
        const { Redis } = await import('ioredis');
        const c = new Redis(REDIS_URL);
        try {
          await dropRedisStore(c, { prefix: name });
        } finally {
          c.disconnect();
        }
      } else if (kind === 'nats') {
        const { connect } = await import('@nats-io/transport-node');
        const { jetstreamManager } = await import('@nats-io/jetstream');
        const nc = await connect({ servers: NATS_URL.replace(/^nats:\/\//, '') });
        try {
          await (await jetstreamManager(nc)).streams.delete(`KV_${name}`).catch(() => undefined);
        } finally {
          await nc.close();
        }
      }
      done.push(`${kind} ${name}`);
    } catch (err) {
      console.error(`extremes: could not remove ${kind} ${name}: ${err?.message ?? err}`);
    }
  }
  return done;
}

let serial = 0;
const uid = () => `${process.pid.toString(36)}_${Date.now().toString(36)}_${(serial++).toString(36)}`;

async function pgSize(prefix) {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const r = await c.query(`SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
      WHERE s.nspname = 'public' AND c.relkind = 'r' AND c.relname LIKE $1`, [`${prefix.replace(/[\\%_]/g, (x) => `\\${x}`)}%`]);
    return Number(r.rows[0].n);
  } finally {
    await c.end();
  }
}

async function redisMemory() {
  const { Redis } = await import('ioredis');
  const r = new Redis(REDIS_URL);
  try {
    const info = await r.info('memory');
    return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
  } finally {
    r.disconnect();
  }
}

/** Opens a fresh store of `backend`; returns { store, reopen(), drop(), bytes() } */
async function makeStore(backend, dir, options = {}) {
  const id = uid();
  switch (backend) {
    case 'memory': {
      const { MemoryStore } = await lib('memory/index.js');
      const s = new MemoryStore({ changeLogSize: options.changeLog ?? 100_000 });
      return { store: s, reopen: async () => s, drop: () => s.close(), bytes: async () => undefined };
    }
    case 'sqlite': {
      const { SqliteStore } = await lib('sqlite/index.js');
      const path = join(dir, `s_${id}.db`);
      const o = { historyRetention: options.changeLog ?? 100_000 };
      const h = { store: new SqliteStore(path, o) };
      h.reopen = async () => {
        await h.store.close();
        h.store = new SqliteStore(path, o);
        return h.store;
      };
      h.drop = async () => {
        await h.store.close().catch(() => undefined);
        for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
      };
      h.bytes = async () => [path, `${path}-wal`].filter(existsSync).reduce((n, f) => n + statSync(f).size, 0);
      return h;
    }
    case 'file': {
      const { FileStore } = await lib('file/index.js');
      const path = join(dir, `f_${id}.json`);
      const o = { changeLogSize: options.changeLog ?? 4096, ...(options.file ?? {}) };
      const h = { store: new FileStore(path, o) };
      h.reopen = async () => {
        await h.store.close();
        h.store = new FileStore(path, o);
        return h.store;
      };
      h.drop = async () => {
        await h.store.close().catch(() => undefined);
        rmSync(path, { force: true });
        rmSync(`${path}.lock`, { recursive: true, force: true });
      };
      h.bytes = async () => (existsSync(path) ? statSync(path).size : 0);
      return h;
    }
    case 'postgres': {
      const { PostgresStore, dropPostgresStore } = await lib('postgres/index.js');
      const prefix = `rkx_soak_${id}_`;
      ledger('postgres', prefix);
      const h = { store: await PostgresStore.fromUrl(PG_URL, { prefix }) };
      h.reopen = async () => {
        await h.store.close();
        h.store = await PostgresStore.fromUrl(PG_URL, { prefix });
        return h.store;
      };
      h.drop = async () => {
        await h.store.close().catch(() => undefined);
        const { default: pg } = await import('pg');
        const pool = new pg.Pool({ connectionString: PG_URL, max: 1 });
        try {
          await dropPostgresStore(pool, { prefix });
        } finally {
          await pool.end();
        }
      };
      h.bytes = () => pgSize(prefix);
      return h;
    }
    case 'redis': {
      const { RedisStore, dropRedisStore } = await lib('redis/index.js');
      const prefix = `rkx_soak_${id}`;
      ledger('redis', prefix);
      const before = await redisMemory();
      const h = { store: await RedisStore.fromUrl(REDIS_URL, { prefix }) };
      h.reopen = async () => {
        await h.store.close();
        h.store = await RedisStore.fromUrl(REDIS_URL, { prefix });
        return h.store;
      };
      h.drop = async () => {
        await h.store.close().catch(() => undefined);
        const { Redis } = await import('ioredis');
        const c = new Redis(REDIS_URL);
        try {
          await dropRedisStore(c, { prefix });
        } finally {
          c.disconnect();
        }
      };
      // Server memory grown since the store opened (other users of the server count too: an estimate).
      h.bytes = async () => (await redisMemory()) - before;
      return h;
    }
    case 'nats': {
      const { NatsStore } = await lib('nats/index.js');
      const bucket = `rkx_soak_${id}`;
      ledger('nats', bucket);
      const url = `${NATS_URL}?bucket=${bucket}`;
      const h = { store: await NatsStore.fromUrl(url, { maxValueBytes: LIMIT - 8192 }) };
      h.reopen = async () => {
        await h.store.close();
        h.store = await NatsStore.fromUrl(url, { maxValueBytes: LIMIT - 8192 });
        return h.store;
      };
      h.drop = async () => {
        await h.store.close().catch(() => undefined);
        const { connect } = await import('@nats-io/transport-node');
        const { jetstreamManager } = await import('@nats-io/jetstream');
        const nc = await connect({ servers: NATS_URL.replace(/^nats:\/\//, '') });
        try {
          await (await jetstreamManager(nc)).streams.delete(`KV_${bucket}`).catch(() => undefined);
        } finally {
          await nc.close();
        }
      };
      h.bytes = async () => {
        const { connect } = await import('@nats-io/transport-node');
        const { jetstreamManager } = await import('@nats-io/jetstream');
        const nc = await connect({ servers: NATS_URL.replace(/^nats:\/\//, '') });
        try {
          return (await (await jetstreamManager(nc)).streams.info(`KV_${bucket}`)).state.bytes;
        } finally {
          await nc.close();
        }
      };
      return h;
    }
    case 'http': {
      // `revkit serve` in this process over SQLite, through HttpStore.
      const { createServer, HttpStore } = await lib('server/index.js');
      const path = join(dir, `h_${id}.db`);
      const h = {};
      const open = async () => {
        const server = await createServer({ store: `sqlite:${path}`, adminToken: ADMIN });
        const url = await server.listen({ host: '127.0.0.1', port: 0 });
        const client = await HttpStore.fromUrl(`${url}?token=${ADMIN}`);
        const close = client.close.bind(client);
        client.close = async () => {
          await close();
          await server.close();
        };
        return client;
      };
      h.store = await open();
      h.reopen = async () => {
        await h.store.close();
        h.store = await open();
        return h.store;
      };
      h.drop = async () => {
        await h.store.close().catch(() => undefined);
        for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
      };
      h.bytes = async () => [path, `${path}-wal`].filter(existsSync).reduce((n, f) => n + statSync(f).size, 0);
      return h;
    }
    default:
      throw new Error(`unknown backend ${backend}`);
  }
}

// ------------------------------------------------------------------ parts (child side)

/** A store grown to `gib` GiB of 1 MiB values, read back whole after a reopen. */
async function grow(backend, gib) {
  const dir = scratchDir();
  const h = await makeStore(backend, dir);
  const out = { backend, gib };
  const t = sampler();
  try {
    const n = Math.round(gib * 1024);
    const key = (i) => `g/${pad(i, 6)}`;
    let started = Date.now();
    const per = 16;
    for (let i = 0; i < n; i += per) {
      const b = h.store.atomic();
      for (let j = i; j < Math.min(n, i + per); j++) b.set(key(j), bigValue(j));
      await b.commit();
      if (i % 256 === 0) sample();
    }
    out.values = n;
    out.loadS = secs(Date.now() - started);
    out.diskBytes = await h.bytes();
    out.bytesPerKey = Math.round(out.diskBytes / n);
    out.loadPeakRssMiB = mb(peak.rss);

    let s = await h.reopen();
    const verify = (e) => {
      const i = Number(e.key.slice(2));
      if (e.value !== bigValue(i)) throw new Failure(`${e.key} reads back different`);
    };
    // Default pages: 1000 values of 1 MiB in one page.
    started = Date.now();
    const listed = await listAll(s, 'g/', undefined, verify);
    check(listed.count === n, `list: ${listed.count} of ${n}`);
    out.listS = secs(Date.now() - started);
    out.listPages = listed.pages;
    out.listPeakRssMiB = mb(peak.rss);
    out.listPeakHeapMiB = mb(peak.heapUsed);

    started = Date.now();
    let last = 0;
    const seen = await collect(s, { prefix: 'g/', fromRevision: 0 }, n, 120_000, (e) => {
      check(e.type === 'put' && e.revision >= last, `watch: ${e.type} ${e.key} at ${e.revision} after ${last}`);
      last = e.revision;
      verify(e.entry);
    });
    check(seen === n, `watch: ${seen} of ${n}`);
    out.watchS = secs(Date.now() - started);
    out.watchPeakRssMiB = mb(peak.rss);

    // One atomic commit of 256 values of 1 MiB: an answer, or a typed error with nothing written.
    started = Date.now();
    const b = s.atomic();
    for (let i = 0; i < 256; i++) b.set(`bulk/${pad(i, 3)}`, bigValue(1_000_000 + i));
    try {
      const r = await b.commit();
      out.atomic256 = `committed at ${r.revision}`;
      const back = await listAll(s, 'bulk/', undefined, (e) => check(e.value === bigValue(1_000_000 + Number(e.key.slice(5))) && e.revision === r.revision, `bulk ${e.key}`));
      check(back.count === 256, `bulk: ${back.count} of 256`);
    } catch (err) {
      if (err instanceof Failure || !(await isTyped(err))) throw err;
      out.atomic256 = err.code;
      check((await s.list({ prefix: 'bulk/' })).entries.length === 0, 'a refused atomic commit left writes');
    }
    out.atomic256S = secs(Date.now() - started);
    s = await h.reopen();
    check((await s.get(key(n - 1)))?.value === bigValue(n - 1), 'last value after reopen');
    out.peakRssMiB = mb(peak.rss);
    out.peakHeapMiB = mb(peak.heapUsed);
    out.maxRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);
    return out;
  } finally {
    clearInterval(t);
    await h.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `count` keys loaded, listed by pages, watched from 0, reopened and counted. */
async function keys(backend, count, natsPages) {
  const dir = scratchDir();
  const h = await makeStore(backend, dir, { changeLog: count + 1000 });
  const out = { backend, keys: count };
  const t = sampler();
  const { compareKeys } = await lib('core/index.js');
  try {
    let started = Date.now();
    const perCommit = backend === 'file' ? 20_000 : 1000;
    if (backend === 'nats') {
      const width = 256;
      for (let i = 0; i < count; i += width) {
        await Promise.all(Array.from({ length: Math.min(width, count - i) }, (_, d) => h.store.put(keyOf(i + d), i + d)));
      }
    } else {
      for (let i = 0; i < count; i += perCommit) {
        const b = h.store.atomic();
        for (let x = i; x < Math.min(count, i + perCommit); x++) b.set(keyOf(x), x);
        await b.commit();
        if (i % 50_000 === 0) sample();
      }
    }
    out.loadS = secs(Date.now() - started);
    out.storeBytes = await h.bytes();
    if (out.storeBytes !== undefined) out.bytesPerKey = Math.round(out.storeBytes / count);

    // Listed by default pages (1000): every key once, in byte order.
    started = Date.now();
    if (backend === 'nats' || backend === 'memory') {
      // A NATS page reads the last message of every key under the prefix, a memory page sorts
      // every key: each page costs O(keys), so list a few pages and extrapolate.
      let after;
      let got = 0;
      for (let p = 0; p < natsPages; p++) {
        const page = await h.store.list({ prefix: 'n/', ...(after ? { after } : {}) });
        got += page.entries.length;
        after = page.cursor;
        sample();
      }
      const per = (Date.now() - started) / natsPages;
      out.listPagesRead = natsPages;
      out.listSecondsPerPage = secs(per);
      out.listAllEstimateS = Math.round((per * Math.ceil(count / 1000)) / 1000);
      check(got === natsPages * 1000, `${backend}: ${got} keys in ${natsPages} pages`);
    } else {
      let i = 0;
      const sorted = Array.from({ length: count }, (_, x) => keyOf(x)).sort(compareKeys);
      const listed = await listAll(h.store, 'n/', undefined, (e) => {
        if (e.key !== sorted[i]) throw new Failure(`list: ${JSON.stringify(e.key)} where ${JSON.stringify(sorted[i])} belongs`);
        i++;
      });
      check(listed.count === count, `list: ${listed.count} of ${count}`);
      out.listS = secs(Date.now() - started);
    }

    // From revision 0: every change once, in revision order.
    started = Date.now();
    const seen = new Uint8Array(count);
    let last = 0;
    let dupes = 0;
    const n = await collect(h.store, { prefix: 'n/', fromRevision: 0 }, count, 120_000, (e) => {
      check(e.type === 'put' && e.revision >= last, `watch: ${e.type} ${e.key} at ${e.revision} after ${last}`);
      last = e.revision;
      const x = e.entry.value;
      if (seen[x]) dupes++;
      seen[x] = 1;
    });
    check(n === count && dupes === 0, `watch: ${n} of ${count}, ${dupes} twice`);
    out.watchS = secs(Date.now() - started);

    if (backend !== 'nats') {
      started = Date.now();
      const s = await h.reopen();
      const again = await listAll(s, 'n/', 10_000);
      check(again.count === count, `after reopen: ${again.count} of ${count}`);
      out.reopenListS = secs(Date.now() - started);
    }
    out.peakRssMiB = mb(peak.rss);
    out.peakHeapMiB = mb(peak.heapUsed);
    return out;
  } finally {
    clearInterval(t);
    await h.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The file backend up to one string's length: 1 MiB values until TooLargeError. */
async function fileLimit() {
  const dir = scratchDir();
  const { TooLargeError } = await lib('core/index.js');
  const h = await makeStore('file', dir, { file: { fsync: false } });
  const out = { backend: 'file' };
  const t = sampler();
  try {
    const started = Date.now();
    let acked = 0;
    let refused;
    for (let i = 0; i < 1000 && !refused; i += 32) {
      const b = h.store.atomic();
      for (let j = i; j < i + 32; j++) b.set(`f/${pad(j, 4)}`, bigValue(j));
      try {
        await b.commit();
        acked = i + 32;
      } catch (err) {
        if (!TooLargeError.is(err)) throw err;
        refused = err;
      }
      sample();
    }
    check(refused !== undefined, 'never refused');
    // Then one value at a time, up to the last that fits.
    for (let j = acked; ; j++) {
      try {
        await h.store.put(`f/${pad(j, 4)}`, bigValue(j));
        acked = j + 1;
      } catch (err) {
        if (!TooLargeError.is(err)) throw err;
        refused = err;
        break;
      }
    }
    out.valuesAcked = acked;
    out.refused = `${refused.code}: ${refused.message}`;
    out.fileBytes = await h.bytes();
    out.loadS = secs(Date.now() - started);
    check((await h.store.getRecord(`f/${pad(acked, 4)}`)) === null, 'the refused write is there');
    const reopenStarted = Date.now();
    const s = await h.reopen();
    let i = 0;
    const listed = await listAll(s, 'f/', 100, (e) => {
      check(e.value === bigValue(i), `${e.key} reads back different`);
      i++;
    });
    check(listed.count === acked, `after reopen: ${listed.count} of ${acked}`);
    out.reopenAndReadS = secs(Date.now() - reopenStarted);
    out.peakRssMiB = mb(peak.rss);
    out.peakHeapMiB = mb(peak.heapUsed);
    return out;
  } finally {
    clearInterval(t);
    await h.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A default list page (1000) of values at the 1 MiB limit whose decoded form is
 * much larger than their JSON: `[{},{},…]` is ~17 MiB of heap per value, so a
 * page of `count` of them needs count × 17 MiB at once. Runs on memory (the
 * cheapest); every backend decodes a whole page (and a whole watch page) at once.
 */
async function decodePage(count, how, backend) {
  const dir = scratchDir();
  const h = await makeStore(backend, dir);
  const v = JSON.parse(`[${'{},'.repeat(349_524)}{}]`);
  check(Buffer.byteLength(JSON.stringify(v)) === LIMIT, 'value size');
  const out = { backend, how, values: count, shape: '[{},{},…] at 1 MiB' };
  const t = sampler();
  try {
    for (let i = 0; i < count; i += 8) {
      const b = h.store.atomic();
      for (let j = i; j < Math.min(count, i + 8); j++) b.set(`o/${pad(j, 4)}`, v);
      await b.commit();
    }
    const started = Date.now();
    if (how === 'list') {
      const page = await h.store.list({ prefix: 'o/' });
      out.listed = page.entries.length;
    } else {
      // A reader that takes the first event and then waits a little: the watch reads ahead.
      const ac = new AbortController();
      const it = h.store.watch({ prefix: 'o/', fromRevision: 0, signal: ac.signal })[Symbol.asyncIterator]();
      await it.next();
      await new Promise((r) => setTimeout(r, 30_000));
      ac.abort();
      out.watched = 'survived 30 s after the first event';
    }
    out.seconds = secs(Date.now() - started);
    out.peakHeapMiB = mb(peak.heapUsed);
    return out;
  } finally {
    clearInterval(t);
    await h.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * How much a watch holds when its reader is slow: `count` values of 1 MiB, a
 * watch from 0 whose reader takes one event and then waits. A backend that
 * reads ahead only a page keeps a page (≤ 1000 events) in memory; one that
 * reads everything keeps the whole store — a watch from 0 over a store larger
 * than the heap then ends the process.
 */
async function backlog(backend, count, bytes) {
  const dir = scratchDir();
  const h = await makeStore(backend, dir);
  const out = { backend, values: count, valueBytes: bytes, storeMiB: mb(count * bytes) };
  try {
    for (let i = 0; i < count; i += 16) {
      const b = backend === 'nats' ? undefined : h.store.atomic();
      if (backend === 'nats') {
        await Promise.all(Array.from({ length: 16 }, (_, d) => h.store.put(`b/${pad(i + d, 5)}`, bigValue(i + d, bytes))));
        continue;
      }
      for (let j = i; j < i + 16; j++) b.set(`b/${pad(j, 5)}`, bigValue(j, bytes));
      await b.commit();
    }
    const s = await h.reopen();
    globalThis.gc?.();
    const base = process.memoryUsage();
    const ac = new AbortController();
    const it = s.watch({ prefix: 'b/', fromRevision: 0, signal: ac.signal })[Symbol.asyncIterator]();
    const first = await it.next();
    check(!first.done, 'the watch delivered nothing');
    // Wait until memory stops growing (or 60 s): what the watch read ahead of its reader.
    let last = 0;
    for (let i = 0; i < 60; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      globalThis.gc?.();
      const now = process.memoryUsage();
      const held = now.heapUsed + now.external - base.heapUsed - base.external;
      if (i > 5 && Math.abs(held - last) < 8 * MiB) break;
      last = held;
    }
    out.heldAfterOneEventMiB = mb(last);
    ac.abort();
    await it.return?.();
    return out;
  } finally {
    await h.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A server's list page and history of 600 values of 1 MiB: what the client gets. */
async function httpPages() {
  const { createServer, HttpStore } = await lib('server/index.js');
  const { SqliteStore } = await lib('sqlite/index.js');
  const dir = scratchDir();
  const path = join(dir, 'h.db');
  const store = new SqliteStore(path, { synchronous: 'normal' });
  const out = { backend: 'http' };
  const t = sampler();
  try {
    for (let i = 0; i < 600; i += 16) {
      const b = store.atomic();
      for (let j = i; j < i + 16; j++) b.set(`m/${pad(j, 4)}`, bigValue(j));
      await b.commit();
    }
    for (let i = 0; i < 600; i++) await store.put('h', bigValue(10_000 + i));
    const server = await createServer({ store, adminToken: ADMIN, closeStore: false });
    const url = await server.listen({ host: '127.0.0.1', port: 0 });
    const client = await HttpStore.fromUrl(`${url}?token=${ADMIN}`);
    const outcome = async (f) => {
      try {
        return `answer: ${await f()}`;
      } catch (err) {
        if (!(await isTyped(err))) return `PLAIN ERROR ${err?.name}: ${err?.message}`;
        return `${err.code}${err.transient !== undefined ? ` (transient ${err.transient})` : ''}: ${err.message.slice(0, 120)}`;
      }
    };
    out.listDefaultPage = await outcome(async () => {
      const p = await client.list({ prefix: 'm/' });
      return `${p.entries.length} entries${p.cursor ? ', cursor' : ''}`;
    });
    out.listPagesOf100 = await outcome(async () => `${(await listAll(client, 'm/', 100)).count} entries`);
    out.history600 = await outcome(async () => `${(await client.history('h', { limit: 600 })).length} records`);
    out.history100 = await outcome(async () => `${(await client.history('h', { limit: 100 })).length} records`);
    await client.close();
    await server.close();
    out.peakRssMiB = mb(peak.rss);
    return out;
  } finally {
    clearInterval(t);
    await store.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ parent

function runChild(args, nodeFlags = []) {
  return new Promise((resolvePromise) => {
    const started = Date.now();
    const scratch = mkdtempSync(join(tmpdir(), 'revkit-soak-extremes-run-'));
    const child = spawn(process.execPath, [...nodeFlags, self, '--child', ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, REVKIT_SOAK_SCRATCH: scratch } });
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      process.stdout.write(d);
    });
    child.on('exit', async (code, signal) => {
      const line = stdout.split('\n').reverse().find((l) => l.startsWith('RESULT '));
      const result = line ? JSON.parse(line.slice(7)) : undefined;
      // A child that died (or failed) may have left its stores behind: remove what its ledger names.
      const removed = code === 0 ? [] : await dropLeftovers(scratch);
      rmSync(scratch, { recursive: true, force: true });
      resolvePromise({ args: args.join(' '), code, signal, seconds: secs(Date.now() - started), ...(result ?? {}), ...(removed.length ? { leftoversRemoved: removed } : {}) });
    });
  });
}

async function parent() {
  const parts = String(opts.parts ?? 'test,grow,keys,file,http,decode,backlog').split(',');
  const gib = Number(opts.gib ?? 2);
  const count = Number(opts.keys ?? 1_000_000);
  const natsPages = Number(opts['nats-pages'] ?? 3);
  const backends = opts.backends ? String(opts.backends).split(',') : undefined;
  const want = (b) => !backends || backends.includes(b);
  const results = [];
  if (parts.includes('test')) {
    console.log('\n== extremes: test/extremes.test.ts at 200 x 1 MiB and 100,000 keys');
    const env = {
      ...process.env,
      REVKIT_EXTREMES_VALUES: process.env.REVKIT_EXTREMES_VALUES ?? '200',
      REVKIT_EXTREMES_HTTP_VALUES: process.env.REVKIT_EXTREMES_HTTP_VALUES ?? '200',
      REVKIT_EXTREMES_BULK: process.env.REVKIT_EXTREMES_BULK ?? '64',
      REVKIT_EXTREMES_SMALL_VALUES: process.env.REVKIT_EXTREMES_SMALL_VALUES ?? '5000',
      REVKIT_EXTREMES_KEYS: process.env.REVKIT_EXTREMES_KEYS ?? '100000',
      REVKIT_EXTREMES_NATS_KEYS: process.env.REVKIT_EXTREMES_NATS_KEYS ?? '100000',
      ...(backends ? { REVKIT_EXTREMES_BACKENDS: backends.join(',') } : {}),
    };
    const started = Date.now();
    const run = spawnSync('npx', ['vitest', 'run', 'test/extremes.test.ts'], { stdio: 'inherit', env, cwd: root });
    results.push({ args: 'test', code: run.status, signal: run.signal, seconds: secs(Date.now() - started) });
  }
  if (parts.includes('grow')) {
    for (const b of ['sqlite', 'postgres', 'memory'].filter(want)) {
      console.log(`\n== extremes: ${b} grown to ${gib} GiB of 1 MiB values`);
      results.push(await runChild(['grow', b, String(gib)]));
    }
  }
  if (parts.includes('keys')) {
    for (const b of ['memory', 'sqlite', 'postgres', 'redis', 'file', 'http', 'nats'].filter(want)) {
      console.log(`\n== extremes: ${count} keys on ${b}`);
      results.push(await runChild(['keys', b, String(count), String(natsPages)]));
    }
  }
  if (parts.includes('file') && want('file')) {
    console.log('\n== extremes: the file backend up to one string\'s length');
    results.push(await runChild(['file']));
  }
  if (parts.includes('backlog')) {
    for (const b of ['memory', 'sqlite', 'postgres', 'redis', 'file', 'nats'].filter(want)) {
      console.log(`\n== extremes: what a watch from 0 over 4000 values of 64 KiB holds after one event was read (${b})`);
      results.push(await runChild(['backlog', b, '4000', String(64 * 1024)], ['--expose-gc']));
    }
  }
  if (parts.includes('decode')) {
    for (const [how, b] of [['list', 'memory'], ['watch', 'sqlite'], ['watch', 'postgres']].filter(([, b]) => want(b))) {
      console.log(`\n== extremes: ${how === 'list' ? 'a list page' : 'a watch from 0'} over 300 values of 1 MiB that decode to ~17 MiB each (${b})`);
      results.push(await runChild(['decode', '300', how, b]));
    }
  }
  if (parts.includes('http') && want('http')) {
    console.log('\n== extremes: a server\'s list page and history of 600 values of 1 MiB');
    results.push(await runChild(['http']));
  }
  console.log('\n== extremes: figures');
  for (const r of results) console.log(JSON.stringify(r));
  const failed = results.filter((r) => r.code !== 0);
  console.log(`\nextremes: ${results.length - failed.length} passed, ${failed.length} failed${failed.length ? ` (${failed.map((r) => r.args).join('; ')})` : ''}`);
  if (opts.json) console.log(JSON.stringify({ extremes: results }));
  process.exit(failed.length === 0 ? 0 : 1);
}

async function child(argv) {
  const [part, ...rest] = argv;
  // A rejection nobody handled is a failure of the part, reported like any other.
  process.on('unhandledRejection', (err) => {
    console.log(`RESULT ${JSON.stringify({ ok: false, error: `unhandled rejection: ${err?.stack ?? err}` })}`);
    process.exit(3);
  });
  try {
    let result;
    if (part === 'grow') result = await grow(rest[0], Number(rest[1]));
    else if (part === 'keys') result = await keys(rest[0], Number(rest[1]), Number(rest[2]));
    else if (part === 'file') result = await fileLimit();
    else if (part === 'http') result = await httpPages();
    else if (part === 'decode') result = await decodePage(Number(rest[0]), rest[1] ?? 'list', rest[2] ?? 'memory');
    else if (part === 'backlog') result = await backlog(rest[0], Number(rest[1]), Number(rest[2]));
    else throw new Error(`unknown part ${part}`);
    console.log(`RESULT ${JSON.stringify({ ok: true, ...result })}`);
    process.exit(0);
  } catch (err) {
    const typed = await isTyped(err).catch(() => false);
    console.log(`RESULT ${JSON.stringify({ ok: false, typed, error: String(err?.stack ?? err).slice(0, 2000) })}`);
    process.exit(err instanceof Failure ? 1 : 2);
  }
}

if (opts.child) await child(process.argv.slice(process.argv.indexOf('--child') + 1));
else await parent();
