// Fast fills for the growth benchmarks, written directly in each backend's own schema, so that
// 10 million keys take minutes, not hours of fsynced puts. The rows are exactly the ones revkit
// writes (src/sqlite/schema.ts + writes.ts, src/postgres/schema.ts + sql/cas.ts, src/file/format.ts),
// and checkFidelity() proves it on every run: a small store filled through the store's own put()
// and the same store filled by these loaders must hold the same rows (updated_at aside).
//
// The layout: K keys, each written V times, round-robin — revision r (1..K·V) wrote key
// ((r − 1) mod K) + 1 with the value {"n":r,"pad":"x"×32} (~50 bytes of JSON). V = 1 is a store
// of K keys written once each (bench/growth-keys.mjs); K = 1 is one key with V revisions and
// K·V large is a long change log (bench/growth-history.mjs). The store then stands as if those
// K·V puts had been made one after the other with put() (no writer token), then the change log
// trimmed as the store's own rule trims it: SQLite keeps the newest `retention` revisions
// (historyRetention, default 100,000; pruned_below = head − retention), PostgreSQL keeps every
// change here (historyDepth ≥ V, nothing older than the change retention beyond it), the file
// keeps the newest `changeLog` changes (default 4,096).
import { readFileSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../dist/sqlite/index.js';
import { PostgresStore } from '../../dist/postgres/index.js';
import { FileStore } from '../../dist/file/index.js';
import { serialize } from '../../dist/file/format.js';

export const PAD = 'x'.repeat(32);
export const keyOf = (j) => `k/${String(j).padStart(8, '0')}`;
export const valueOf = (r) => ({ n: r, pad: PAD });
/** The key index written at revision r. */
export const keyAt = (r, K) => ((r - 1) % K) + 1;
/** The last revision of key j (1..K) in a layout of K keys × V revisions. */
export const lastRevisionOf = (j, K, V) => K * (V - 1) + j;

// ---------------------------------------------------------------- SQLite

/** Fills an SQLite store file (created and migrated by revkit first). Answers seconds taken. */
export async function loadSqlite(path, K, V, { retention = 100_000, now = Date.now(), onProgress = () => undefined } = {}) {
  const t0 = performance.now();
  await new SqliteStore(path).close(); // revkit creates and migrates the schema
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF'); // the fill is set-up, not measured; the store itself runs FULL
  const head = K * V;
  const floor = Math.max(0, head - retention);
  const upsert = db.prepare('INSERT INTO kv (key, value, revision, created_revision, updated_at, expires_at, deleted, writer) VALUES (?, ?, ?, ?, ?, NULL, 0, NULL)');
  const log = db.prepare('INSERT INTO changes (key, value, revision, created_revision, updated_at, expires_at, deleted, writer) VALUES (?, ?, ?, ?, ?, NULL, 0, NULL)');
  const bytes = (r) => Buffer.from(JSON.stringify(valueOf(r)));
  const CHUNK = 200_000;
  // kv: the current row of each key, in key order (= index order: keys are zero-padded).
  for (let a = 1; a <= K; a += CHUNK) {
    db.transaction(() => {
      for (let j = a; j < Math.min(K + 1, a + CHUNK); j++) {
        const r = lastRevisionOf(j, K, V);
        upsert.run(keyOf(j), bytes(r), r, j, now);
      }
    })();
    onProgress(`kv ${Math.min(K, a + CHUNK - 1).toLocaleString('en-US')}/${K.toLocaleString('en-US')}`);
  }
  // changes: every revision above the pruning floor, in revision order (= primary key order).
  for (let a = floor + 1; a <= head; a += CHUNK) {
    db.transaction(() => {
      for (let r = a; r < Math.min(head + 1, a + CHUNK); r++) log.run(keyOf(keyAt(r, K)), bytes(r), r, keyAt(r, K), now);
    })();
    onProgress(`changes ${(Math.min(head, a + CHUNK - 1) - floor).toLocaleString('en-US')}/${(head - floor).toLocaleString('en-US')}`);
  }
  if (floor > 0) db.prepare("UPDATE meta SET value = max(value, ?) WHERE name = 'pruned_below'").run(floor);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return (performance.now() - t0) / 1000;
}

function sqliteRows(path) {
  const db = new Database(path, { readonly: true });
  try {
    return {
      kv: db.prepare('SELECT key, value, revision, created_revision, expires_at, deleted, writer FROM kv ORDER BY key').all(),
      changes: db.prepare('SELECT key, value, revision, created_revision, expires_at, deleted, writer FROM changes ORDER BY revision, key').all(),
      meta: db.prepare('SELECT * FROM meta ORDER BY name').all(),
      version: db.pragma('user_version', { simple: true }),
    };
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------- PostgreSQL

/** Store names (tables of one store) for a prefix. */
export async function pgNames(prefix) {
  const { names } = await import('../../dist/postgres/schema.js');
  return names('public', prefix);
}

const pgKey = (col) => `'k/' || lpad((${col})::text, 8, '0')`;
const pgValue = (col) => `convert_to('{"n":' || (${col}) || ',"pad":"${PAD}"}', 'UTF8')`;

/**
 * Fills a PostgreSQL store (created and migrated by revkit first: open, close), server-side with
 * generate_series, then VACUUM (ANALYZE) as autovacuum would in time. Answers seconds taken.
 */
export async function loadPostgres(url, client, prefix, K, V, { now = Date.now(), onProgress = () => undefined } = {}) {
  const t0 = performance.now();
  await (await PostgresStore.fromUrl(`${url}?prefix=${prefix}`, { sweepIntervalMs: 0 })).close();
  const n = await pgNames(prefix);
  const head = K * V;
  const CHUNK = 1_000_000;
  for (let a = 1; a <= K; a += CHUNK) {
    const b = Math.min(K, a + CHUNK - 1);
    await client.query(`INSERT INTO ${n.kv} (key, revision, created_revision, value, deleted, updated_at, expires_at, writer)
      SELECT ${pgKey('j')}, ${K * (V - 1)} + j, j, ${pgValue(`${K * (V - 1)} + j`)}, false, ${now}, NULL, NULL FROM generate_series(${a}::bigint, ${b}::bigint) j`);
    onProgress(`kv ${b.toLocaleString('en-US')}/${K.toLocaleString('en-US')}`);
  }
  for (let a = 1; a <= head; a += CHUNK) {
    const b = Math.min(head, a + CHUNK - 1);
    await client.query(`INSERT INTO ${n.changes} (key, revision, deleted, value, created_revision, updated_at, expires_at, writer)
      SELECT ${pgKey(`((r - 1) % ${K}) + 1`)}, r, false, ${pgValue('r')}, ((r - 1) % ${K}) + 1, ${now}, NULL, NULL FROM generate_series(${a}::bigint, ${b}::bigint) r`);
    onProgress(`changes ${b.toLocaleString('en-US')}/${head.toLocaleString('en-US')}`);
  }
  await client.query(`SELECT setval(${n.seqLiteral}, ${head}, true)`);
  onProgress('VACUUM (ANALYZE)');
  await client.query(`VACUUM (ANALYZE) ${n.kv}, ${n.changes}`);
  return (performance.now() - t0) / 1000;
}

async function pgRows(client, prefix) {
  const n = await pgNames(prefix);
  const cols = 'key, revision, created_revision, encode(value, \'escape\') AS value, deleted, expires_at, writer';
  return {
    kv: (await client.query(`SELECT ${cols} FROM ${n.kv} ORDER BY key`)).rows,
    changes: (await client.query(`SELECT ${cols} FROM ${n.changes} ORDER BY revision, key`)).rows,
    meta: (await client.query(`SELECT * FROM ${n.meta}`)).rows,
    seq: (await client.query(`SELECT last_value, is_called FROM ${n.seq}`)).rows,
    migrations: (await client.query(`SELECT version FROM ${n.migrations} ORDER BY version`)).rows,
  };
}

export async function dropPostgresStore(client, prefix) {
  const { dropStore } = await import('../../dist/postgres/schema.js');
  await dropStore(client, await pgNames(prefix));
}

// ---------------------------------------------------------------- file

/** Writes a file store through the backend's own serializer (src/file/format.ts). Answers seconds taken. */
export function loadFile(path, K, V, { changeLog = 4096, now = Date.now() } = {}) {
  const t0 = performance.now();
  const head = K * V;
  const record = (j, r) => ({ key: keyOf(j), revision: r, createdRevision: j, updatedAt: now, data: JSON.stringify(valueOf(r)), encoding: 'json' });
  const records = new Map();
  for (let j = 1; j <= K; j++) records.set(keyOf(j), record(j, lastRevisionOf(j, K, V)));
  const first = Math.max(1, head - changeLog + 1);
  const changes = [];
  for (let r = first; r <= head; r++) {
    const j = keyAt(r, K);
    const current = records.get(keyOf(j));
    changes.push(current.revision === r ? current : record(j, r));
  }
  writeFileSync(path, serialize(head, first - 1, records.values(), changes, (key) => records.get(key) ?? null));
  return (performance.now() - t0) / 1000;
}

function fileRows(path) {
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  const strip = (o) => Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'updatedAt'));
  return {
    revision: doc.revision,
    prunedBelow: doc.prunedBelow,
    records: Object.fromEntries(Object.entries(doc.records).map(([k, v]) => [k, strip(v)])),
    changes: doc.changes.map(strip),
  };
}

// ---------------------------------------------------------------- fidelity

/** The K·V puts of the layout, one after the other, through the store's own API. */
async function putAll(store, K, V) {
  for (let r = 1; r <= K * V; r++) await store.put(keyOf(keyAt(r, K)), valueOf(r));
}

function sameRows(a, b) {
  const ja = JSON.stringify(a, (_k, v) => (v && v.type === 'Buffer' ? Buffer.from(v.data).toString() : v));
  const jb = JSON.stringify(b, (_k, v) => (v && v.type === 'Buffer' ? Buffer.from(v.data).toString() : v));
  return ja === jb;
}

/**
 * A store filled through put() and the same layout filled by the loader hold the same rows
 * (updated_at aside). Answers { backend: { same, rows } }; throws if they differ.
 */
export async function checkFidelity({ dir, pg }) {
  const K = 7;
  const V = 3;
  const out = {};
  {
    const a = `${dir}/fidelity-api.db`;
    const b = `${dir}/fidelity-load.db`;
    const store = new SqliteStore(a);
    await putAll(store, K, V);
    await store.close();
    await loadSqlite(b, K, V);
    const ra = sqliteRows(a);
    const rb = sqliteRows(b);
    out.sqlite = { same: sameRows(ra, rb), kvRows: ra.kv.length, changeRows: ra.changes.length };
    if (!out.sqlite.same) throw new Error(`fidelity: the SQLite loader's rows differ from put()'s:\n${JSON.stringify(ra)}\n${JSON.stringify(rb)}`);
  }
  {
    const a = `${dir}/fidelity-api.json`;
    const b = `${dir}/fidelity-load.json`;
    const store = new FileStore(a);
    await putAll(store, K, V);
    await store.close();
    loadFile(b, K, V);
    const ra = fileRows(a);
    const rb = fileRows(b);
    out.file = { same: sameRows(ra, rb), records: Object.keys(ra.records).length, changes: ra.changes.length };
    if (!out.file.same) throw new Error(`fidelity: the file loader's file differs from put()'s:\n${JSON.stringify(ra)}\n${JSON.stringify(rb)}`);
  }
  if (pg) {
    const client = await pg.client();
    try {
      const store = await PostgresStore.fromUrl(`${pg.url}?prefix=fid_api_`, { sweepIntervalMs: 0 });
      await putAll(store, K, V);
      await store.close();
      await loadPostgres(pg.url, client, 'fid_load_', K, V);
      const ra = await pgRows(client, 'fid_api_');
      const rb = await pgRows(client, 'fid_load_');
      out.postgres = { same: sameRows(ra, rb), kvRows: ra.kv.length, changeRows: ra.changes.length };
      await dropPostgresStore(client, 'fid_api_');
      await dropPostgresStore(client, 'fid_load_');
      if (!out.postgres.same) throw new Error(`fidelity: the PostgreSQL loader's rows differ from put()'s:\n${JSON.stringify(ra)}\n${JSON.stringify(rb)}`);
    } finally {
      await client.end();
    }
  }
  return out;
}
