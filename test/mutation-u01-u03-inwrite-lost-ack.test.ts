// U01 / U03: on SQLite (the only store with updateInWrite), a write of an update() whose acknowledgement was
// lost must be looked for by its writer token before the mutation runs again (DESIGN §4 rule 5). SqliteStore
// itself never reports an ambiguous write, so a subclass plays a lost acknowledgement, as the suite's FaultStore
// does for stores without updateInWrite.
import { expect, it } from 'vitest';
import { BackendError, type Entry, type PutOptions, type StoredRecord, type InWriteDecision } from '../src/core/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const path = () => join(mkdtempSync(join(tmpdir(), 'u01-')), 'db.sqlite');
const lostAck = () => new BackendError('connection reset after the write was sent', { transient: true, ambiguous: true });

/** put() commits, then its acknowledgement is lost once. */
class LostPutAck extends SqliteStore {
  lose = 0;
  override async put<T>(key: string, value: T, options?: PutOptions): Promise<Entry<T>> {
    const e = await super.put(key, value, options);
    if (this.lose-- > 0) throw lostAck();
    return e;
  }
}

/** updateInWrite() commits, then its acknowledgement is lost once. */
class LostInWriteAck extends SqliteStore {
  lose = 0;
  override async updateInWrite(key: string, decide: (r: StoredRecord | null) => InWriteDecision | undefined, ttlMs: number | undefined): Promise<Entry | null> {
    const e = await super.updateInWrite(key, decide, ttlMs);
    if (e !== null && this.lose-- > 0) throw lostAck();
    return e;
  }
}

it('U01: an async mutation whose put() committed with its acknowledgement lost is applied once', async () => {
  const s = new LostPutAck(path());
  await s.put('n', 0);
  s.lose = 1;
  let calls = 0;
  const r = await s.update<number>('n', async (v) => { calls++; return (v ?? 0) + 1; });
  const stored = await s.get('n');
  console.log('U01: answer', r?.value, 'stored', stored?.value, 'fn calls', calls, 'history', (await s.history('n')).map((h) => (h as Entry).value));
  expect(stored?.value).toBe(1);
  expect(r?.value).toBe(1);
  await s.close();
});

it('U03: an attempt inside the write transaction that committed with its acknowledgement lost is applied once', async () => {
  const s = new LostInWriteAck(path());
  await s.put('n', 0);
  s.lose = 1;
  let calls = 0;
  const r = await s.update<number>('n', (v) => { calls++; return (v ?? 0) + 1; });
  const stored = await s.get('n');
  console.log('U03: answer', r?.value, 'stored', stored?.value, 'fn calls', calls, 'history', (await s.history('n')).map((h) => (h as Entry).value));
  expect(stored?.value).toBe(1);
  expect(r?.value).toBe(1);
  await s.close();
});
