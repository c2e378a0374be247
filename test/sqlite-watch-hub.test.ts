/**
 * Every watch() of a SQLite store is read by one reader (src/sqlite/watch.ts, ChangeHub): a write
 * costs one read of the change log however many watches are open. With a reader per watch, each
 * write woke every watch and each read the log: 10,000 watches on keys nobody wrote made one
 * `revkit serve` manage 0.7 writes/s (bench/growth-watchers.mjs, issue 26).
 */
import { setMaxListeners } from 'node:events';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { SqliteStore } from '../src/sqlite/index.js';
import type { WatchEvent } from '../src/core/index.js';
import { tempDir, uniqueName } from './helpers.js';

const dir = tempDir('sqlite-hub');
const stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
});

/** A store whose change-log reads are counted (no safety poll: only writes wake the watches). */
function countedStore(): { store: SqliteStore; reads: () => number } {
  const store = new SqliteStore(join(dir, `${uniqueName('db')}.db`), { pollIntervalMs: 600_000 });
  stores.push(store);
  const stmt = (store as unknown as { stmt: Record<string, { all: (...a: unknown[]) => unknown[] }> }).stmt;
  let reads = 0;
  for (const name of ['changesAfter', 'changesAfterKey']) {
    const statement = stmt[name] as { all: (...a: unknown[]) => unknown[] };
    const all = statement.all.bind(statement);
    statement.all = (...a: unknown[]) => {
      reads++;
      return all(...a);
    };
  }
  return { store, reads: () => reads };
}

/** Collects a watch's events into `into` until the signal aborts. */
function collect(store: SqliteStore, options: Parameters<SqliteStore['watch']>[0], into: WatchEvent[]): Promise<void> {
  return (async () => {
    for await (const ev of store.watch(options)) into.push(ev);
  })();
}

const until = async (what: string, done: () => boolean) => {
  for (let i = 0; !done(); i++) {
    if (i > 3000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

it('a write costs a few change-log reads whether 1 or 1,000 watches are open', async () => {
  const perWrite = async (idle: number) => {
    const { store, reads } = countedStore();
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    const hot: WatchEvent[] = [];
    const watching = [collect(store, { key: 'hot', signal: controller.signal }, hot)];
    for (let i = 0; i < idle; i++) watching.push(collect(store, { key: `idle/${i}`, signal: controller.signal }, []));
    await store.put('hot', -1);
    await until('the first event', () => hot.length === 1);
    const before = reads();
    const writes = 20;
    for (let i = 0; i < writes; i++) {
      await store.put('hot', i);
      await until(`event ${i}`, () => hot.length === i + 2);
    }
    const cost = (reads() - before) / writes;
    controller.abort();
    await Promise.all(watching);
    return cost;
  };
  const one = await perWrite(0);
  const many = await perWrite(1000);
  // A reader per watch read the log once or twice per watch per write (≥ 1,000 here).
  expect(one).toBeLessThanOrEqual(4);
  expect(many).toBeLessThanOrEqual(4);
}, 120_000);

it('watches at different positions share the reader and each gets exactly its own changes, a 1,500-key commit whole', async () => {
  const { store } = countedStore();
  const controller = new AbortController();
  const signal = controller.signal;
  const first = await store.put('a/0', 'first');
  for (let i = 1; i <= 20; i++) await store.put(`${i % 2 ? 'a' : 'b'}/${i % 3}`, i);
  const middle = await store.put('a/1', 'middle');
  const fromStart: WatchEvent[] = [];
  const oneKeyFromMiddle: WatchEvent[] = [];
  const fromNow: WatchEvent[] = [];
  const watching = [
    collect(store, { prefix: 'a/', fromRevision: first.revision - 1, signal }, fromStart),
    collect(store, { key: 'a/1', fromRevision: middle.revision, signal }, oneKeyFromMiddle),
    collect(store, { prefix: '', signal }, fromNow),
  ];
  const batch = store.atomic();
  for (let i = 0; i < 1500; i++) batch.set(`a/big/${String(i).padStart(4, '0')}`, i);
  batch.set('a/1', 'in the big commit');
  const big = await batch.commit();
  const last = await store.put('b/9', 'last');
  await until('every watch to reach the last write', () => fromNow.some((e) => e.revision === last.revision) && fromStart.length >= 1500);
  await new Promise((r) => setTimeout(r, 200));
  controller.abort();
  await Promise.all(watching);

  const history = async (key: string) => (await store.history(key, { limit: 1000 })).map((r) => r.revision);
  const revs = (events: WatchEvent[]) => events.map((e) => `${e.key}@${e.revision}`);
  const aKeys = ['a/0', 'a/1', 'a/2'];
  const expectedFromStart = [];
  for (const key of aKeys) for (const r of await history(key)) expectedFromStart.push({ key, r });
  for (let i = 0; i < 1500; i++) expectedFromStart.push({ key: `a/big/${String(i).padStart(4, '0')}`, r: big.revision });
  expectedFromStart.sort((x, y) => x.r - y.r || Buffer.compare(Buffer.from(x.key), Buffer.from(y.key)));
  expect(revs(fromStart)).toEqual(expectedFromStart.map((x) => `${x.key}@${x.r}`));
  expect(revs(oneKeyFromMiddle)).toEqual([`a/1@${big.revision}`]);
  // From now: the big commit whole (1,501 writes of one revision), then the last write.
  expect(fromNow.length).toBe(1502);
  expect(new Set(fromNow.slice(0, 1501).map((e) => e.revision))).toEqual(new Set([big.revision]));
  expect(revs(fromNow.slice(1501))).toEqual([`b/9@${last.revision}`]);
}, 60_000);
