#!/usr/bin/env node
// Where one SQLite write's time goes (issue 26, one writer on synchronous=NORMAL): revkit's
// statements for one put, run by hand with better-sqlite3 on a file revkit created, each
// variant leaving one piece out, so the cost of each piece is the difference.
//
//   npm run build && node bench/sqlite-statement-costs.mjs [--ops 100000] [--passes 2]
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { open } from '../dist/index.js';
import { flagArgs } from './lib/figures.mjs';

const flags = flagArgs();
const ops = Number(flags.ops ?? 100_000);
const passes = Number(flags.passes ?? 2);
const path = join(tmpdir(), `revkit-statement-costs-${process.pid}.db`);
const created = await open(`sqlite:${path}?synchronous=normal`);
await created.put('k', 0);
await created.close();

const db = new Database(path);
try {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const getForCheck = db.prepare('SELECT key, revision, created_revision, updated_at, expires_at, deleted FROM kv WHERE key = ?');
  const dataVersion = db.prepare('PRAGMA data_version').pluck(true);
  const upsert = db.prepare(`INSERT INTO kv (key, value, revision, created_revision, updated_at, expires_at, deleted, writer) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision, created_revision = excluded.created_revision,
      updated_at = excluded.updated_at, expires_at = excluded.expires_at, deleted = excluded.deleted, writer = excluded.writer`);
  const logChange = db.prepare(`INSERT INTO changes (key, value, revision, created_revision, updated_at, expires_at, deleted, writer, previous_revision)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  db.exec('CREATE TABLE rowid_log (revision INTEGER PRIMARY KEY, key TEXT NOT NULL, value BLOB)');
  const appendRowid = db.prepare('INSERT INTO rowid_log (revision, key, value) VALUES (?, ?, ?)');
  const begin = db.prepare('BEGIN IMMEDIATE');
  const commit = db.prepare('COMMIT');
  let revision = db.prepare('SELECT max(revision) AS r FROM changes').get().r;

  const put = ({ head = true, log = 'changes' } = {}) => () => {
    begin.run();
    if (head) dataVersion.get();
    const current = getForCheck.get('k');
    const r = ++revision;
    const now = Date.now();
    const value = Buffer.from(String(r));
    upsert.run('k', value, r, current.created_revision, now, null, 0, null);
    if (log === 'changes') logChange.run('k', value, r, current.created_revision, now, null, 0, null, current.revision);
    else if (log === 'rowid') appendRowid.run(r, 'k', value);
    commit.run();
  };
  const variants = [
    ['revkit put: BEGIN IMMEDIATE, head check, row check, upsert, change row, COMMIT', put()],
    ['… without the head check (PRAGMA data_version)', put({ head: false })],
    ['… change row into a rowid log (revision as rowid, 3 columns)', put({ log: 'rowid' })],
    ['… no change row at all', put({ log: 'none' })],
    ['BEGIN IMMEDIATE + COMMIT alone', () => { begin.run(); commit.run(); }],
  ];
  console.log(`SQLite ${db.prepare('SELECT sqlite_version() AS v').get().v}, synchronous=NORMAL, WAL; ${ops} writes of one key per variant, ${passes} passes`);
  for (let pass = 1; pass <= passes; pass++) {
    for (const [name, step] of variants) {
      for (let i = 0; i < 5_000; i++) step();
      const started = performance.now();
      for (let i = 0; i < ops; i++) step();
      console.log(`${name.padEnd(82)} ${(((performance.now() - started) * 1000) / ops).toFixed(2).padStart(6)} µs`);
    }
  }
} finally {
  db.close();
  for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
}
