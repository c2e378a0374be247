// S04 / S07: group commit rolls a batch back when a write in it fails inside SQLite (here a trigger refuses the
// key 'poison') and runs it again, each write in a savepoint. If SQLite reports the write lock busy for that
// second run (another process took the lock in the gap), the batch waits, and the other process may commit
// in between. docs/semantics.md: the batch "runs again with the decision already made (no fn is called again)
// if the key reads the same, and the attempt starts over, as after a conflict, if it does not".
// The gap is made deterministic here: the second BEGIN IMMEDIATE of the batch is answered SQLITE_BUSY after
// another connection (a second SqliteStore on the same file, standing for another process) has committed.
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';
import { SqliteStore } from '../src/sqlite/index.js';

const settle = <T>(p: Promise<T>) => p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));

function setup() {
  const path = join(mkdtempSync(join(tmpdir(), 's04-')), 'db.sqlite');
  const a = new SqliteStore(path);
  const other = new SqliteStore(path); // "another process"
  const db = new Database(path);
  db.exec("CREATE TRIGGER refuse_poison BEFORE INSERT ON kv WHEN NEW.key = 'poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END");
  db.close();
  return { a, other };
}

/** The next batch of `a` that is run again after a rollback finds the lock taken: `meanwhile` runs, then SQLITE_BUSY. */
function busyOnRerun(a: SqliteStore, meanwhile: () => void) {
  const hooks = (a as any).group.hooks;
  const original = hooks.transaction;
  let calls = 0;
  let fired = false;
  hooks.transaction = (body: () => void) => {
    calls++;
    if (calls === 2 && !fired) {
      fired = true;
      meanwhile();
      throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    }
    return original(body);
  };
}

it('S04: another process commits the key between the rollback and the rerun: its write is not overwritten', async () => {
  const { a, other } = setup();
  const base = await a.put('k', 0);
  let otherWrite: Promise<unknown> | undefined;
  busyOnRerun(a, () => {
    otherWrite = other.put('k', 100, { ifRevision: base.revision }); // a CAS of the other process
    (other as any).group.flush(); // ...committed now, while `a` waits for the lock
  });
  const [mine, poisoned] = await Promise.all([
    settle(a.update<number>('k', (v) => v + 1)),
    (async () => { for (let i = 0; i < 20; i++) await Promise.resolve(); return settle(a.atomic().set('first', 1).set('poison', 1).commit()); })(), // joins the update's batch
  ]);
  const theirs = await settle(otherWrite!);
  const stored = await a.get('k');
  console.log('S04: other process told', theirs.ok ? `ok rev ${(theirs.value as any).revision} value 100` : theirs.error,
    '| update told', mine.ok ? `ok value ${mine.value?.value} rev ${mine.value?.revision}` : mine.error,
    '| stored', stored?.value, '| poisoned batch ok?', poisoned.ok);
  expect(theirs.ok).toBe(true);
  expect(stored?.value).toBe(101); // the other process's 100, then our +1 on it
  await a.close(); await other.close();
});

it('S07: the batch waiting for the lock after its rollback is not declined: the mutation is not called again', async () => {
  const { a, other } = setup();
  const base = await a.put('k', 0);
  busyOnRerun(a, () => {
    void other.put('elsewhere', 1); // the other process writes another key: 'k' reads the same on the rerun
    (other as any).group.flush();
  });
  let calls = 0;
  const [mine] = await Promise.all([
    settle(a.update<number>('k', (v) => { calls++; if (calls > 1) throw new Error(`called again (call ${calls}) on ${v}`); return v + 1; })),
    (async () => { for (let i = 0; i < 20; i++) await Promise.resolve(); return settle(a.atomic().set('first', 1).set('poison', 1).commit()); })(), // joins the update's batch
  ]);
  const stored = await a.get('k');
  console.log('S07: fn calls', calls, '| update told', mine.ok ? `ok ${mine.value?.value}` : `${(mine.error as any).code ?? ''} ${(mine.error as Error).message} / cause: ${((mine.error as any).cause as Error)?.message}`, '| stored', stored?.value);
  expect(calls).toBe(1);          // the decision already made is written again: no fn is called again
  expect(mine.ok && mine.value?.value).toBe(1);
  await a.close(); await other.close();
});
