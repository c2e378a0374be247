/**
 * A reset() or a delete() of a cursor wins over a follow() that is running on
 * it: the follower records nothing more from where it was, reads the cursor
 * again and handles every event after it again. No verdict here depends on
 * timing: each test waits for a condition (the cursor reaching the last
 * event), then judges what the handler was called with.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BackendError, InvalidArgumentError, type Store, type WatchEvent } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { checkpoints, follow, resumeKey, type Checkpoints } from '../src/checkpoints/index.js';
import { backends, openFresh } from './checkpoints-backends.js';

const key = resumeKey({ consumer: 'reset-test', prefix: 'data/' });

/** Polls `condition` until it holds; fails (saying what it waited for) after a generous limit. */
async function until(what: string, condition: () => boolean | Promise<boolean>, limitMs = 30_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Handled {
  event: string;
  /** The handler was called once the reset (or delete) was under way: no call that started earlier counts. */
  afterMove: boolean;
}

/** A follow() of data/ whose handler logs every call; `gate` may hold a call until the test lets it go. */
function startFollower(store: Store, cps: Checkpoints, gate?: (ev: WatchEvent) => Promise<void> | undefined) {
  const handled: Handled[] = [];
  const state = { moved: false };
  const controller = new AbortController();
  const done = follow(store, { prefix: 'data/', checkpoint: { checkpoints: cps, key } }, async (ev) => {
    const afterMove = state.moved;
    await gate?.(ev);
    handled.push({ event: `${ev.key}@${ev.revision}`, afterMove });
  }, { signal: controller.signal });
  return {
    handled,
    /** Call just before the reset or delete: the follower may react to it before the call returns here. */
    markMoved: () => (state.moved = true),
    /** The events whose handler was called once the reset or delete was under way, in order. */
    afterMove: () => handled.filter((h) => h.afterMove).map((h) => h.event),
    done,
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}

/** A gate that holds the first call for `event` until `release()`; `entered` resolves when it is held. */
function holdOnce(match: (ev: WatchEvent) => boolean) {
  let release!: () => void;
  let entered!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const enteredP = new Promise<void>((r) => (entered = r));
  let held = false;
  return {
    gate: (ev: WatchEvent) => {
      if (held || !match(ev)) return undefined;
      held = true;
      entered();
      return released;
    },
    entered: enteredP,
    release: () => release(),
  };
}

describe('read() and advanceIfUnmoved(): the guarded advance follow() is built on', () => {
  it('writes only over the revision the caller read or wrote; anyone else\'s write makes it return null', async () => {
    const store = new MemoryStore();
    const cps = checkpoints(store, { prefix: 'cp/' });
    expect(await cps.read(key)).toEqual({ cursor: null, revision: null });
    const first = await cps.advanceIfUnmoved(key, { sequence: 5, eventId: 'a' }, null);
    expect(first).toBeGreaterThan(0);
    expect(await cps.read(key)).toEqual({ cursor: { sequence: 5, eventId: 'a' }, revision: first });
    // Never written is a guard too: a cursor that exists is not overwritten.
    expect(await cps.advanceIfUnmoved(key, { sequence: 6 }, null)).toBeNull();
    // Not a sequence comparison: the caller knows where it is.
    const second = await cps.advanceIfUnmoved(key, { sequence: 3 }, first);
    expect(await cps.get(key)).toEqual({ sequence: 3 });
    await cps.reset(key, { sequence: 1 });
    expect(await cps.advanceIfUnmoved(key, { sequence: 4 }, second)).toBeNull();
    expect(await cps.get(key)).toEqual({ sequence: 1 });
    await cps.reset(key);
    const removed = await cps.read(key);
    expect(removed.cursor).toBeNull();
    expect(removed.revision).toBeGreaterThan(second as number);
    expect(await cps.advanceIfUnmoved(key, { sequence: 9 }, removed.revision)).toBeGreaterThan(removed.revision as number);
    await expect(cps.advanceIfUnmoved(key, { sequence: 9 }, 0)).rejects.toThrow(InvalidArgumentError);
    await expect(cps.advanceIfUnmoved(key, { sequence: -1 }, null)).rejects.toThrow(InvalidArgumentError);
    await store.close();
  });

  it('a write whose answer was lost is sent again under the same guard: if the first one landed, it returns null', async () => {
    const inner = new MemoryStore();
    let lose = 1;
    const store = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'put') {
          return async (...args: Parameters<Store['put']>) => {
            const entry = await target.put(...args);
            if (lose-- > 0) throw new BackendError('connection reset', { transient: true, ambiguous: true });
            return entry;
          };
        }
        const value = Reflect.get(target, prop);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const cps = checkpoints(store, { prefix: 'cp/' });
    expect(await cps.advanceIfUnmoved(key, { sequence: 2 }, null)).toBeNull();
    expect(await cps.get(key)).toEqual({ sequence: 2 });
    await inner.close();
  });
});

for (const backend of backends('reset')) {
  describe(`reset and delete win over a running follow() on ${backend.name}`, () => {
    let store: Store;
    let cps: Checkpoints;
    let follower: ReturnType<typeof startFollower> | undefined;

    afterEach(async () => {
      await follower?.stop().catch(() => undefined);
      follower = undefined;
      await store?.close();
    });

    /** `n` changes under data/, one revision each; returns their `key@revision` names. */
    const produce = async (n: number, from = 0): Promise<string[]> => {
      const names: string[] = [];
      for (let i = from; i < from + n; i++) names.push(`data/k${i}@${(await store.put(`data/k${i}`, i)).revision}`);
      return names;
    };
    const revisionOf = (name: string) => Number(name.split('@')[1]);
    const cursorAt = (name: string) => async () => (await cps.get(key))?.sequence === revisionOf(name);

    const setUp = async () => {
      store = await openFresh(backend);
      cps = checkpoints(store, { prefix: 'cp/' });
    };

    it('reset to an earlier sequence while it waits for events: the rewound events are handled again', async () => {
      await setUp();
      const events = await produce(6);
      follower = startFollower(store, cps);
      await until('the follower to record the last event', cursorAt(events[5] as string));
      follower.markMoved();
      expect(await cps.reset(key, { sequence: revisionOf(events[1] as string) })).toEqual({ sequence: revisionOf(events[1] as string) });
      const [next] = await produce(1, 6);
      await until('the cursor to reach the event written after the reset', cursorAt(next as string));
      // The follower may have handled the new event once more before it saw the reset: judge the tail.
      expect(follower.afterMove().slice(-5)).toEqual([...events.slice(2), next]);
      expect(await cps.get(key)).toEqual({ sequence: revisionOf(next as string), eventId: 'data/k6' });
    });

    it('reset with no cursor (removed) while it runs: it starts again from the beginning, as a follow() with no cursor does', async () => {
      await setUp();
      const events = await produce(4);
      follower = startFollower(store, cps);
      await until('the follower to record the last event', cursorAt(events[3] as string));
      follower.markMoved();
      expect(await cps.reset(key)).toBeNull();
      const [next] = await produce(1, 4);
      await until('the cursor to reach the event written after the reset', cursorAt(next as string));
      expect(follower.afterMove().slice(-5)).toEqual([...events, next]);
    });

    it('delete(key, { ifAt }) while it runs: the delete goes through and it starts again from the beginning', async () => {
      await setUp();
      const events = await produce(4);
      follower = startFollower(store, cps);
      await until('the follower to record the last event', cursorAt(events[3] as string));
      follower.markMoved();
      expect(await cps.delete(key, { ifAt: revisionOf(events[3] as string) })).toBe(true);
      const [next] = await produce(1, 4);
      await until('the cursor to reach the event written after the delete', cursorAt(next as string));
      expect(follower.afterMove().slice(-5)).toEqual([...events, next]);
    });

    it('reset back while the handler runs for an event: that event and every one after the reset point are handled again', async () => {
      await setUp();
      const events = await produce(6);
      const hold = holdOnce((ev) => ev.key === 'data/k3');
      follower = startFollower(store, cps, hold.gate);
      await hold.entered;
      // The cursor is at k2's revision; reset it to k0's while k3's handler runs.
      expect(await cps.get(key)).toMatchObject({ sequence: revisionOf(events[2] as string) });
      follower.markMoved();
      await cps.reset(key, { sequence: revisionOf(events[0] as string) });
      hold.release();
      const [next] = await produce(1, 6);
      await until('the cursor to reach the event written after the reset', cursorAt(next as string));
      expect(follower.afterMove().slice(-6)).toEqual([...events.slice(1), next]);
      // k3's handler call that was running during the reset was not recorded over the reset.
      expect(follower.handled.filter((h) => h.event === events[3]).length).toBe(2);
    });

    for (const mover of ['reset forward', 'a plain advance() by someone else'] as const) {
      it(`${mover} while the handler runs: it resumes from the cursor it finds, skipping what that cursor covers`, async () => {
        await setUp();
        const events = await produce(6);
        const hold = holdOnce((ev) => ev.key === 'data/k1');
        follower = startFollower(store, cps, hold.gate);
        await hold.entered;
        const to = { sequence: revisionOf(events[4] as string) };
        follower.markMoved();
        if (mover === 'reset forward') await cps.reset(key, to);
        else expect(await cps.advance(key, to)).toEqual({ advanced: true, current: to });
        hold.release();
        const [next] = await produce(1, 6);
        await until('the cursor to reach the event written after the move', cursorAt(next as string));
        expect(follower.afterMove()).toEqual([events[5], next]);
        // Never recorded backwards over the move.
        expect(follower.handled.map((h) => h.event)).not.toContain(events[2]);
      });
    }

    it('advance() called directly keeps its monotonic semantics while a follow() runs', async () => {
      await setUp();
      const events = await produce(3);
      follower = startFollower(store, cps);
      await until('the follower to record the last event', cursorAt(events[2] as string));
      expect(await cps.advance(key, { sequence: 1 })).toEqual({ advanced: false, current: { sequence: revisionOf(events[2] as string), eventId: 'data/k2' } });
      const [next] = await produce(1, 3);
      await until('the cursor to reach the next event', cursorAt(next as string));
      expect(follower.handled.map((h) => h.event)).toEqual([...events, next]);
    });

    it('a follow() stopped in the middle of a move resolves', async () => {
      await setUp();
      const events = await produce(2);
      follower = startFollower(store, cps);
      await until('the follower to record the last event', cursorAt(events[1] as string));
      const reset = cps.reset(key);
      await follower.stop();
      await reset;
      follower = undefined;
    });
  });
}
