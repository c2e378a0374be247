import { describe, expect } from 'vitest';
import { InvalidArgumentError, type WatchEvent } from '../../core/index.js';
import { sleepMs, withTimeout, type RegisterStoreTest } from './harness.js';

/** `timeout`: the target's per-test timeout (the backlog check takes at least 300 s). */
export function describeWatch(test: RegisterStoreTest, timeout: number): void {
  describe('watch()', () => {
    test('from a revision: every later change exactly once, in order, deletes included', async (s) => {
      if (!s.capabilities.watch) return;
      const base = await s.put('w/0', 0);
      const controller = new AbortController();
      const written: Array<[string, number]> = [];
      for (let i = 1; i <= 5; i++) written.push([`w/${i % 2}`, (await s.put(`w/${i % 2}`, i)).revision]);
      written.push(['w/1', (await s.delete('w/1')) as number]);
      await s.put('other/x', 1);
      const seen: WatchEvent[] = [];
      const watching = (async () => {
        for await (const ev of s.watch({ prefix: 'w/', fromRevision: base.revision, signal: controller.signal })) {
          seen.push(ev);
          if (seen.length === 9) break;
        }
      })();
      for (let i = 6; i <= 8; i++) written.push([`w/${i % 2}`, (await s.put(`w/${i % 2}`, i)).revision]);
      await withTimeout(watching, 10_000, () => `watch saw ${JSON.stringify(seen.map((e) => [e.key, e.revision]))}`);
      controller.abort();
      expect(seen.map((e) => [e.key, e.revision])).toEqual(written);
      expect(seen[5]).toMatchObject({ type: 'delete', key: 'w/1' });
      expect(seen[0]).toMatchObject({ type: 'put', entry: { value: 1 } });
    });

    test('changes committed while the watch starts are delivered once', async (s) => {
      if (!s.capabilities.watch) return;
      const start = await s.put('ws/start', 0);
      const revs: number[] = [];
      const writes = (async () => {
        for (let i = 0; i < 50; i++) revs.push((await s.put(`ws/${i % 5}`, i)).revision);
      })();
      while (revs.length < 10) await sleepMs(1);
      const controller = new AbortController();
      const seen: number[] = [];
      const watching = (async () => {
        for await (const ev of s.watch({ prefix: 'ws/', fromRevision: start.revision, signal: controller.signal })) {
          seen.push(ev.revision);
          if (seen.length === 50) break;
        }
      })();
      await writes;
      await withTimeout(watching, 10_000, () => `saw ${seen.length} of 50`);
      expect(seen).toEqual(revs);
    });

    test('a backlog of over a thousand changes, two-key atomic commits included, arrives complete and in order', async (s) => {
      if (!s.capabilities.watch) return;
      const start = await s.put('bl/start', 0);
      // One lone change first, so that pages of a thousand end in the middle of a two-key commit.
      // 31 keys of each kind: about 20 revisions per key, within what any backend keeps per key.
      const written: Array<[string, number]> = [['bl/lone', (await s.put('bl/lone', 0)).revision]];
      for (let i = 0; i < 620; i++) {
        if (s.capabilities.atomic) {
          const { revision } = await s.atomic().set(`bl/a${i % 31}`, i).set(`bl/b${i % 31}`, i).commit();
          written.push([`bl/a${i % 31}`, revision], [`bl/b${i % 31}`, revision]);
        } else {
          written.push([`bl/a${i % 31}`, (await s.put(`bl/a${i % 31}`, i)).revision], [`bl/b${i % 31}`, (await s.put(`bl/b${i % 31}`, i)).revision]);
        }
      }
      const controller = new AbortController();
      const seen: Array<[string, number]> = [];
      await withTimeout((async () => {
        for await (const ev of s.watch({ prefix: 'bl/', fromRevision: start.revision, signal: controller.signal })) {
          seen.push([ev.key, ev.revision]);
          if (seen.length === written.length) break;
        }
      })(), 120_000, () => `saw ${seen.length} of ${written.length} changes`).finally(() => controller.abort());
      const byRevisionThenKey = (a: [string, number], b: [string, number]) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
      expect([...seen].sort(byRevisionThenKey)).toEqual([...written].sort(byRevisionThenKey));
      expect(seen.map((e) => e[1])).toEqual([...seen.map((e) => e[1])].sort((a, b) => a - b));
    }, Math.max(timeout, 300_000)); // a liveness bound only: 1,241 fsynced commits on a loaded machine

    test('headRevision(), where a store has it, is at or past every acknowledged write, and a watch from it misses nothing later', async (s) => {
      if (!s.headRevision) return;
      const before = await s.put('head/a', 1);
      const head = await s.headRevision();
      expect(head).toBeGreaterThanOrEqual(before.revision);
      const controller = new AbortController();
      const seen: WatchEvent[] = [];
      const watching = (async () => {
        for await (const ev of s.watch({ prefix: 'head/', fromRevision: head, signal: controller.signal })) {
          seen.push(ev);
          if (seen.length === 2) break;
        }
      })();
      const after = [await s.put('head/b', 2), await s.put('head/a', 3)];
      await watching;
      expect(seen.map((e) => e.revision)).toEqual(after.map((e) => e.revision));
      expect(await s.headRevision()).toBeGreaterThanOrEqual(after[1]!.revision);
    });

    // Review of the memory watch's back-pressure (2026-12-06): memory delivered every change written after
    // watch() was called, also those at or below a fromRevision it had not reached yet.
    test('from a revision not written yet: only the changes after it', async (s) => {
      if (!s.capabilities.watch) return;
      const from = (await s.put('ahead/0', 0)).revision + 3;
      const controller = new AbortController();
      const seen: number[] = [];
      const written: number[] = [];
      let last = Number.POSITIVE_INFINITY;
      const watching = (async () => {
        for await (const ev of s.watch({ prefix: 'ahead/', fromRevision: from, signal: controller.signal })) {
          seen.push(ev.revision);
          if (ev.revision >= last) break;
        }
      })();
      for (let i = 1; i <= 6; i++) written.push((await s.put(`ahead/${i}`, i)).revision);
      last = written[written.length - 1] as number;
      if (seen.includes(last)) controller.abort();
      await withTimeout(watching, 10_000, () => `watch from ${from} saw ${JSON.stringify(seen)} of ${JSON.stringify(written)}`);
      controller.abort();
      expect(seen).toEqual(written.filter((r) => r > from));
    });

    test('watch of one key ignores others; aborting ends the iteration', async (s) => {
      if (!s.capabilities.watch) return;
      const controller = new AbortController();
      const seen: string[] = [];
      const iterating = (async () => {
        for await (const ev of s.watch({ key: 'one', signal: controller.signal })) {
          seen.push(`${ev.key}=${ev.type === 'put' ? String(ev.entry.value) : 'deleted'}`);
          if (seen.length === 2) controller.abort();
        }
      })();
      await sleepMs(300);
      await s.put('one-more', 1);
      await s.put('one', 'a');
      await s.put('onex', 2);
      await s.delete('one');
      await withTimeout(iterating, 10_000, () => `saw ${seen.join(',')}`);
      expect(seen).toEqual(['one=a', 'one=deleted']);
    });

    // Hostile review: SQLite took any fromRevision — NaN or Infinity watched nothing, forever, with no
    // error, and -3 said HistoryGoneError on a store that had pruned nothing.
    test('a fromRevision that is not a non-negative safe integer is refused with InvalidArgumentError', async (s) => {
      if (!s.capabilities.watch) return;
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, -3, 1.5, '2', 2 ** 53]) {
        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(), 5_000);
        const err = await (async () => {
          for await (const _ of s.watch({ prefix: 'badrev/', fromRevision: bad as number, signal: controller.signal })) return undefined;
          return undefined;
        })().catch((e: unknown) => e);
        clearTimeout(timer);
        controller.abort();
        expect(InvalidArgumentError.is(err), `fromRevision ${String(bad)}: ${String(err)}`).toBe(true);
      }
    });
  });
}
