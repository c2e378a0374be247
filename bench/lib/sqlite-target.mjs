// Shared body of the SQLite bench targets (sqlite-full.mjs, sqlite-normal.mjs).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Runs a CAS transaction `ops` times, each until it writes (BEGIN IMMEDIATE; SQLITE_BUSY: again). */
function repeat(step, ops) {
  for (let i = 0; i < ops; i++) {
    for (;;) {
      try {
        if (step.immediate()) break;
      } catch (err) {
        if (err?.code !== 'SQLITE_BUSY') throw err;
      }
    }
  }
}

export function sqliteTarget(synchronous) {
  const dirs = new Set();
  let n = 0;

  async function driver() {
    return (await import('better-sqlite3')).default;
  }

  function pathOf(url) {
    return url.replace(/^sqlite:(\/\/)?/i, '').split('?')[0];
  }

  return {
    name: `sqlite-${synchronous}`,
    crossProcess: true,

    async available() {
      try {
        const Database = await driver();
        new Database(':memory:').close();
        return true;
      } catch {
        return false;
      }
    },

    async freshUrl() {
      const dir = mkdtempSync(join(tmpdir(), `revkit-bench-${synchronous}-`));
      dirs.add(dir);
      return `sqlite:${join(dir, `store-${++n}.db`)}?synchronous=${synchronous}`;
    },

    /**
     * better-sqlite3's own CAS loop with one writer, on its own table in the
     * same file with revkit's pragmas (WAL, synchronous FULL or NORMAL, a
     * short busy timeout): BEGIN IMMEDIATE; SELECT value, revision; UPDATE …
     * WHERE revision = ? (INSERT when the key is new); COMMIT; retry when no
     * row changed. JSON values, like revkit's codec.
     */
    async rawLoop({ url, key, ops }) {
      const Database = await driver();
      const db = new Database(pathOf(url), { timeout: 10_000 });
      try {
        db.pragma('journal_mode = WAL');
        db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
        db.exec('CREATE TABLE IF NOT EXISTS raw_kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, revision INTEGER NOT NULL) WITHOUT ROWID');
        db.pragma('busy_timeout = 5');
        const get = db.prepare('SELECT value, revision FROM raw_kv WHERE key = ?');
        const upd = db.prepare('UPDATE raw_kv SET value = ?, revision = revision + 1 WHERE key = ? AND revision = ?');
        const ins = db.prepare('INSERT INTO raw_kv (key, value, revision) VALUES (?, ?, 1) ON CONFLICT (key) DO NOTHING');
        const step = db.transaction(() => {
          const row = get.get(key);
          const next = Buffer.from(JSON.stringify((row ? JSON.parse(row.value.toString('utf8')) : 0) + 1));
          return (row ? upd.run(next, key, row.revision) : ins.run(key, next)).changes === 1;
        });
        repeat(step, ops);
      } finally {
        db.close();
      }
    },

    /**
     * The same CAS loop keeping what watch() and history() need, written by
     * hand at its smallest: every write also appends its change to a log
     * (`raw_changes`, a rowid table whose rowid is the revision, so the
     * revision is drawn from one counter for the whole file), in the same
     * transaction. The floor of any design that keeps a change log in SQLite.
     */
    async logLoop({ url, key, ops }) {
      const Database = await driver();
      const db = new Database(pathOf(url), { timeout: 10_000 });
      try {
        db.pragma('journal_mode = WAL');
        db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
        db.exec(`CREATE TABLE IF NOT EXISTS log_kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, revision INTEGER NOT NULL) WITHOUT ROWID;
          CREATE TABLE IF NOT EXISTS log_changes (revision INTEGER PRIMARY KEY, key TEXT NOT NULL, value BLOB NOT NULL)`);
        db.pragma('busy_timeout = 5');
        const get = db.prepare('SELECT value, revision FROM log_kv WHERE key = ?');
        const append = db.prepare('INSERT INTO log_changes (key, value) VALUES (?, ?)');
        const upd = db.prepare('UPDATE log_kv SET value = ?, revision = ? WHERE key = ? AND revision = ?');
        const ins = db.prepare('INSERT INTO log_kv (key, value, revision) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING');
        const step = db.transaction(() => {
          const row = get.get(key);
          const next = Buffer.from(JSON.stringify((row ? JSON.parse(row.value.toString('utf8')) : 0) + 1));
          const revision = append.run(key, next).lastInsertRowid;
          if ((row ? upd.run(next, revision, key, row.revision) : ins.run(key, next, revision)).changes === 1) return true;
          throw new Error('conflict'); // rolls the log entry back; one writer never gets here
        });
        repeat(step, ops);
      } finally {
        db.close();
      }
    },

    async version() {
      const Database = await driver();
      const db = new Database(':memory:');
      try {
        const { createRequire } = await import('node:module');
        const pkg = createRequire(import.meta.url)('better-sqlite3/package.json');
        return `SQLite ${db.prepare('SELECT sqlite_version() AS v').get().v}, better-sqlite3 ${pkg.version}, synchronous=${synchronous.toUpperCase()}, WAL`;
      } finally {
        db.close();
      }
    },

    async cleanup() {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
      dirs.clear();
    },
  };
}
