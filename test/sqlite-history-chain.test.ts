import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/sqlite/index.js';
import { jsonCodec } from '../src/core/index.js';
import { tempDir, uniqueName } from './helpers.js';

// history() walks each key's chain of changes (previous_revision) instead of a (key, revision) index.
const dir = tempDir('sqlite-chain');
const freshPath = () => join(dir, `${uniqueName('db')}.db`);

/** A database as revkit's first schema left it: a by-key index, no previous_revision. */
function firstSchemaDatabase(path: string): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(`CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value BLOB, revision INTEGER NOT NULL, created_revision INTEGER,
             updated_at INTEGER NOT NULL, expires_at INTEGER, deleted INTEGER NOT NULL DEFAULT 0, writer TEXT) WITHOUT ROWID;
           CREATE INDEX kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL AND deleted = 0;
           CREATE TABLE changes (revision INTEGER NOT NULL, key TEXT NOT NULL, value BLOB, created_revision INTEGER,
             updated_at INTEGER NOT NULL, expires_at INTEGER, deleted INTEGER NOT NULL DEFAULT 0, writer TEXT,
             PRIMARY KEY (revision, key)) WITHOUT ROWID;
           CREATE INDEX changes_by_key ON changes (key, revision);
           CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;
           INSERT INTO meta (name, value) VALUES ('revision', 0), ('pruned_below', 0);`);
  const change = db.prepare('INSERT INTO changes VALUES (?, ?, ?, ?, 1, NULL, ?, NULL)');
  const row = db.prepare('INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, 1, NULL, ?, NULL)');
  const history: Array<[number, string, number | null]> = [[1, 'a', 1], [2, 'b', 20], [3, 'a', null], [4, 'b', 21], [5, 'a', 3]];
  for (const [revision, key, value] of history) {
    const bytes = value === null ? null : Buffer.from(JSON.stringify(value));
    const created = value === null ? null : key === 'a' ? (revision === 5 ? 5 : 1) : 2;
    change.run(revision, key, bytes, created, value === null ? 1 : 0);
    row.run(key, bytes, revision, created, value === null ? 1 : 0);
  }
  db.pragma('user_version = 1');
  db.close();
}

