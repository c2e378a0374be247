// S03: SQLite remembers the head revision between its own commits, valid while PRAGMA data_version is unchanged
// (src/sqlite/writes.ts). The data_version it remembers must be one read inside the write transaction: another
// process may commit between our COMMIT and any later read. Here that moment is made deterministic: right after
// `a` commits, another connection (a second SqliteStore on the file, standing for another process) commits.
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { expect, it } from 'vitest';
import { SqliteStore } from '../src/sqlite/index.js';

it('S03: a commit by another process right after ours is seen: no revision is handed out twice', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 's03-')), 'db.sqlite');
  const a = new SqliteStore(path);
  const other = new SqliteStore(path);
  await a.put('warm', 0); // a remembers the head from now on
  const writes = (a as any).writes;
  const committed = writes.committed.bind(writes);
  let theirs: Promise<any> | undefined;
  writes.committed = () => {
    if (theirs === undefined) {
      theirs = other.put('x', 'theirs');
      (other as any).group.flush(); // the other process commits now, between our COMMIT and what follows it
    }
    committed();
  };
  const first = await a.put('a', 1);
  const x = await theirs!;
  const b = await a.put('b', 2);
  console.log('S03: a told', first.revision, '| other process told', x.revision, '| a then told', b.revision);
  const seen: string[] = [];
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 300);
  try { for await (const e of a.watch({ prefix: '', fromRevision: x.revision, signal: ac.signal })) seen.push(`${e.key}@${e.revision}`); } catch { /* aborted */ }
  console.log('S03: watch from', x.revision, '(a revision the other process was told) delivered', seen);
  expect(b.revision).toBeGreaterThan(x.revision);
  expect(seen).toContain(`b@${b.revision}`);
  await a.close(); await other.close();
});
