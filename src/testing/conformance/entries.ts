// What a store keeps and reads back: get / put / delete, list(), history(), ttl.
import { describe, expect } from 'vitest';
import { isTombstone, UnsupportedError, type Entry } from '../../core/index.js';
import { sleepMs, type RegisterStoreTest } from './harness.js';

export function describeGetPutDelete(test: RegisterStoreTest): void {
  describe('get / put / delete', () => {
    test('get of a missing key is null; put returns the stored entry', async (s) => {
      expect(await s.get('a')).toBeNull();
      expect(await s.getRecord('a')).toBeNull();
      const e = await s.put('a', { n: 1 });
      expect(e).toMatchObject({ key: 'a', value: { n: 1 }, createdRevision: e.revision });
      expect(Number.isSafeInteger(e.revision) && e.revision > 0).toBe(true);
      expect(typeof e.updatedAt).toBe('number');
      expect(await s.get('a')).toMatchObject({ key: 'a', value: { n: 1 }, revision: e.revision });
    });

    test('revisions increase with every write; createdRevision stays until a delete', async (s) => {
      const a = await s.put('k', 1);
      const b = await s.put('k', 2);
      expect(b.revision).toBeGreaterThan(a.revision);
      expect(b.createdRevision).toBe(a.revision);
      const d = await s.delete('k');
      expect(d).toBeGreaterThan(b.revision);
      const c = await s.put('k', 3);
      expect(c.revision).toBeGreaterThan(d as number);
      expect(c.createdRevision).toBe(c.revision);
    });

    test('delete writes a tombstone that the read-modify-write read sees', async (s) => {
      expect(await s.delete('gone')).toBeNull();
      await s.put('gone', 'x');
      const rev = await s.delete('gone');
      expect(await s.get('gone')).toBeNull();
      const record = await s.getRecord('gone');
      expect(isTombstone(record)).toBe(true);
      expect(record?.revision).toBe(rev);
      expect(await s.delete('gone')).toBeNull();
    });

    test('returned values are private copies', async (s) => {
      const value = { list: [1, 2] };
      const e = await s.put('copy', value);
      value.list.push(3);
      (e.value as { list: number[] }).list.push(4);
      expect((await s.get('copy'))?.value).toEqual({ list: [1, 2] });
    });
  });
}

export function describeList(test: RegisterStoreTest): void {
  describe('list()', () => {
    test('live entries under a prefix in key order, paginated', async (s) => {
      for (const k of ['p/b', 'p/a', 'p/c/1', 'q/a', 'p/d', 'p/e']) await s.put(k, k);
      await s.delete('p/d');
      const all = await s.list({ prefix: 'p/' });
      expect(all.entries.map((e) => e.key)).toEqual(['p/a', 'p/b', 'p/c/1', 'p/e']);
      expect(all.cursor).toBeUndefined();
      const first = await s.list({ prefix: 'p/', limit: 2 });
      expect(first.entries.map((e) => e.key)).toEqual(['p/a', 'p/b']);
      const second = await s.list({ prefix: 'p/', limit: 2, after: first.cursor as string });
      expect(second.entries.map((e) => e.key)).toEqual(['p/c/1', 'p/e']);
      expect((await s.list({ prefix: 'p/', after: 'p/e' })).entries).toEqual([]);
      // A cursor before the prefix starts at the prefix; one after it ends the listing.
      expect((await s.list({ prefix: 'p/', after: 'a' })).entries.map((e) => e.key)).toEqual(['p/a', 'p/b', 'p/c/1', 'p/e']);
      expect((await s.list({ prefix: 'p/', after: 'p/c' })).entries.map((e) => e.key)).toEqual(['p/c/1', 'p/e']);
      expect((await s.list({ prefix: 'p/', after: 'q' })).entries).toEqual([]);
      expect((await s.list()).entries.length).toBe(5);
    });
  });
}

export function describeHistory(test: RegisterStoreTest): void {
  describe('history()', () => {
    test('a tombstone in history carries the time of its delete', async (s) => {
      const put = await s.put('gone', 1);
      const revision = await s.delete('gone');
      const [tomb] = await s.history('gone');
      expect(tomb).toMatchObject({ key: 'gone', deleted: true, revision });
      expect(typeof tomb?.updatedAt).toBe('number');
      expect(tomb!.updatedAt!).toBeGreaterThanOrEqual(put.updatedAt);
      expect(tomb!.updatedAt!).toBeLessThan(put.updatedAt + 60_000);
    });

    test('past revisions newest first, tombstones included', async (s) => {
      if (!s.capabilities.history) return;
      const a = await s.put('h', 'a');
      const b = await s.put('h', 'b');
      const d = await s.delete('h');
      const c = await s.put('h', 'c');
      const hist = await s.history('h');
      expect(hist.map((r) => r.revision)).toEqual([c.revision, d, b.revision, a.revision]);
      expect(isTombstone(hist[1])).toBe(true);
      expect((hist[0] as Entry).value).toBe('c');
      expect((await s.history('h', { limit: 2 })).length).toBe(2);
      expect(await s.history('nothing')).toEqual([]);
    });
  });
}

export function describeTtl(test: RegisterStoreTest): void {
  describe('ttl', () => {
    test('an expired key reads as absent and can be created again', async (s) => {
      if (!s.capabilities.ttl) {
        expect(UnsupportedError.is(await s.put('ttl', 1, { ttlMs: 100 }).catch((x) => x))).toBe(true);
        return;
      }
      const e = await s.put('ttl', 1, { ttlMs: 300 });
      expect(e.expiresAt).toBeGreaterThan(Date.now());
      expect((await s.get('ttl'))?.value).toBe(1);
      await sleepMs(600);
      expect(await s.get('ttl')).toBeNull();
      expect((await s.list({ prefix: 'ttl' })).entries).toEqual([]);
      expect((await s.put('ttl', 2, { ifAbsent: true })).value).toBe(2);
    });
  });
}
