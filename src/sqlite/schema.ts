import type Database from 'better-sqlite3';
import { InvalidArgumentError } from '../core/index.js';

/**
 * Versioned migrations, applied in order under BEGIN IMMEDIATE so that
 * several processes opening a new file at once serialise; the applied version
 * lives in SQLite's own `user_version`.
 */
const migrations: string[] = [
  `CREATE TABLE IF NOT EXISTS kv (
     key TEXT PRIMARY KEY NOT NULL,
     value BLOB,
     revision INTEGER NOT NULL,
     created_revision INTEGER,
     updated_at INTEGER NOT NULL,
     expires_at INTEGER,
     deleted INTEGER NOT NULL DEFAULT 0,
     writer TEXT
   ) WITHOUT ROWID;
   CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL AND deleted = 0;
   -- Every committed change, in revision order: the source of watch() and history().
   CREATE TABLE IF NOT EXISTS changes (
     revision INTEGER NOT NULL,
     key TEXT NOT NULL,
     value BLOB,
     created_revision INTEGER,
     updated_at INTEGER NOT NULL,
     expires_at INTEGER,
     deleted INTEGER NOT NULL DEFAULT 0,
     writer TEXT,
     PRIMARY KEY (revision, key)
   ) WITHOUT ROWID;
   CREATE INDEX IF NOT EXISTS changes_by_key ON changes (key, revision);
   CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;
   INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('pruned_below', 0);`,
  // Each change names the key's change before it, and history() walks that chain by primary key.
  // It replaces the (key, revision) index, which made every write dirty a page of its own: 64
  // grouped writes on 64 keys wrote ~118 WAL pages per commit, half the cost of a write (bench/lib/decisions.md).
  // 0: the key had no change before. NULL only from a revkit of schema 1 still writing the file
  // (a rolling upgrade): the trigger links such a row by scanning the log for the key — slow, but
  // the chain never breaks (history() and watches would otherwise stop at it, missing older changes).
  `ALTER TABLE changes ADD COLUMN previous_revision INTEGER;
   UPDATE changes SET previous_revision =
     coalesce((SELECT max(p.revision) FROM changes p WHERE p.key = changes.key AND p.revision < changes.revision), 0);
   DROP INDEX IF EXISTS changes_by_key;
   CREATE TRIGGER IF NOT EXISTS changes_link_schema1_writer AFTER INSERT ON changes WHEN NEW.previous_revision IS NULL
   BEGIN
     UPDATE changes SET previous_revision =
       coalesce((SELECT max(p.revision) FROM changes p WHERE p.key = NEW.key AND p.revision < NEW.revision), 0)
     WHERE revision = NEW.revision AND key = NEW.key;
   END;`,
];

export const SCHEMA_VERSION = migrations.length;

/** A file of a newer schema than this revkit knows is refused: its writes would break what that revkit keeps. */
export function assertKnownSchema(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new InvalidArgumentError(`this SQLite file is at schema version ${current}, newer than this revkit (${SCHEMA_VERSION}); upgrade revkit`);
  }
}

export function migrate(db: Database.Database): void {
  assertKnownSchema(db);
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current === SCHEMA_VERSION) return;
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < migrations.length; v++) {
      db.exec(migrations[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    }
  }).immediate();
}
