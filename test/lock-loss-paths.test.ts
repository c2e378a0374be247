// A store's report of lost acknowledged writes (DataLostError) must reach a lock session from every call the
// session makes where no caller hears of it: a release's delete, a waiter's watch, an abandoned acquire's cleanup,
// and a call after the session was already lost for another reason. On Redis a process may be told once, so the
// call that hears it may be the only report. Every case fails on 795abb2, which retried past these reports.
import { afterEach, describe, expect, it } from 'vitest';
import {
  BackendError, DataLostError, LockLostError, lossIn, type DeleteOptions, type Entry, type PutOptions, type WatchEvent, type WatchOptions,
} from '../src/core/index.js';
import { openSession } from '../src/lock/index.js';
import { MemoryStore } from '../src/memory/index.js';

const lost = () => new DataLostError('test: the store lost acknowledged writes', { store: 'memory', after: 1, upTo: 2 });

/** A memory store that reports one loss to the next call of the kind owed, or fails every keepalive (put) for a while. */
class Reporting extends MemoryStore {
  owed = { delete: 0, watch: 0 };
  failPuts = false;
  override async delete(key: string, options?: DeleteOptions): Promise<number | null> {
    if (this.owed.delete > 0) {
      this.owed.delete--;
      throw lost();
    }
    return super.delete(key, options);
  }
  override async put<T = unknown>(key: string, value: T, options?: PutOptions): Promise<Entry<T>> {
    if (this.failPuts) throw new BackendError('test: the store is away', { transient: true });
    return super.put(key, value, options);
  }
  override watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    if (this.owed.watch === 0) return super.watch<T>(options);
    this.owed.watch--;
    return {
      [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(lost()) }),
    };
  }
}

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});

async function setUp(ttlMs = 3_000) {
  const store = new Reporting();
  closers.push(() => store.close());
  const session = await openSession(store, { ttlMs, keepaliveMs: Math.floor(ttlMs / 3) });
  closers.push(() => session.close());
  return { store, session };
}

const abortReason = (signal: AbortSignal) => new Promise<unknown>((resolve) => {
  if (signal.aborted) resolve(signal.reason);
  signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
});

describe('a lock session hears a reported loss wherever its calls meet it', () => {
  it('a release whose delete meets the report loses the session, with the loss as the cause', async () => {
    const { store, session } = await setUp();
    const lock = await session.lock('job');
    store.owed.delete = 1;
    await lock.release();
    const reason = await abortReason(session.signal);
    expect(LockLostError.is(reason)).toBe(true);
    expect(DataLostError.is(lossIn(reason))).toBe(true);
    expect(DataLostError.is(session.lossReported)).toBe(true);
    // The next lock() says why the session can take none: the loss.
    const next = await session.lock('other').then(() => 'took it', (err: unknown) => err);
    expect(LockLostError.is(next)).toBe(true);
    expect(DataLostError.is(lossIn(next))).toBe(true);
  });

  it('a waiter whose watch meets the report: its lock() fails with the loss as the cause', async () => {
    const { store, session } = await setUp();
    const holder = await openSession(store, { ttlMs: 3_000, keepaliveMs: 1_000 });
    closers.push(() => holder.close());
    await holder.lock('job');
    store.owed.watch = 1;
    const waited = await session.lock('job').then(() => 'took it', (err: unknown) => err);
    expect(LockLostError.is(waited)).toBe(true);
    expect(DataLostError.is(lossIn(waited))).toBe(true);
    expect(DataLostError.is(session.lossReported)).toBe(true);
  });

  it('an abandoned acquire whose cleanup meets the report', async () => {
    const { store, session } = await setUp();
    const holder = await openSession(store, { ttlMs: 3_000, keepaliveMs: 1_000 });
    closers.push(() => holder.close());
    await holder.lock('job');
    const stop = new AbortController();
    const waiting = session.lock('job', { signal: stop.signal }).catch((err: unknown) => err);
    // Queued (its waiter key written) before it gives up: the cleanup deletes that key.
    for (let i = 0; i < 400 && (await store.list({ prefix: 'locks/job/.waiting/' })).entries.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect((await store.list({ prefix: 'locks/job/.waiting/' })).entries).toHaveLength(1);
    store.owed.delete = 1;
    stop.abort();
    await waiting;
    await abortReason(session.signal);
    expect(DataLostError.is(session.lossReported)).toBe(true);
    expect(DataLostError.is(lossIn(session.signal.reason))).toBe(true);
  });

  it('a session already lost by its deadline still keeps a report that comes after (close() deleting its keys)', async () => {
    const { store, session } = await setUp(300);
    const lock = await session.lock('job');
    store.failPuts = true;
    const reason = await abortReason(lock.signal);
    expect(lossIn(reason)).toBeUndefined(); // lost by its own clock: no loss known yet
    store.failPuts = false;
    store.owed.delete = 1;
    await session.close();
    expect(DataLostError.is(session.lossReported)).toBe(true);
  });
});
