import { describe, expect, it } from 'vitest';
import { rawCodec, type WatchEvent } from '../src/core/index.js';
import type { RedisStore } from '../src/redis/index.js';
import { dropStoresAfterAll, freshStore } from './redis-helpers.js';

dropStoresAfterAll();

/** Counts the store's script calls made for watches (the real store, talking to the real server). */
function countWatchReads(store: RedisStore): { reads: () => number; reset: () => void } {
  let reads = 0;
  const target = store as unknown as { run: (...call: unknown[]) => Promise<unknown> };
  const run = target.run.bind(store);
  target.run = (...call: unknown[]) => {
    if (call[3] === 'watch') reads++;
    return run(...call);
  };
  return { reads: () => reads, reset: () => void (reads = 0) };
}

describe('redis: caught-up watches share their reads of the change log', () => {
  it('200 idle watches and a live one: a write costs a few reads, not one per watch; every watch still gets its own events', async () => {
    const store = await freshStore({ watchBlockMs: 60_000 });
    const counter = countWatchReads(store);
    const controller = new AbortController();
    const idle = Array.from({ length: 200 }, (_, i) => store.watch({ key: `idle/${i}`, fromRevision: 0, signal: controller.signal })[Symbol.asyncIterator]());
    const pending = idle.map((it) => it.next());
    const live = store.watch({ prefix: 'live/', fromRevision: 0, signal: controller.signal })[Symbol.asyncIterator]();
    // Every watch has read to the head and waits (the live one got the first write).
    const first = (await store.put('live/0', 0)).revision;
    expect(((await live.next()).value as WatchEvent).revision).toBe(first);
    await new Promise((resolve) => setTimeout(resolve, 200));
    counter.reset();
    const revisions: number[] = [];
    for (let i = 1; i <= 5; i++) {
      revisions.push((await store.put(`live/${i}`, i)).revision);
      expect(((await live.next()).value as WatchEvent).revision).toBe(revisions.at(-1));
    }
    // Before: every write woke every watch into a read of its own (≥ 201 × 5).
    expect(counter.reads()).toBeLessThan(5 * 10);
    // The idle watches were woken too, and still deliver what is theirs.
    const mine = (await store.put('idle/7', 'x')).revision;
    expect(await pending[7]).toMatchObject({ done: false, value: { key: 'idle/7', revision: mine } });
    controller.abort();
    await store.close();
  });

  it('watches that share a read get values of their own: one consumer changing its event\'s bytes changes no other (raw codec)', async () => {
    const store = await freshStore({ codec: rawCodec });
    const base = (await store.put('k', Buffer.from('seed'))).revision;
    const controller = new AbortController();
    const [a, b] = [0, 1].map(() => store.watch({ key: 'k', fromRevision: base, signal: controller.signal })[Symbol.asyncIterator]());
    const [nextA, nextB] = [a?.next(), b?.next()];
    await new Promise((resolve) => setTimeout(resolve, 200));
    await store.put('k', Buffer.from('hello'));
    const [eventA, eventB] = [(await nextA)?.value, (await nextB)?.value] as Array<{ entry: { value: Uint8Array } }>;
    (eventA as { entry: { value: Uint8Array } }).entry.value[0] = 0x4a;
    expect(Buffer.from((eventB as { entry: { value: Uint8Array } }).entry.value).toString()).toBe('hello');
    expect(Buffer.from((await store.get<Uint8Array>('k'))?.value as Uint8Array).toString()).toBe('hello');
    controller.abort();
    await store.close();
  });

  it('a watch from a revision not written yet waits like the others: caught-up watches do not read again and again', async () => {
    const store = await freshStore({ watchBlockMs: 60_000 });
    const counter = countWatchReads(store);
    const controller = new AbortController();
    const head = (await store.put('x', 0)).revision;
    const future = store.watch({ prefix: '', fromRevision: head + 1000, signal: controller.signal })[Symbol.asyncIterator]();
    const caughtUp = Array.from({ length: 5 }, () => store.watch({ prefix: 'x', fromRevision: head, signal: controller.signal })[Symbol.asyncIterator]());
    const nextOf = caughtUp.map((it) => it.next());
    const futureNext = future.next();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const written = (await store.put('x', 1)).revision;
    for (const next of nextOf) expect(((await next).value as WatchEvent).revision).toBe(written);
    for (const it of caughtUp) void it.next();
    counter.reset();
    await new Promise((resolve) => setTimeout(resolve, 500));
    // Before: the future watch's position made every other watch look behind it — thousands of reads in 0.5 s.
    expect(counter.reads()).toBeLessThan(20);
    controller.abort();
    await futureNext.catch(() => undefined);
    await store.close();
  });

  it('watchBlockMs beyond what a timer can wait is refused', async () => {
    await expect(freshStore({ watchBlockMs: 2 ** 31 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});
