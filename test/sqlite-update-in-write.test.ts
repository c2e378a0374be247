import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { RevkitError, SKIP, toHttpStatus, type WatchEvent } from '../src/core/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { tempDir, uniqueName } from './helpers.js';

// On SQLite an update() attempt runs inside the group-commit write transaction (core/update.ts
// attemptInWrite). User code then runs while a transaction is open; each case is a reproduction
// from the review of that change, failing on its first version.
const dir = tempDir('in-write');
const fresh = () => join(dir, `${uniqueName('w')}.db`);
type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> => p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
const turn = () => new Promise((r) => setTimeout(r, 20));

function unhandledRejections() {
  const seen: unknown[] = [];
  const onRejection = (e: unknown) => seen.push(e);
  process.on('unhandledRejection', onRejection);
  return { seen, stop: () => process.off('unhandledRejection', onRejection) };
}

/** A trigger that makes SQLite refuse a write of key `poison` after the batch has written rows: group commit rolls the batch back and runs it again, each write in a savepoint. */
function poisonKey(path: string): void {
  const db = new Database(path);
  db.exec("CREATE TRIGGER refuse_poison BEFORE INSERT ON kv WHEN NEW.key = 'poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END");
  db.close();
}

describe('sqlite: update() inside the write transaction', () => {
  it('an async mutation that aborts its own caller and then rejects leaves no unhandled rejection', async () => {
    const store = new SqliteStore(fresh());
    const unhandled = unhandledRejections();
    const ac = new AbortController();
    const r = await settle(store.update('k', async () => { ac.abort(); throw new Error('boom'); }, { signal: ac.signal }));
    await turn();
    unhandled.stop();
    await store.close();
    expect(r.ok).toBe(false);
    expect(unhandled.seen).toEqual([]);
  });

  it('a batch run again after a write failed inside SQLite calls no mutation twice: the async one settles its caller with its own error', async () => {
    const path = fresh();
    const store = new SqliteStore(path);
    await store.put('a', 0);
    await store.put('s', 0);
    poisonKey(path);
    const unhandled = unhandledRejections();
    let asyncCalls = 0;
    let syncCalls = 0;
    const [failing, counted, poisoned] = await Promise.all([
      settle(store.update<number>('a', async (v) => {
        asyncCalls++;
        await turn();
        throw new Error('first call rejected');
      })),
      settle(store.update<number>('s', (v) => (syncCalls++, v + 1))),
      (async () => {
        for (let i = 0; i < 20; i++) await Promise.resolve();
        return settle(store.atomic().set('first', 1).set('poison', 1).commit());
      })(),
    ]);
    await turn();
    unhandled.stop();
    expect({ asyncCalls, syncCalls, unhandled: unhandled.seen.length }).toEqual({ asyncCalls: 1, syncCalls: 1, unhandled: 0 });
    expect(failing.ok ? 'ok' : (failing.error as Error).message).toBe('first call rejected');
    expect(counted.ok && counted.value?.value).toBe(1);
    expect(poisoned.ok).toBe(false);
    expect((await store.get('s'))?.value).toBe(1);
    expect(await store.get('first')).toBeNull();
    await store.close();
  });

  it('a mutation that closes the store: its caller gets a typed answer that holds after reopening, never a TypeError', async () => {
    const path = fresh();
    const store = new SqliteStore(path);
    await store.put('k', 1);
    const r = await settle(store.update<number>('k', (v) => { void store.close(); return v + 1; }));
    const reopened = new SqliteStore(path);
    const stored = (await reopened.get<number>('k'))?.value;
    await reopened.close();
    if (r.ok) expect(stored).toBe(2);
    else {
      expect(RevkitError.is(r.error)).toBe(true);
      expect(stored).toBe(1);
    }
  });

  it('a put a mutation starts before closing the store: if acknowledged it is stored, and its revision is never handed out again', async () => {
    const path = fresh();
    const store = new SqliteStore(path);
    await store.put('k', 1);
    let put: Promise<Settled<{ revision: number }>> | undefined;
    await settle(store.update<number>('k', (v) => { put = settle(store.put('o', 5)); void store.close(); return v + 1; }));
    const told = await (put as Promise<Settled<{ revision: number }>>);
    const reopened = new SqliteStore(path);
    const stored = await reopened.get('o');
    const next = (await reopened.put('z', 1)).revision;
    await reopened.close();
    expect(told.ok).toBe(true);
    if (told.ok) {
      expect(stored?.value).toBe(5);
      expect(next).toBeGreaterThan(told.value.revision);
    }
  });

  it('a caller aborted by a mutation is told it was aborted (409), not that the store gave no answer (503)', async () => {
    const store = new SqliteStore(fresh());
    await store.put('k', 1);
    const ac = new AbortController();
    const r = await settle(store.update<number>('k', (v) => { ac.abort(); return v + 1; }, { signal: ac.signal }));
    await store.close();
    expect(r.ok).toBe(false);
    const error = (r as { error: RevkitError & { lastError?: RevkitError } }).error;
    expect(error.lastError?.code).toBe('ERR_ABORTED');
    expect(toHttpStatus(error)).toBe(409);
  });

  it('reads and watches started inside a mutation see only committed state: a batch rolled back leaves them nothing it wrote', async () => {
    const path = fresh();
    const store = new SqliteStore(path);
    await store.put('x', 'clean');
    await store.put('k', 1);
    poisonKey(path);
    const seen: Array<Promise<unknown>> = [];
    let watch: AsyncIterator<WatchEvent> | undefined;
    const ac = new AbortController();
    await Promise.all([
      // One transaction: this atomic commit writes x, then fails on poison after rows; the update's mutation runs between.
      settle(store.atomic().set('x', 'dirty').set('poison', 1).commit()),
      settle(store.update<number>('k', (v) => {
        seen.push(store.get<string>('x').then((e) => e?.value));
        seen.push(store.headRevision());
        watch ??= store.watch({ prefix: 'x', signal: ac.signal })[Symbol.asyncIterator]();
        return v + 1;
      })),
    ]);
    const [x, head] = await Promise.all(seen);
    // The mutation ran twice at most (once per run of the batch); each read waited for its transaction to end.
    expect(x).toBe('clean');
    expect(head).toBe(await store.headRevision());
    const later = await store.put('x', 'later');
    const first = await (watch as AsyncIterator<WatchEvent>).next();
    expect(first.value).toMatchObject({ key: 'x', revision: later.revision });
    ac.abort();
    await store.close();
  });

  it('a watch a mutation starts while the hub is idle reads nothing of its batch before it commits: a batch run again delivers the committed row', async () => {
    const path = fresh();
    const store = new SqliteStore(path);
    await store.put('k', 1);
    poisonKey(path);
    let watch: AsyncIterator<WatchEvent> | undefined;
    const ac = new AbortController();
    // One batch: x with a TTL (its expiry differs between the two runs), the update whose mutation starts
    // the watch, a slow mutation (so the second run's clock moves on), then poison: rolled back, run again.
    await Promise.all([
      settle(store.put('x', 'v', { ttlMs: 600_000 })),
      settle(store.update<number>('k', (v) => {
        watch ??= store.watch({ prefix: 'x', signal: ac.signal })[Symbol.asyncIterator]();
        return v + 1;
      })),
      settle(store.update<number>('slow', () => {
        const until = Date.now() + 30;
        while (Date.now() < until);
        return 1;
      })),
      (async () => {
        for (let i = 0; i < 20; i++) await Promise.resolve();
        return settle(store.put('poison', 1));
      })(),
    ]);
    const committed = await store.getRecord('x');
    const first = await (watch as AsyncIterator<WatchEvent>).next();
    ac.abort();
    await store.close();
    expect(first.value).toMatchObject({ key: 'x', revision: committed?.revision, entry: { expiresAt: (committed as { expiresAt?: number }).expiresAt } });
  });

  it('while another process holds the write lock, a mutation that writes nothing (SKIP, throwing, invalid) is answered at once with its own answer; a writing one waits and commits', async () => {
    const path = fresh();
    const store = new SqliteStore(path, { lockTimeoutMs: 120_000 });
    await store.put('k', 1);
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    const opts = { deadlineMs: 120_000, combine: false } as const;
    let writer: Promise<unknown> | undefined;
    try {
      writer = store.update<number>('k', (n) => n + 1, opts);
      // Answered while the lock is still held: before, each waited for it (then timed out as "no answer", 503).
      const [skipped, thrown, invalid] = await Promise.all([
        settle(store.update('k', () => SKIP, opts)),
        settle(store.update('k', () => { throw new Error('boom'); }, opts)),
        settle(store.update<number>('k', (n) => n + 1, { ...opts, validate: () => 'nope' })),
      ]);
      expect(skipped.ok && skipped.value?.value).toBe(1);
      expect(thrown.ok ? 'ok' : (thrown.error as Error).message).toBe('boom');
      expect(invalid.ok ? 'ok' : (invalid.error as RevkitError).code).toBe('ERR_VALIDATION');
    } finally {
      other.exec('COMMIT');
      other.close();
    }
    expect(await writer).toMatchObject({ value: 2 });
    await store.close();
  });

  it('a synchronous validate() or Standard Schema keeps the attempt in one write transaction', async () => {
    const store = new SqliteStore(fresh());
    await store.put('k', 0);
    const schema = { '~standard': { version: 1 as const, vendor: 'test', validate: (v: unknown) => ({ value: v }) } };
    let before = store.commitCount;
    await store.update<number>('k', (v) => v + 1, { validate: (v) => v >= 0 });
    expect(store.commitCount - before).toBe(1);
    before = store.commitCount;
    await store.update<number>('k', (v) => v + 1, { schema });
    expect(store.commitCount - before).toBe(1);
    // An asynchronous validator still works (outside the transaction): a second, guarded write.
    expect(await store.update<number>('k', (v) => v + 1, { validate: async (v) => v >= 0 })).toMatchObject({ value: 3 });
    await store.close();
  });
});
