/**
 * revkit/lock on every backend with TTL, watch and atomic commits (memory,
 * SQLite, file, PostgreSQL, Redis, and HttpStore through a server), and
 * refused on NATS. The multi-process fault tests (paused and killed holders,
 * elections) are in test/faults/lock-processes.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { open } from '../src/open.js';
import {
  AbortedError, InvalidArgumentError, LockLostError, LockTimeoutError, RevkitError, UnsupportedError, type Store, type WatchEvent,
} from '../src/core/index.js';
import { openSession, observe, type Session } from '../src/lock/index.js';
import { FaultStore } from '../src/testing/fault-store.js';
import { backends, type Backend } from './checkpoints-backends.js';
import { servedStore } from './server-helpers.js';

const all = backends('lock');
const targets: Array<{ name: string; open(): Promise<Store> }> = [
  ...all.filter((b) => b.name !== 'nats').map((b: Backend) => ({ name: b.name, open: () => open(b.freshUrl()) })),
  { name: 'http (sqlite behind revkit serve)', open: () => servedStore(all.find((b) => b.name === 'sqlite')!.freshUrl()) },
];

/** Long enough that a loaded machine never misses a keepalive where a test does not want it to. */
const TTL = 6_000;

const stores: Store[] = [];
afterAll(async () => {
  for (const s of stores) await s.close().catch(() => undefined);
});

async function fresh(target: { open(): Promise<Store> }): Promise<Store> {
  const store = await target.open();
  stores.push(store);
  return store;
}

async function sessions(store: Store, n: number, ttlMs = TTL): Promise<Session[]> {
  return Promise.all(Array.from({ length: n }, () => openSession(store, { ttlMs })));
}

async function keysUnder(store: Store, prefix: string): Promise<string[]> {
  return (await store.list({ prefix })).entries.map((e) => e.key);
}

/** Resolves once `check` holds: a caller that gave up cleans up in the background. */
async function eventually(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 10));
}

const emptyUnder = (store: Store, prefix: string) => eventually(async () => (await keysUnder(store, prefix)).length === 0);

