import type Database from 'better-sqlite3';

/** A row of `kv` (a key's current state) or of `changes` (one committed change). */
export interface Row {
  key: string;
  value: Buffer | null;
  revision: number;
  created_revision: number | null;
  updated_at: number;
  expires_at: number | null;
  deleted: number;
  writer: string | null;
}

/** Row columns in the order of the INSERTs below. */
export type RowValues = [key: string, value: Buffer | null, revision: number, createdRevision: number | null, updatedAt: number, expiresAt: number | null, deleted: 0 | 1, writer: string | null];

type Statement<Params extends unknown[], Result = unknown> = Database.Statement<Params, Result>;

/** Every statement the store runs, prepared once. */
export interface Statements {
  get: Statement<[string], Row>;
  /** A key's row without its value and writer, for condition checks that compare revisions only. */
  getForCheck: Statement<[string], Row>;
  /** Changes when another connection commits (SQLite's PRAGMA data_version). */
  dataVersion: Statement<[], number>;
  upsert: Statement<RowValues>;
  logChange: Statement<[...RowValues, previousRevision: number]>;
  lastRevision: Statement<[], { value: number }>;
  prunedBelow: Statement<[], { value: number }>;
  oldestChange: Statement<[], number | null>;
  prune: Statement<[number]>;
  setPruned: Statement<[number]>;
  changesAfter: Statement<[number, number], Row>;
  changesAfterKey: Statement<[number, string, number], Row>;
  change: Statement<[number, string], Row & { previous_revision: number | null }>;
  changesBefore: Statement<[string, number, number], Row>;
  listFrom: Statement<[string], Row>;
  listAfter: Statement<[string], Row>;
  expired: Statement<[number], Row>;
}

export function prepareStatements(db: Database.Database): Statements {
  return {
    get: db.prepare<[string], Row>('SELECT * FROM kv WHERE key = ?'),
    // Each column read costs (≈ 0.5 µs; a value BLOB becomes a Buffer): a check of revisions reads none it does not use.
    getForCheck: db.prepare<[string], Row>('SELECT key, revision, created_revision, updated_at, expires_at, deleted FROM kv WHERE key = ?'),
    dataVersion: db.prepare<[], number>('PRAGMA data_version').pluck(true),
    upsert: db.prepare<RowValues>(
      `INSERT INTO kv (key, value, revision, created_revision, updated_at, expires_at, deleted, writer)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision,
         created_revision = excluded.created_revision, updated_at = excluded.updated_at,
         expires_at = excluded.expires_at, deleted = excluded.deleted, writer = excluded.writer`,
    ),
    logChange: db.prepare<[...RowValues, number]>(
      `INSERT INTO changes (key, value, revision, created_revision, updated_at, expires_at, deleted, writer, previous_revision)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    // The last revision drawn is the newest one in the change log (pruning drops only old ones);
    // reading it costs no page write, unlike bumping a counter row. `pruned_below` is the floor
    // should pruning ever empty the log, `revision` the floor left by databases that kept a counter.
    lastRevision: db.prepare<[], { value: number }>(
      "SELECT max(coalesce((SELECT max(revision) FROM changes), 0), (SELECT max(value) FROM meta WHERE name IN ('revision', 'pruned_below'))) AS value",
    ),
    prunedBelow: db.prepare<[], { value: number }>("SELECT value FROM meta WHERE name = 'pruned_below'"),
    oldestChange: db.prepare<[], number | null>('SELECT min(revision) FROM changes').pluck(true),
    prune: db.prepare<[number]>('DELETE FROM changes WHERE revision <= ?'),
    setPruned: db.prepare<[number]>("UPDATE meta SET value = max(value, ?) WHERE name = 'pruned_below'"),
    changesAfter: db.prepare<[number, number], Row>('SELECT * FROM changes WHERE revision > ? ORDER BY revision, key LIMIT ?'),
    changesAfterKey: db.prepare<[number, string, number], Row>('SELECT * FROM changes WHERE (revision, key) > (?, ?) ORDER BY revision, key LIMIT ?'),
    change: db.prepare<[number, string], Row & { previous_revision: number | null }>('SELECT * FROM changes WHERE revision = ? AND key = ?'),
    // A scan of the whole log: only for a chain a foreign writer left unlinked.
    changesBefore: db.prepare<[string, number, number], Row>('SELECT * FROM changes WHERE key = ? AND revision < ? ORDER BY revision DESC LIMIT ?'),
    listFrom: db.prepare<[string], Row>('SELECT * FROM kv WHERE key >= ? AND deleted = 0 ORDER BY key'),
    listAfter: db.prepare<[string], Row>('SELECT * FROM kv WHERE key > ? AND deleted = 0 ORDER BY key'),
    expired: db.prepare<[number], Row>('SELECT * FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ? AND deleted = 0 LIMIT 500'),
  };
}