describe('sqlite: history by chain of changes', () => {
  it('a database of the first schema is migrated: its history reads as before, new writes extend it, the by-key index is gone', async () => {
    const path = freshPath();
    firstSchemaDatabase(path);
    const store = new SqliteStore(path);
    expect((await store.history('a')).map((r) => r.revision)).toEqual([5, 3, 1]);
    expect((await store.history('b')).map((r) => r.revision)).toEqual([4, 2]);
    expect((await store.history('a', { limit: 2 })).map((r) => r.revision)).toEqual([5, 3]);
    await store.put('a', 4);
    await store.delete('b');
    expect((await store.history('a')).map((r) => [r.revision, 'deleted' in r ? 'deleted' : (r as { value: unknown }).value])).toEqual([[6, 4], [5, 3], [3, 'deleted'], [1, 1]]);
    expect((await store.history('b')).map((r) => r.revision)).toEqual([7, 4, 2]);
    await store.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(2);
    expect((db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'changes'").all() as Array<{ name: string }>).map((r) => r.name).filter((n) => !n.startsWith('sqlite_autoindex'))).toEqual([]);
    db.close();
  });

  it('a process of the first schema still writing the migrated file (a rolling upgrade): history and one-key watches stay whole', async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    await store.put('k', 'v1');
    await store.put('k', 'v2');
    // What revkit of schema 1 writes: the key's row, then a change without previous_revision.
    const old = new Database(path);
    old.transaction(() => {
      const revision = (old.prepare('SELECT max(revision) AS r FROM changes').get() as { r: number }).r + 1;
      const bytes = Buffer.from(JSON.stringify('v3 (schema 1)'));
      old.prepare('INSERT INTO kv (key, value, revision, created_revision, updated_at, expires_at, deleted, writer) VALUES (?, ?, ?, 1, 1, NULL, 0, NULL) ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision').run('k', bytes, revision);
      old.prepare('INSERT INTO changes (key, value, revision, created_revision, updated_at, expires_at, deleted, writer) VALUES (?, ?, ?, 1, 1, NULL, 0, NULL)').run('k', bytes, revision);
    }).immediate();
    old.close();
    await store.put('k', 'v4');
    await store.delete('k');
    await store.put('k', 'v6');
    expect((await store.history('k')).map((r) => r.revision)).toEqual([6, 5, 4, 3, 2, 1]);
    const seen: number[] = [];
    for await (const event of store.watch({ key: 'k', fromRevision: 0, signal: AbortSignal.timeout(3000) })) {
      seen.push(event.revision);
      if (seen.length === 6) break;
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    await store.close();
  });

  it('a file of a newer schema than this revkit is refused, untouched (not even its journal mode)', async () => {
    const path = freshPath();
    await new SqliteStore(path).close();
    const db = new Database(path);
    db.pragma('journal_mode = DELETE');
    db.pragma('user_version = 99');
    db.close();
    const before = readFileSync(path);
    expect(() => new SqliteStore(path)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('upgrade revkit') }));
    expect(readFileSync(path).equals(before)).toBe(true);
    const after = new Database(path, { readonly: true });
    expect(after.pragma('journal_mode', { simple: true })).toBe('delete');
    after.close();
  });

  it('a watch that meets a value its codec cannot read gets every commit before it, then the error, by key or by prefix', async () => {
    const path = freshPath();
    const writer = new SqliteStore(path);
    for (let i = 0; i < 6; i++) await writer.put('k', i === 3 ? 'unreadable' : i);
    await writer.close();
    const picky = { ...jsonCodec, name: 'picky', decode: (bytes: Uint8Array) => {
      const value = jsonCodec.decode(bytes);
      if (value === 'unreadable') throw new Error('not for this codec');
      return value;
    } };
    const store = new SqliteStore(path, { codec: picky });
    for (const options of [{ key: 'k', fromRevision: 0 }, { prefix: 'k', fromRevision: 0 }]) {
      const seen: number[] = [];
      let failure: unknown;
      try {
        for await (const event of store.watch({ ...options, signal: AbortSignal.timeout(3000) })) seen.push(event.revision);
      } catch (err) {
        failure = err;
      }
      expect([seen, (failure as { code?: string })?.code]).toEqual([[1, 2, 3], 'ERR_BACKEND']);
    }
    await store.close();
  });

  it('deletes of every kind (delete, atomic, expiry) and atomic puts stay in the key\'s chain', async () => {
    const store = new SqliteStore(freshPath(), { sweepIntervalMs: 20 });
    const r1 = (await store.put('k', 1)).revision;
    const r2 = await store.delete('k');
    const r3 = (await store.atomic().set('k', 2).set('other', 0).commit()).revision;
    const r4 = (await store.atomic().delete('k').commit()).revision;
    const r5 = (await store.put('k', 3, { ttlMs: 30 })).revision;
    let swept: number | undefined;
    for (let i = 0; i < 200 && swept === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const newest = (await store.history('k', { limit: 1 }))[0];
      if (newest && newest.revision > r5) swept = newest.revision;
    }
    expect(swept).toBeDefined();
    const seen = (await store.history('k')).map((r) => [r.revision, 'deleted' in r]);
    expect(seen).toEqual([[swept, true], [r5, false], [r4, true], [r3, false], [r2, true], [r1, false]]);
    await store.close();
  });

  it('history ends where pruning ended the log, and another key\'s changes never join the chain', async () => {
    const store = new SqliteStore(freshPath(), { historyRetention: 50 });
    for (let i = 0; i < 1200; i++) await store.put(i % 3 === 0 ? 'x' : `y${i % 7}`, i);
    const head = await store.headRevision();
    const history = await store.history('x', { limit: 10_000 });
    expect(history.length).toBeGreaterThan(0);
    expect(history.every((r) => r.key === 'x')).toBe(true);
    // Pruning runs every 1000 writes and keeps at least the newest 50 revisions: what remains of x is
    // every x change that survived, newest first, with no hole in the middle.
    const revisions = history.map((r) => r.revision);
    expect(revisions).toEqual([...revisions].sort((p, q) => q - p));
    expect(revisions[0]).toBe(head - ((head - 1) % 3));
    for (let i = 1; i < revisions.length; i++) expect((revisions[i - 1] as number) - (revisions[i] as number)).toBe(3);
    expect(Math.min(...revisions)).toBeLessThanOrEqual(head - 50);
    await store.close();
  });
});

