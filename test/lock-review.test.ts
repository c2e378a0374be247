/**
 * revkit/lock: the defects a hostile review found (issue 24), one test each,
 * on memory and SQLite. Each fails on the code before the fix (c1c8327…dec5e2e).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { open } from '../src/open.js';
import { AbortedError, ConflictError, InvalidArgumentError, LockLostError, RevkitError, type Store } from '../src/core/index.js';
import { openSession, observe } from '../src/lock/index.js';
import { FaultStore } from '../src/testing/fault-store.js';
import { MemoryStore } from '../src/memory/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { tempDir, uniqueName } from './helpers.js';
import { sessionKeyTakenOn } from './support/session-key-taken.js';

const dir = tempDir('lock-review');
const targets = [
  { name: 'memory', url: () => 'memory:' },
  { name: 'sqlite', url: () => `sqlite:${join(dir, `${uniqueName('lr')}.db`)}` },
];
const opened: Store[] = [];
afterAll(async () => {
  for (const s of opened) await s.close().catch(() => undefined);
});
async function fresh(url: string): Promise<Store> {
  const s = await open(url);
  opened.push(s);
  return s;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const target of targets) {
  describe(`revkit/lock review findings on ${target.name}`, () => {
    it('an abort is answered while the lock key\'s create hangs in the store', async () => {
      const inner = await fresh(target.url());
      const faulty = new FaultStore(inner);
      const session = await openSession(faulty, { ttlMs: 2_000 });
      faulty.inject({ kind: 'stall', op: 'put', key: 'locks/hang' });
      const ac = new AbortController();
      const pending = session.lock('hang', { signal: ac.signal }).catch((e: unknown) => e);
      while (faulty.injected.length === 0) await sleep(5);
      ac.abort();
      expect(AbortedError.is(await pending)).toBe(true);
    });

    it('an acquire that fails after its create landed unanswered leaves no lock key behind', async () => {
      const inner = await fresh(target.url());
      const faulty = new FaultStore(inner);
      const session = await openSession(faulty, { ttlMs: 60_000 });
      faulty.inject({ kind: 'lost-ack', op: 'put', key: 'locks/orphan' });
      faulty.inject({ kind: 'fail-permanent', op: 'put', key: 'locks/orphan' });
      const err = await session.lock('orphan').catch((e: unknown) => e);
      expect(RevkitError.is(err)).toBe(true);
      await session.close();
      expect(await inner.get('locks/orphan')).toBeNull();
    });

    it('a create cut off on its way that lands after the release does not bring the lock back', async () => {
      const inner = await fresh(target.url());
      const faulty = new FaultStore(inner);
      const session = await openSession(faulty, { ttlMs: 60_000 });
      faulty.inject({ kind: 'late-landing', op: 'put', key: 'locks/late', landsAt: 'landHeld' });
      const lock = await session.lock('late');
      await lock.release();
      await faulty.landHeld();
      expect(await inner.get('locks/late')).toBeNull();
      await session.close();
    });

    it('a lock is kept alive from the moment it is acquired, while its waiter key is still being deleted', async () => {
      const inner = await fresh(target.url());
      const faulty = new FaultStore(inner);
      const [holder] = await Promise.all([openSession(inner, { ttlMs: 60_000 })]);
      const waiter = await openSession(faulty, { ttlMs: 1_500 });
      const held = await holder.lock('slowleave');
      const pending = waiter.lock('slowleave');
      while ((await inner.list({ prefix: 'locks/slowleave/.waiting/' })).entries.length === 0) await sleep(5);
      faulty.inject({ kind: 'stall', op: 'delete', stallMs: 4_000, times: 10 });
      await held.release();
      const lock = await pending;
      // Three keepalives of the new holder's key reach the store while its waiter key's delete still hangs.
      const ac = new AbortController();
      let puts = 0;
      for await (const e of inner.watch({ key: 'locks/slowleave', fromRevision: lock.fence, signal: ac.signal })) {
        if (e.type === 'put' && ++puts === 3) break;
      }
      ac.abort();
      expect(lock.signal.aborted).toBe(false);
      faulty.clear();
      await lock.release();
      await waiter.close();
      await holder.close();
    });

    it('close() while an acquire waits: the acquire is refused, and nothing of it is left', async () => {
      const inner = await fresh(target.url());
      const a = await openSession(inner, { ttlMs: 60_000 });
      const b = await openSession(inner, { ttlMs: 60_000 });
      const held = await a.lock('closing');
      const pending = b.lock('closing').catch((e: unknown) => e);
      while ((await inner.list({ prefix: 'locks/closing/.waiting/' })).entries.length === 0) await sleep(5);
      await b.close();
      expect(RevkitError.is(await pending)).toBe(true);
      expect((await inner.list({ prefix: 'locks/closing/.waiting/' })).entries).toEqual([]);
      await held.release();
      expect(await inner.get('locks/closing')).toBeNull();
      await a.close();
    });

    it('close() just after an acquire took the lock (its waiter key still being deleted) leaves no lock key behind', async () => {
      const inner = await fresh(target.url());
      const faulty = new FaultStore(inner);
      const a = await openSession(inner, { ttlMs: 60_000 });
      const b = await openSession(faulty, { ttlMs: 60_000 });
      const held = await a.lock('closing2');
      const pending = b.lock('closing2').catch((e: unknown) => e);
      while ((await inner.list({ prefix: 'locks/closing2/.waiting/' })).entries.length === 0) await sleep(5);
      faulty.inject({ kind: 'stall', op: 'delete', stallMs: 1_000 });
      await held.release();
      // b has taken the lock and is deleting its waiter key (stalled): it closes now.
      while (faulty.injected.length === 0) await sleep(5);
      await b.close();
      await pending;
      expect(await inner.get('locks/closing2')).toBeNull();
      await a.close();
    });

    it('a rewrite that reaches the store after the key expired there brings back no value (observe() sees no phantom leader)', async () => {
      // No sweeper: the expired key stays at its revision, as between two sweeps.
      const inner = target.name === 'memory' ? new MemoryStore({ sweepIntervalMs: 3_600_000 }) : new SqliteStore(join(dir, `${uniqueName('ph')}.db`), { sweepIntervalMs: 3_600_000 });
      opened.push(inner);
      const faulty = new FaultStore(inner);
      const session = await openSession(faulty, { ttlMs: 600 });
      const lead = await session.campaign('phantom', 'v1');
      const base = faulty.calls.put;
      // Every rewrite of the key from now on reaches the store 1 s late: after the lease ran out there.
      faulty.inject({ kind: 'stall', op: 'put', key: 'locks/phantom', stallMs: 1_000, times: 1_000 });
      const proclaimed = lead.proclaim('v2').catch((e: unknown) => e);
      await new Promise((resolve) => lead.signal.addEventListener('abort', resolve, { once: true }));
      const stalled = faulty.injected.length;
      while (faulty.calls.put - base < stalled) await sleep(10);
      await inner.put('marker', 1); // after every stalled write, in this store's commit order
      expect(LockLostError.is(await proclaimed)).toBe(true);
      for (const record of await inner.history('locks/phantom')) {
        if (!('deleted' in record)) expect(record.createdRevision, JSON.stringify(record)).toBe(lead.fence);
      }
      faulty.clear();
      await session.close();
    });

    it('ttlMs beyond a day, or below 100 ms, is refused (setTimeout overflow; keepalives racing every fenced commit)', async () => {
      const store = await fresh(target.url());
      for (const ttlMs of [3e9, 86_400_001, 30]) {
        expect(InvalidArgumentError.is(await openSession(store, { ttlMs }).catch((e: unknown) => e)), String(ttlMs)).toBe(true);
      }
    });

    it('after a pause longer than the lease, lock.signal says lost at once, before any timer has run', async () => {
      const store = await fresh(target.url());
      const session = await openSession(store, { ttlMs: 300 });
      const lock = await session.lock('paused');
      const until = performance.now() + 400;
      while (performance.now() < until) { /* the event loop is blocked, as by a long GC pause */ }
      expect(lock.signal.aborted).toBe(true);
      await session.close();
    });

    it('observe() rides out a failed read', async () => {
      const inner = await fresh(target.url());
      const faulty = new FaultStore(inner);
      faulty.inject({ kind: 'fail-before', op: 'getRecord', key: 'locks/readfail' });
      const ac = new AbortController();
      const it = observe(faulty, 'readfail', { signal: ac.signal })[Symbol.asyncIterator]();
      expect(await it.next()).toEqual({ done: false, value: null });
      ac.abort();
      await it.return?.(undefined);
    });

    it('close() after the session was lost deletes a lock key that is still its own', async () => {
      const inner = await fresh(target.url());
      const faulty = new FaultStore(inner);
      const session = await openSession(faulty, { ttlMs: 30_000, marginMs: 29_000, keepaliveMs: 200 });
      const lock = await session.lock('lostclose');
      faulty.inject({ kind: 'fail-before', op: 'put', times: 1_000 });
      await new Promise((resolve) => session.signal.addEventListener('abort', resolve, { once: true }));
      expect(lock.signal.aborted).toBe(true);
      faulty.clear();
      await session.close();
      expect(await inner.get('locks/lostclose')).toBeNull();
    });

    it('someone else\'s value at this session\'s waiter key, or junk under the queue, is no plain Error and holds nobody up', async () => {
      const store = await fresh(target.url());
      const a = await openSession(store, { ttlMs: 60_000 });
      const b = await openSession(store, { ttlMs: 60_000 });
      await store.put('locks/junk/.waiting/zzz', 'not a waiter');
      expect((await b.lock('junk', { waitMs: 0 })).fence).toBeGreaterThan(0);
      const held = await a.lock('taken');
      await store.put(`locks/taken/.waiting/${b.id}-0`, { written: 'by someone else' });
      const pending = b.lock('taken');
      while ((await store.list({ prefix: 'locks/taken/.waiting/' })).entries.length < 2) await sleep(5);
      await held.release();
      expect((await pending).fence).toBeGreaterThan(held.fence);
      expect(InvalidArgumentError.is(await a.lock('x', { signal: 'nope' as unknown as AbortSignal }).catch((e: unknown) => e))).toBe(true);
      await a.close();
      await b.close();
    });

    it('options of the wrong shape are refused with InvalidArgumentError, not a TypeError', async () => {
      const store = await fresh(target.url());
      const refused = async (p: () => Promise<unknown>) => {
        const err = await p().then(() => 'accepted', (e: unknown) => e);
        expect(InvalidArgumentError.is(err), String(err)).toBe(true);
      };
      await refused(() => openSession(store, null as unknown as undefined));
      const session = await openSession(store);
      await refused(() => session.lock('a', null as unknown as undefined));
      await refused(() => session.campaign('a', 1, null as unknown as undefined));
      await refused(() => observe(store, 'a', null as unknown as undefined).next());
      await refused(() => observe(store, 'a', { signal: {} as AbortSignal }).next());
      await session.close();
    });

    it('a session key another writer took first is a typed conflict, not a plain Error', async () => {
      const inner = await fresh(target.url());
      const store = sessionKeyTakenOn(inner);
      const err = await openSession(store).catch((e: unknown) => e);
      expect(ConflictError.is(err)).toBe(true);
      expect((err as ConflictError).key).toMatch(/^locks\/\.sessions\//);
    });
  });
}

