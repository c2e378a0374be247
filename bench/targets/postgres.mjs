// Bench target for revkit/postgres (contract: bench/targets/README.md).
import { randomBytes } from 'node:crypto';

export const name = 'postgres';

const BASE = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test`;
const made = new Set();

async function driver() {
  return (await import('pg')).default;
}

export async function available() {
  try {
    const pg = await driver();
    const client = new pg.Client({ connectionString: BASE, connectionTimeoutMillis: 2000 });
    await client.connect();
    try {
      await client.query('SELECT 1');
      return true;
    } finally {
      await client.end();
    }
  } catch {
    return false;
  }
}

export async function freshUrl() {
  const prefix = `rk_bench_${process.pid}_${randomBytes(4).toString('hex')}_`;
  made.add(prefix);
  return `${BASE}${BASE.includes('?') ? '&' : '?'}prefix=${prefix}`;
}

function prefixOf(url) {
  return new URL(url).searchParams.get('prefix') ?? 'revkit_';
}

function connectionOf(url) {
  const u = new URL(url);
  u.searchParams.delete('prefix');
  return u.toString();
}

/**
 * The raw pg CAS loop with one writer, what an application would write by
 * hand: SELECT value, revision; then UPDATE … WHERE revision = $n (INSERT …
 * ON CONFLICT DO NOTHING when the key is new); retry when no row was
 * changed. Same value encoding as revkit (JSON text in bytea), its own
 * table (`<prefix>raw`), a pg.Pool like revkit's.
 */
export async function rawLoop({ url, key, ops }) {
  const pg = await driver();
  const table = `"${prefixOf(url)}raw"`;
  const pool = new pg.Pool({ connectionString: connectionOf(url), max: 2 });
  pool.on('error', () => undefined);
  try {
    await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL, revision bigint NOT NULL)`);
    for (let i = 0; i < ops; i++) {
      for (;;) {
        const r = await pool.query({ name: `raw_get_${table}`, text: `SELECT value, revision FROM ${table} WHERE key = $1`, values: [key] });
        const row = r.rows[0];
        const next = Buffer.from(JSON.stringify((row ? JSON.parse(row.value.toString('utf8')) : 0) + 1));
        const w = row
          ? await pool.query({ name: `raw_upd_${table}`, text: `UPDATE ${table} SET value = $2, revision = revision + 1 WHERE key = $1 AND revision = $3`, values: [key, next, row.revision] })
          : await pool.query({ name: `raw_ins_${table}`, text: `INSERT INTO ${table} (key, value, revision) VALUES ($1, $2, 1) ON CONFLICT (key) DO NOTHING`, values: [key, next] });
        if (w.rowCount === 1) break;
      }
    }
  } finally {
    await pool.end();
  }
}

/**
 * The same loop keeping what watch() and history() need, written by hand at
 * its smallest: the write draws the revision from one sequence for the whole
 * store and appends the change to a log table in the same statement (a
 * data-modifying CTE, one round trip). The floor of any design that keeps a
 * change log in PostgreSQL tables.
 */
export async function logLoop({ url, key, ops }) {
  const pg = await driver();
  const p = prefixOf(url);
  const [kv, log, seq] = [`"${p}log_kv"`, `"${p}log_changes"`, `"${p}log_seq"`];
  const pool = new pg.Pool({ connectionString: connectionOf(url), max: 2 });
  pool.on('error', () => undefined);
  try {
    await pool.query(`CREATE TABLE IF NOT EXISTS ${kv} (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL, revision bigint NOT NULL);
      CREATE TABLE IF NOT EXISTS ${log} (revision bigint PRIMARY KEY, key text COLLATE "C" NOT NULL, value bytea NOT NULL);
      CREATE SEQUENCE IF NOT EXISTS ${seq}`);
    const append = (written) => `, w AS (${written} RETURNING key, value, revision) INSERT INTO ${log} (revision, key, value) SELECT revision, key, value FROM w RETURNING revision`;
    for (let i = 0; i < ops; i++) {
      for (;;) {
        const r = await pool.query({ name: `log_get_${p}`, text: `SELECT value, revision FROM ${kv} WHERE key = $1`, values: [key] });
        const row = r.rows[0];
        const next = Buffer.from(JSON.stringify((row ? JSON.parse(row.value.toString('utf8')) : 0) + 1));
        const w = row
          ? await pool.query({ name: `log_upd_${p}`, text: `WITH r AS (SELECT nextval('${seq}') AS rev)${append(`UPDATE ${kv} SET value = $2, revision = (SELECT rev FROM r) WHERE key = $1 AND revision = $3`)}`, values: [key, next, row.revision] })
          : await pool.query({ name: `log_ins_${p}`, text: `WITH r AS (SELECT nextval('${seq}') AS rev)${append(`INSERT INTO ${kv} (key, value, revision) SELECT $1, $2, rev FROM r ON CONFLICT (key) DO NOTHING`)}`, values: [key, next] });
        if (w.rowCount === 1) break;
      }
    }
  } finally {
    await pool.end();
  }
}

export async function cleanup() {
  if (made.size === 0) return;
  const pg = await driver();
  const { dropPostgresStore } = await import('../../dist/postgres/index.js');
  const pool = new pg.Pool({ connectionString: BASE, max: 1 });
  pool.on('error', () => undefined);
  try {
    for (const prefix of made) {
      await pool.query(`DROP TABLE IF EXISTS "${prefix}raw", "${prefix}log_kv", "${prefix}log_changes"; DROP SEQUENCE IF EXISTS "${prefix}log_seq"`).catch(() => undefined);
      await dropPostgresStore(pool, { prefix }).catch(() => undefined);
    }
    made.clear();
  } finally {
    await pool.end();
  }
}