describe('sqlite: the head revision a connection remembers between its commits', () => {
  it('another connection\'s commits in between are seen: revisions never repeat, every change is logged once', async () => {
    const path = freshPath();
    const a = new SqliteStore(path);
    const b = new SqliteStore(path);
    const seen: number[] = [];
    for (let i = 0; i < 30; i++) {
      const writer = i % 3 === 2 ? b : a;
      // Grouped writes of one store and lone writes of the other, interleaved.
      const results = await Promise.all([writer.put(`k${i}`, i), ...(writer === a ? [a.put(`j${i}`, i)] : [])]);
      seen.push(...results.map((e) => e.revision));
      if (i % 5 === 4) seen.push(await b.delete(`k${i - 1}`) as number);
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...seen].sort((x, y) => x - y));
    expect(await a.headRevision()).toBe(seen[seen.length - 1]);
    const events: number[] = [];
    for await (const event of a.watch({ prefix: '', fromRevision: 0, signal: AbortSignal.timeout(2000) })) {
      events.push(event.revision);
      if (events.length === seen.length) break;
    }
    expect(events).toEqual(seen);
    await a.close();
    await b.close();
  });
});

describe('sqlite: trimming a long change log', () => {
  it('is done in pieces, the event loop free between them, until the log is down to the retention', async () => {
    const path = freshPath();
    const big = new SqliteStore(path);
    for (let round = 0; round < 25; round++) await Promise.all(Array.from({ length: 1000 }, (_, i) => big.put(`fill/${i}`, round)));
    await big.close();
    const store = new SqliteStore(path, { historyRetention: 100 });
    const log = new Database(path, { readonly: true });
    const pruned = () => (log.prepare("SELECT value FROM meta WHERE name = 'pruned_below'").get() as { value: number }).value;
    // The 1,000th write of this store prunes: the first piece is done in its commit, the rest after it.
    await Promise.all(Array.from({ length: 1000 }, (_, i) => store.put(`more/${i}`, i)));
    const head = await store.headRevision();
    const firstPiece = pruned();
    expect(firstPiece).toBeGreaterThan(0);
    expect(firstPiece).toBeLessThan(head - 100);
    for (let i = 0; i < 500 && pruned() < head - 100; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(pruned()).toBe(head - 100);
    expect(log.prepare('SELECT min(revision) AS oldest, count(*) AS n FROM changes').get()).toEqual({ oldest: head - 99, n: 100 });
    // What is left reads as before: the newest changes, and a watch from before them is told they are gone.
    expect((await store.history('more/999')).map((r) => r.revision)).toEqual([head]);
    await expect(store.watch({ prefix: '', fromRevision: head - 150 })[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'ERR_HISTORY_GONE' });
    log.close();
    await store.close();
  });
});

describe('sqlite: a watch of one key from an old revision', () => {
  async function take(store: SqliteStore, options: { key: string; fromRevision: number }, count: number): Promise<Array<[string, number]>> {
    const seen: Array<[string, number]> = [];
    if (count === 0) return seen;
    for await (const event of store.watch({ ...options, signal: AbortSignal.timeout(5000) })) {
      seen.push([event.type, event.revision]);
      if (seen.length === count) break;
    }
    return seen;
  }

  it('gets exactly the key\'s changes after the revision, from any point of its history, then the live ones', async () => {
    const store = new SqliteStore(freshPath());
    const expected: Array<[string, number]> = [];
    for (let i = 0; i < 3000; i++) {
      const key = i % 250 === 7 ? 'watched' : `other/${i % 40}`;
      if (key === 'watched' && i % 1000 === 257) expected.push(['delete', await store.delete('watched') as number]);
      else if (key === 'watched') expected.push(['put', (await store.put('watched', i)).revision]);
      else await store.put(key, i);
    }
    await store.atomic().set('watched', 'atomic').set('other/x', 1).commit().then((r) => expected.push(['put', r.revision]));
    for (const from of [0, 1, (expected[0] as [string, number])[1], (expected[0] as [string, number])[1] - 1, (expected[5] as [string, number])[1] + 1, (expected.at(-1) as [string, number])[1]]) {
      const want = expected.filter(([, revision]) => revision > from);
      const live = take(store, { key: 'watched', fromRevision: from }, want.length + 1);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const next = (await store.put('watched', 'live')).revision;
      expect(await live).toEqual([...want, ['put', next]]);
      expected.push(['put', next]);
    }
    await store.close();
  });

  it('a key with more changes since the revision than one page is read from the log, and gets them all', async () => {
    const store = new SqliteStore(freshPath());
    const revisions: number[] = [];
    for (let i = 0; i < 1500; i++) revisions.push((await store.put('hot', i)).revision);
    expect(await take(store, { key: 'hot', fromRevision: 0 }, 1500)).toEqual(revisions.map((r) => ['put', r]));
    await store.close();
  });
});
