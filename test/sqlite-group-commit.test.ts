import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/sqlite/index.js';
import { ConflictError, type Store, type WatchEvent } from '../src/core/index.js';
import { canary } from '../src/testing/canary.js';
import { groupCommitChecks } from '../src/testing/group-commit-checks.js';
import { tempDir, uniqueName } from './helpers.js';

const dir = tempDir('sqlite-group');
const freshPath = () => join(dir, `${uniqueName('db')}.db`);
const settle = <T>(p: Promise<T>) => p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
const codeOf = (r: { ok: boolean; error?: unknown }) => (r.ok ? 'ok' : (r.error as { code?: string }).code);

describe('sqlite group commit', () => {
  it('one batch mixing successes, conflicts, a too-large value and an atomic commit: one commit, each caller its own outcome, failures leave no trace', async () => {
    const store = new SqliteStore(freshPath(), { maxValueBytes: 64 });
    const a = await store.put('a', 1);
    await store.put('gone', 1);
    const before = store.commitCount;
    const head = await store.headRevision();
    const secondOfA = head + 1;
    // All issued in one turn: they queue for the same commit.
    const outcomes = await Promise.all([
      settle(store.put('a', 2, { ifRevision: a.revision })), // ok
      settle(store.put('a', 3, { ifRevision: a.revision })), // conflict: the write before it in the batch moved 'a'
      settle(store.put('b', 'x'.repeat(100))), // too large
      settle(store.put('c', 1, { ifAbsent: true })), // ok
      settle(store.put('c', 2, { ifAbsent: true })), // conflict: created just before, in the same batch
      settle(store.delete('gone', { ifValue: 1 })), // ok
      settle(store.put('d', 1, { ifValue: 5 })), // conflict: absent
      settle(store.atomic().check('c', null).set('e', 1).commit()), // conflict: 'c' exists by now
      settle(store.atomic().check('a', secondOfA).set('f', 1).delete('a').commit()), // ok: 'a' is at its second revision
    ]);
    expect(outcomes.map(codeOf)).toEqual(['ok', 'ERR_CONFLICT', 'ERR_TOO_LARGE', 'ok', 'ERR_CONFLICT', 'ok', 'ERR_CONFLICT', 'ERR_CONFLICT', 'ok']);
    expect(store.commitCount).toBe(before + 1);
    // Revisions of the successes: consecutive, in arrival order, right after the previous head.
    const revisions = [outcomes[0], outcomes[3], outcomes[5], outcomes[8]].map((o) => {
      const v = (o as { value: unknown }).value;
      return typeof v === 'number' ? v : (v as { revision: number }).revision;
    });
    expect(revisions).toEqual([head + 1, head + 2, head + 3, head + 4]);
    expect(await store.headRevision()).toBe(head + 4);
    const conflict = (outcomes[1] as { error: ConflictError }).error;
    expect(conflict.checks[0]).toMatchObject({ key: 'a', expected: a.revision, actual: head + 1 });
    expect(await store.get('a')).toBeNull();
    expect((await store.get('c'))?.value).toBe(1);
    expect((await store.get('f'))?.value).toBe(1);
    for (const key of ['b', 'd', 'e']) {
      expect(await store.getRecord(key)).toBeNull();
      expect(await store.history(key)).toEqual([]);
    }
    await store.close();
  });

  it('a write that fails inside SQLite halfway through its rows is rolled back alone; the rest of its batch commits', async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    await store.put('ok0', 0);
    // A real SQLite failure after the atomic commit has written its first key.
    const other = new Database(path);
    other.exec("CREATE TRIGGER refuse_poison BEFORE INSERT ON kv WHEN NEW.key = 'poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END");
    other.close();
    const before = store.commitCount;
    const outcomes = await Promise.all([
      settle(store.put('ok1', 1)),
      settle(store.atomic().set('first', 1).set('poison', 1).commit()),
      settle(store.put('ok2', 2)),
    ]);
    expect(outcomes.map(codeOf)).toEqual(['ok', 'ERR_BACKEND', 'ok']);
    expect(store.commitCount).toBe(before + 1);
    expect(await store.getRecord('first')).toBeNull();
    expect(await store.history('first')).toEqual([]);
    const revs = [outcomes[0], outcomes[2]].map((o) => ((o as { value: { revision: number } }).value).revision);
    expect(revs[1]).toBe((revs[0] as number) + 1);
    await store.close();
  });

  it('400 concurrent writes: revisions store-wide strictly increasing with no gap, and watch (here and in another connection) sees every write in order', async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    const other = new SqliteStore(path, { pollIntervalMs: 10 });
    const from = await store.headRevision();
    const collect = async (s: SqliteStore, n: number) => {
      const seen: WatchEvent[] = [];
      for await (const ev of s.watch({ prefix: 'w/', fromRevision: from })) {
        seen.push(ev);
        if (seen.length === n) break;
      }
      return seen;
    };
    const commitsBefore = store.commitCount;
    const writes: Array<Promise<{ key: string; revision: number | null }>> = [];
    for (let i = 0; i < 400; i++) {
      const key = `w/${i % 37}`;
      writes.push(i % 10 === 9 ? store.delete(key).then((revision) => ({ key, revision })) : store.put(key, i).then((e) => ({ key, revision: e.revision })));
    }
    const done = (await Promise.all(writes)).filter((w) => w.revision !== null) as Array<{ key: string; revision: number }>;
    const revisions = done.map((w) => w.revision);
    // Arrival order is commit order; no revision is handed out twice or skipped.
    expect(revisions).toEqual(Array.from({ length: revisions.length }, (_, i) => from + 1 + i));
    expect(store.commitCount - commitsBefore).toBeLessThan(done.length);
    const expected = done.map((w) => ({ key: w.key, revision: w.revision }));
    const [here, there] = await Promise.all([collect(store, done.length), collect(other, done.length)]);
    expect(here.map((e) => ({ key: e.key, revision: e.revision }))).toEqual(expected);
    expect(there.map((e) => ({ key: e.key, revision: e.revision }))).toEqual(expected);
    await other.close();
    await store.close();
  });

  it('writes queued behind another process\'s write lock go in together once it is free; those whose lock wait runs out fail alone, transient, leaving nothing', async () => {
    const path = freshPath();
    const store = new SqliteStore(path, { lockTimeoutMs: 3_000 });
    await store.put('x', 0);
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(${JSON.stringify(path)});
      db.exec('BEGIN IMMEDIATE');
      console.log('locked');
      setTimeout(() => { db.exec('COMMIT'); db.close(); }, 500);
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    const before = store.commitCount;
    const first = Array.from({ length: 10 }, (_, i) => store.put(`q/${i}`, i));
    await new Promise((r) => setTimeout(r, 100));
    // More writes arrive while the batch waits: they join it.
    const second = Array.from({ length: 10 }, (_, i) => store.put(`q/${10 + i}`, 10 + i));
    const entries = await Promise.all([...first, ...second]);
    expect(entries.map((e) => e.value)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(store.commitCount).toBe(before + 1);

    // A lock held past lockTimeoutMs: every queued write fails with a transient BackendError, nothing is written.
    const short = new SqliteStore(path, { lockTimeoutMs: 200 });
    const blocker = new Database(path);
    blocker.exec('BEGIN IMMEDIATE');
    const refused = await Promise.all(Array.from({ length: 5 }, (_, i) => settle(short.put(`late/${i}`, i))));
    blocker.exec('COMMIT');
    blocker.close();
    expect(refused.map(codeOf)).toEqual(Array(5).fill('ERR_BACKEND'));
    expect(refused.every((r) => !r.ok && (r.error as { transient?: boolean }).transient === true)).toBe(true);
    expect((await short.list({ prefix: 'late/' })).entries).toEqual([]);
    await short.close();
    await store.close();
  });

  it('a lone writer\'s writes are not held back: each awaited write is its own commit, in the next turn of the event loop', async () => {
    const store = new SqliteStore(freshPath());
    const before = store.commitCount;
    for (let i = 0; i < 5; i++) {
      let turns = 0;
      let ticking = true;
      const tick = () => {
        turns++;
        if (ticking) setImmediate(tick);
      };
      setImmediate(tick);
      await store.put('solo', i);
      ticking = false;
      expect(store.commitCount).toBe(before + i + 1);
      // The flush is the first thing the next check phase runs after this turn's writes are queued.
      expect(turns).toBeLessThanOrEqual(1);
    }
    await store.close();
  });

  it('?groupCommit=false: one transaction per write, same outcomes', async () => {
    const store = (await SqliteStore.fromUrl(`sqlite:${freshPath()}?groupCommit=false`)) as SqliteStore;
    const a = await store.put('a', 1);
    const before = store.commitCount;
    const outcomes = await Promise.all([settle(store.put('a', 2, { ifRevision: a.revision })), settle(store.put('a', 3, { ifRevision: a.revision })), settle(store.put('b', 1))]);
    expect(outcomes.map(codeOf)).toEqual(['ok', 'ERR_CONFLICT', 'ok']);
    expect(store.commitCount).toBe(before + 2); // the conflicting write's transaction rolled back
    await store.close();
    expect(await SqliteStore.fromUrl(`sqlite:${freshPath()}?groupCommit=maybe`).catch((e) => e.code)).toBe('ERR_INVALID_ARGUMENT');
  });

  it('a write queued in the turn the store is closed still commits; one issued after close() is refused', async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    const queued = store.put('k', 'before close');
    await store.close();
    expect((await queued).value).toBe('before close');
    expect(await store.put('k', 'after').catch((e) => e.code)).toBe('ERR_CLOSED');
    const again = new SqliteStore(path);
    expect((await again.get('k'))?.value).toBe('before close');
    await again.close();
  });
});

describe('group-commit checks (src/testing/group-commit-checks.ts)', () => {
  for (const [name, check] of Object.entries(groupCommitChecks)) {
    for (const synchronous of ['full', 'normal'] as const) {
      it(`sqlite ${synchronous}: ${name}`, async () => {
        const store = new SqliteStore(freshPath(), { synchronous });
        try {
          await check(store);
        } finally {
          await store.close();
        }
      });
    }
  }
  it('the lost-update check fails on the canary store', async () => {
    const broken = canary(new SqliteStore(freshPath()));
    const check = groupCommitChecks['64 puts issued together, all guarded by one revision: exactly one wins'] as (s: Store) => Promise<void>;
    await expect(check(broken)).rejects.toThrow(/more than one write guarded by the same revision won/);
    await broken.close();
  });
});