describe('revkit lock (CLI) review findings', () => {
  it('a lost lock stops the command\'s whole process group: a script\'s child is stopped too', async () => {
    const url = `sqlite:${join(dir, 'cli-group.db')}`;
    const pidFile = join(dir, 'grandchild.pid');
    // The script starts a child that outlives it unless its process group is signalled.
    const script = `sleep 600 & echo $! > ${JSON.stringify(pidFile)}; wait`;
    const child = spawn(process.execPath, ['dist/cli/main.js', '--store', url, 'lock', 'group', '--ttl', '3000', '--', 'sh', '-c', script], { stdio: ['pipe', 'ignore', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    for (;;) {
      try {
        if (readFileSync(pidFile, 'utf8').trim()) break;
      } catch { /* not yet */ }
      await sleep(20);
    }
    const grandchild = Number(readFileSync(pidFile, 'utf8').trim());
    const store = await fresh(url);
    await store.delete('locks/group');
    expect(await exited).toBe(5);
    // The grandchild was signalled with the group; wait for it to be gone (kill 0 throws once it is).
    await (async () => {
      for (;;) {
        try {
          process.kill(grandchild, 0);
        } catch {
          return;
        }
        await sleep(20);
      }
    })();
    writeFileSync(pidFile, '');
  });
});
