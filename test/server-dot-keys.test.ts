import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WatchEvent } from '../src/core/index.js';
import type { HttpStore } from '../src/server/index.js';
import { servedStore } from './server-helpers.js';

// Issue 10 #13: fetch removes `.` and `..` path segments (percent-encoded too), so HttpStore
// could not address those keys; every valid key must round-trip over HTTP.
const KEYS = ['.', '..', 'a/./b', 'a/../b', './a', 'a/..', '...', '%2E', '.%2E'];

describe('HTTP: keys made of dot segments round-trip', () => {
  let store: HttpStore;
  beforeAll(async () => {
    store = await servedStore('memory:');
  });
  afterAll(() => store.close());

  it('put, get, history, list, watch and delete address exactly the key given', async () => {
    const controller = new AbortController();
    const events: WatchEvent[] = [];
    const watching = (async () => {
      for await (const ev of store.watch({ prefix: '', signal: controller.signal })) {
        events.push(ev);
        if (events.length === KEYS.length * 3) break;
      }
    })();
    await new Promise((r) => setTimeout(r, 100)); // let the watch connect ("from now")
    for (const [i, key] of KEYS.entries()) {
      const put = await store.put(key, { i });
      expect(put.key).toBe(key);
      await store.put(key, { i, again: true }, { ifRevision: put.revision });
    }
    // Nothing else was written: each key holds its own value, `..` did not land on `/v1/` or `.` on the list route.
    const listed = await store.list();
    expect(listed.entries.map((e) => e.key).sort()).toEqual([...KEYS].sort());
    for (const [i, key] of KEYS.entries()) {
      expect((await store.get(key))?.value, key).toEqual({ i, again: true });
      const history = await store.history(key);
      expect(history.map((r) => r.key), key).toEqual([key, key]);
      expect((await store.history(key, { limit: 1 })).length).toBe(1);
    }
    for (const key of KEYS) expect(await store.delete(key), key).not.toBeNull();
    for (const key of KEYS) {
      expect(await store.get(key), key).toBeNull();
      expect(await store.delete(key), key).toBeNull();
    }
    await watching;
    controller.abort();
    expect(events.map((e) => `${e.type} ${e.key}`)).toEqual([
      ...KEYS.flatMap((k) => [`put ${k}`, `put ${k}`]),
      ...KEYS.map((k) => `delete ${k}`),
    ]);
  });

  it('a key literally named "history" and a history read of "." stay distinct', async () => {
    await store.put('history', 'plain');
    await store.put('.', 'dot');
    expect((await store.get('history'))?.value).toBe('plain');
    const [newest, ...older] = await store.history('.');
    expect(newest).toMatchObject({ key: '.', value: 'dot' });
    for (const r of older) expect(r.key).toBe('.');
    expect((await store.history('history')).map((r) => r.key)).toEqual(['history']);
  });
});
