// Issue #15 point 4: what does the change log cost the SQLite driver loop, and would kine's
// one-table shape (k3s-io/kine, pkg/drivers/generic: every write is one INSERT into an
// append-only table; a unique index on (name, prev_revision) turns a stale write into a
// constraint error) cost less? Three hand-written better-sqlite3 CAS loops, no revkit code,
// one writer incrementing one key, same pragmas as the store (WAL, FULL or NORMAL, 5 ms busy slice).
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';

const json = (n) => Buffer.from(JSON.stringify(n));
const parse = (b) => JSON.parse(b.toString('utf8'));

const SHAPES = {
  // bench/lib/sqlite-target.mjs's raw loop: one row per key, no history.
  raw: (db) => {
    db.exec('CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, revision INTEGER NOT NULL) WITHOUT ROWID');
    const get = db.prepare('SELECT value, revision FROM kv WHERE key = ?');
    const upd = db.prepare('UPDATE kv SET value = ?, revision = revision + 1 WHERE key = ? AND revision = ?');
    const ins = db.prepare('INSERT INTO kv (key, value, revision) VALUES (?, ?, 1) ON CONFLICT (key) DO NOTHING');
    const step = db.transaction((key) => {
      const row = get.get(key);
      return (row ? upd.run(json(parse(row.value) + 1), key, row.revision) : ins.run(key, json(1))).changes === 1;
    });
    return (key) => step.immediate(key);
  },
  // revkit's shape today (src/sqlite/schema.ts): current row in kv, every change appended to
  // `changes` (primary key (revision, key), index (key, revision)), the revision drawn inside BEGIN IMMEDIATE.
  revkit: (db) => {
    db.exec(`CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value BLOB, revision INTEGER NOT NULL, created_revision INTEGER, updated_at INTEGER NOT NULL, expires_at INTEGER, deleted INTEGER NOT NULL DEFAULT 0, writer TEXT) WITHOUT ROWID;
      CREATE TABLE changes (revision INTEGER NOT NULL, key TEXT NOT NULL, value BLOB, created_revision INTEGER, updated_at INTEGER NOT NULL, expires_at INTEGER, deleted INTEGER NOT NULL DEFAULT 0, writer TEXT, PRIMARY KEY (revision, key)) WITHOUT ROWID;
      CREATE INDEX changes_by_key ON changes (key, revision);`);
    const get = db.prepare('SELECT value, revision, created_revision FROM kv WHERE key = ?');
    const head = db.prepare('SELECT coalesce(max(revision), 0) AS r FROM changes');
    const upsert = db.prepare(`INSERT INTO kv (key, value, revision, created_revision, updated_at, writer) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision, updated_at = excluded.updated_at, writer = excluded.writer`);
    const log = db.prepare('INSERT INTO changes (revision, key, value, created_revision, updated_at, writer) VALUES (?, ?, ?, ?, ?, ?)');
    const read = (key) => get.get(key);
    const write = db.transaction((key, seen) => {
      const row = get.get(key);
      if ((row?.revision ?? 0) !== (seen?.revision ?? 0)) return false;
      const revision = head.get().r + 1;
      const value = json((seen ? parse(seen.value) : 0) + 1);
      const now = Date.now();
      upsert.run(key, value, revision, row?.created_revision ?? revision, now, 'w');
      log.run(revision, key, value, row?.created_revision ?? revision, now, 'w');
      return true;
    });
    return (key) => write.immediate(key, read(key));
  },
  // kine's shape: one append-only table; the newest row of a key is its value; a write is a
  // single autocommit INSERT whose prev_revision is the revision read, so a concurrent writer's
  // INSERT with the same prev_revision fails on the unique index (the CAS) — no BEGIN, no re-read.
  kine: (db) => {
    db.exec(`CREATE TABLE log (revision INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, prev_revision INTEGER NOT NULL, created_revision INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL, writer TEXT, value BLOB);
      CREATE UNIQUE INDEX log_key_prev ON log (key, prev_revision);`);
    const latest = db.prepare('SELECT revision, created_revision, value FROM log WHERE key = ? ORDER BY prev_revision DESC LIMIT 1');
    const insert = db.prepare('INSERT INTO log (key, prev_revision, created_revision, updated_at, writer, value) VALUES (?, ?, ?, ?, ?, ?)');
    return (key) => {
      const row = latest.get(key);
      try {
        const r = insert.run(key, row?.revision ?? 0, row?.created_revision ?? 0, Date.now(), 'w', json((row ? parse(row.value) : 0) + 1));
        return r.changes === 1;
      } catch (err) {
        if (err?.code === 'SQLITE_CONSTRAINT_UNIQUE') return false;
        throw err;
      }
    };
  },
};

function timeShape(shape, synchronous, ops, n) {
  const path = join(tmpdir(), `revkit-shape-${process.pid}-${shape}-${n}.db`);
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('busy_timeout = 5');
    const step = SHAPES[shape](db);
    const t = performance.now();
    const cpu = process.cpuUsage();
    for (let i = 0; i < ops; i++) while (!step('counter'));
    const used = process.cpuUsage(cpu);
    return { ms: (performance.now() - t) / ops, cpuMs: (used.user + used.system) / 1000 / ops };
  } finally {
    db.close();
    for (const s of ['', '-wal', '-shm']) rmSync(path + s, { force: true });
  }
}

/**
 * Median wall and CPU ms per op of each shape over alternating rounds, and each one's ratio to
 * `raw` (the median of the per-round ratios). On a loaded machine the CPU figure is the steadier
 * one where no fsync is waited for (NORMAL).
 */
export function shapeStudy(synchronous, { rounds = 5, ops = synchronous === 'full' ? 400 : 4000 } = {}) {
  const perOp = Object.fromEntries(Object.keys(SHAPES).map((s) => [s, []]));
  let n = 0;
  for (const s of Object.keys(SHAPES)) timeShape(s, synchronous, Math.ceil(ops / 4), n++); // warm-up
  for (let r = 0; r < rounds; r++) for (const s of Object.keys(SHAPES)) perOp[s].push(timeShape(s, synchronous, ops, n++));
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const out = {};
  for (const s of Object.keys(SHAPES)) {
    out[s] = {
      msPerOp: median(perOp[s].map((x) => x.ms)),
      cpuMsPerOp: median(perOp[s].map((x) => x.cpuMs)),
      ratioToRaw: median(perOp[s].map((x, i) => x.ms / perOp.raw[i].ms)),
      cpuRatioToRaw: median(perOp[s].map((x, i) => x.cpuMs / perOp.raw[i].cpuMs)),
    };
  }
  return out;
}