/** Resolves once `count` keys are queued for the lock `name`. */
async function queued(store: Store, name: string, count: number): Promise<void> {
  for (;;) {
    if ((await keysUnder(store, `locks/${name}/.waiting/`)).length >= count) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

for (const target of targets) {
  describe(`revkit/lock on ${target.name}`, () => {
    it('a second holder waits for the release; the fence grows; the old holder\'s fenced commit is refused and writes nothing', async () => {
      const store = await fresh(target);
      const [a, b] = await sessions(store, 2);
      const first = await a!.lock('job');
      expect(await first.atomic().set('job/state', 'a').commit()).toHaveProperty('revision');
      let secondHeld = false;
      const pending = b!.lock('job').then((l) => ((secondHeld = true), l));
      await queued(store, 'job', 1);
      expect(secondHeld).toBe(false);
      await first.release();
      expect(first.signal.aborted).toBe(true);
      const second = await pending;
      expect(second.fence).toBeGreaterThan(first.fence);
      const err = await first.atomic().set('job/state', 'stale').commit().catch((e: unknown) => e);
      expect(LockLostError.is(err)).toBe(true);
      expect((err as LockLostError).details).toMatchObject({ name: 'job', key: 'locks/job', fence: first.fence });
      expect((await store.get('job/state'))?.value).toBe('a');
      await second.atomic().set('job/state', 'b').commit();
      expect((await store.get('job/state'))?.value).toBe('b');
      await second.release();
      await a!.close();
      await b!.close();
      expect(await keysUnder(store, 'locks/')).toEqual([]);
    });

    it('waiters are served in arrival order', async () => {
      const store = await fresh(target);
      const [holder, ...waiting] = await sessions(store, 4);
      const held = await holder!.lock('fifo');
      const order: number[] = [];
      const done: Array<Promise<void>> = [];
      for (const [i, s] of waiting.entries()) {
        done.push(s.lock('fifo').then(async (l) => {
          order.push(i);
          await l.release();
        }));
        await queued(store, 'fifo', i + 1);
      }
      await held.release();
      await Promise.all(done);
      expect(order).toEqual([0, 1, 2]);
      for (const s of [holder!, ...waiting]) await s.close();
    });

    it('waits by watching: a waiter reads nothing while the holder keeps its lease alive', async () => {
      const inner = await fresh(target);
      let lists = 0;
      let reads = 0;
      const counting = Object.create(inner) as Store;
      counting.list = (o) => (lists++, inner.list(o));
      counting.get = (k) => (reads++, inner.get(k));
      counting.getRecord = (k) => (reads++, inner.getRecord(k));
      const [holder] = await sessions(inner, 1, 900);
      const [waiter] = await sessions(counting, 1, 10_000);
      const held = await holder!.lock('quiet');
      const pending = waiter!.lock('quiet');
      // The waiter's two looks (the queue and the lock key), before and after it queued.
      while (lists < 2 || reads < 2) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 0));
      // Three keepalives of the holder, seen by a watch of its key: the waiter looked at none of them.
      const ac = new AbortController();
      const keepalives: WatchEvent[] = [];
      const before = { lists, reads };
      for await (const e of inner.watch({ key: 'locks/quiet', signal: ac.signal })) {
        keepalives.push(e);
        if (keepalives.length === 3) break;
      }
      ac.abort();
      expect({ lists, reads }).toEqual(before);
      await held.release();
      await (await pending).release();
      await holder!.close();
      await waiter!.close();
    });

    it('waitMs: LockTimeoutError when held, and the caller leaves nothing queued; free: acquired at once', async () => {
      const store = await fresh(target);
      const [a, b] = await sessions(store, 2);
      const held = await a!.lock('busy');
      const err = await b!.lock('busy', { waitMs: 200 }).catch((e: unknown) => e);
      expect(LockTimeoutError.is(err)).toBe(true);
      await emptyUnder(store, 'locks/busy/');
      const ac = new AbortController();
      const aborted = b!.lock('busy', { signal: ac.signal }).catch((e: unknown) => e);
      await queued(store, 'busy', 1);
      ac.abort();
      expect(AbortedError.is(await aborted)).toBe(true);
      await emptyUnder(store, 'locks/busy/');
      await held.release();
      const now = await b!.lock('busy', { waitMs: 0 });
      expect(now.fence).toBeGreaterThan(held.fence);
      await now.release();
      await a!.close();
      await b!.close();
    });

    it('a holder whose keepalives stop loses: its signal aborts, the next waiter takes over, its fenced commit is refused (the plain write of the canary is not)', async () => {
      const inner = await fresh(target);
      const faulty = new FaultStore(inner);
      const paused = await openSession(faulty, { ttlMs: 1_500 });
      const [next] = await sessions(inner, 1);
      await inner.put('counter', 0);
      const old = await paused.lock('counter-lock');
      const read = (await inner.get<number>('counter'))!.value;
      // The holder's process "pauses": no keepalive of its lock key reaches the store from now on.
      faulty.inject({ kind: 'stall', op: 'put', key: 'locks/counter-lock', times: Number.MAX_SAFE_INTEGER });
      const taking = next!.lock('counter-lock');
      const reason = await new Promise((resolve) => old.signal.addEventListener('abort', () => resolve(old.signal.reason), { once: true }));
      expect(LockLostError.is(reason)).toBe(true);
      const lock = await taking;
      expect(lock.fence).toBeGreaterThan(old.fence);
      await lock.atomic().set('counter', read + 1).commit();
      // The old holder wakes up and writes what it computed before the pause.
      const refused = await old.atomic().set('counter', read + 1).commit().catch((e: unknown) => e);
      expect(LockLostError.is(refused)).toBe(true);
      expect((await inner.get('counter'))?.value).toBe(read + 1);
      // The canary: the same stale write without the fence is accepted, and an increment is lost (2 increments, counter at 1).
      await inner.put('counter', read + 1);
      expect((await inner.get('counter'))?.value).toBe(read + 1);
      await lock.release();
      await next!.close();
      faulty.clear();
      await paused.close();
    });

    it('a lost acknowledgement on acquire is settled by the writer token: one lock key, ours, nothing else queued', async () => {
      for (const kind of ['lost-ack', 'lost-request', 'late-landing'] as const) {
        const inner = await fresh(target);
        const faulty = new FaultStore(inner);
        const session = await openSession(faulty, { ttlMs: TTL });
        faulty.inject({ kind, op: 'put', key: 'locks/once' });
        const lock = await session.lock('once');
        expect(faulty.injected.map((f) => f.kind), kind).toEqual([kind]);
        const stored = await inner.get<{ token: string }>('locks/once');
        expect(stored?.createdRevision, kind).toBe(lock.fence);
        await emptyUnder(inner, 'locks/once/');
        await lock.atomic().set('x', kind).commit();
        await lock.release();
        expect(await inner.get('locks/once'), kind).toBeNull();
        await session.close();
      }
    });

    it('a lost acknowledgement on release still frees the lock: the next caller gets it at once', async () => {
      for (const kind of ['lost-ack', 'lost-request'] as const) {
        const inner = await fresh(target);
        const faulty = new FaultStore(inner);
        const [other] = await sessions(inner, 1);
        const session = await openSession(faulty, { ttlMs: TTL });
        const lock = await session.lock('free');
        faulty.inject({ kind, op: 'delete', key: 'locks/free' });
        await lock.release();
        expect(faulty.injected.map((f) => f.kind), kind).toEqual([kind]);
        expect(await inner.get('locks/free'), kind).toBeNull();
        const next = await other!.lock('free', { waitMs: 0 });
        expect(next.fence, kind).toBeGreaterThan(lock.fence);
        await next.release();
        await session.close();
        await other!.close();
      }
    });

    it('a caller that gives up while its create is on the way leaves no lock key behind', async () => {
      const inner = await fresh(target);
      const faulty = new FaultStore(inner);
      const session = await openSession(faulty, { ttlMs: TTL });
      faulty.inject({ kind: 'stall', op: 'put', key: 'locks/slow', stallMs: 300 });
      const ac = new AbortController();
      const pending = session.lock('slow', { signal: ac.signal }).catch((e: unknown) => e);
      while (faulty.injected.length === 0) await new Promise((r) => setTimeout(r, 5));
      ac.abort();
      expect(AbortedError.is(await pending)).toBe(true);
      await eventually(async () => (await inner.get('locks/slow')) === null);
      await emptyUnder(inner, 'locks/slow/');
      await session.close();
    });

    it('leader election: campaign, proclaim, resign; observe() shows only what leaders announced, in order', async () => {
      const store = await fresh(target);
      const [a, b] = await sessions(store, 2);
      const ac = new AbortController();
      const seen: unknown[] = [];
      let notify: () => void = () => undefined;
      const watching = (async () => {
        for await (const v of observe(store, 'leader', { signal: ac.signal })) {
          seen.push(v);
          notify();
        }
      })();
      const shown = (v: unknown) => new Promise<void>((resolve) => {
        const check = () => seen.some((s) => JSON.stringify(s) === JSON.stringify(v)) && resolve();
        notify = check;
        check();
      });
      await shown(null);
      const lead = await a!.campaign('leader', { id: 'a' });
      await shown({ id: 'a' });
      const pending = b!.campaign('leader', { id: 'b' });
      await queued(store, 'leader', 1);
      await lead.proclaim({ id: 'a', epoch: 2 });
      expect(lead.value).toEqual({ id: 'a', epoch: 2 });
      await shown({ id: 'a', epoch: 2 });
      await lead.resign();
      const second = await pending;
      expect(second.fence).toBeGreaterThan(lead.fence);
      await shown({ id: 'b' });
      expect(LockLostError.is(await lead.proclaim({ id: 'a', epoch: 3 }).catch((e: unknown) => e))).toBe(true);
      await b!.close();
      await shown(null);
      ac.abort();
      await watching;
      expect(seen.filter((v) => v !== null)).toEqual([{ id: 'a' }, { id: 'a', epoch: 2 }, { id: 'b' }]);
      await a!.close();
    });

    it('bad input is a typed error and writes nothing', async () => {
      const store = await fresh(target);
      const [s] = await sessions(store, 1);
      for (const name of ['', '.hidden', 'a/.waiting/x', 'ctl\u0001']) {
        const err = await s!.lock(name).catch((e: unknown) => e);
        expect(RevkitError.is(err), JSON.stringify(name)).toBe(true);
      }
      for (const options of [{ ttlMs: 10 }, { ttlMs: 1.5 }, { ttlMs: 1_000, marginMs: 1_000 }, { ttlMs: 1_000, keepaliveMs: 900 }, { prefix: '.x/' }]) {
        expect(InvalidArgumentError.is(await openSession(store, options).catch((e: unknown) => e)), JSON.stringify(options)).toBe(true);
      }
      expect(InvalidArgumentError.is(await s!.lock('w', { waitMs: -1 }).catch((e: unknown) => e))).toBe(true);
      expect(InvalidArgumentError.is(await s!.campaign('c', undefined).catch((e: unknown) => e))).toBe(true);
      const lock = await s!.lock('self');
      expect(() => lock.atomic().set('locks/self', 1)).toThrow(InvalidArgumentError);
      await lock.release();
      await s!.close();
      expect(await keysUnder(store, 'locks/')).toEqual([]);
    });
  });
}

describe('revkit/lock on NATS', () => {
  it('openSession is refused with UnsupportedError: this backend has no per-key TTL', async () => {
    const store = await fresh({ open: () => open(all.find((b) => b.name === 'nats')!.freshUrl()) });
    const err = await openSession(store).catch((e: unknown) => e);
    expect(UnsupportedError.is(err)).toBe(true);
    expect((err as Error).message).toMatch(/expire|ttl/i);
  });
});
