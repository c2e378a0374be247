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
import { RevkitError, rawCodec, type WatchEvent } from '../src/core/index.js';
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

/*
 * Hostile review of the shared reader: a row one watch cannot decode (another process wrote it
 * with another codec) failed every watch of the store, those of other keys included; with a reader
 * per watch only the watch that met the row failed.
 */
it('a row one watch cannot decode ends that watch alone: the others go on', async () => {
  const path = join(dir, `${uniqueName('db')}.db`);
  const store = new SqliteStore(path);
  const raw = new SqliteStore(path, { codec: rawCodec });
  stores.push(store, raw);
  await store.put('good/x', 0);
  const controller = new AbortController();
  const keyed: WatchEvent[] = [];
  const prefixed: WatchEvent[] = [];
  const bad: unknown[] = [];
  const watching = [
    collect(store, { key: 'good/x', signal: controller.signal }, keyed),
    collect(store, { prefix: 'good/', signal: controller.signal }, prefixed),
    collect(store, { key: 'bad', signal: controller.signal }, []).catch((err) => bad.push(err)),
  ];
  await raw.put('bad', new Uint8Array([0xff, 0xfe, 0x00]));
  for (let i = 1; i <= 3; i++) await store.put('good/x', i);
  await until('the good watches to get 3 changes and the bad one to fail', () => keyed.length === 3 && prefixed.length === 3 && bad.length === 1);
  controller.abort();
  await Promise.all(watching);
  expect(keyed.map((e) => (e.type === 'put' ? e.entry.value : null))).toEqual([1, 2, 3]);
  expect(prefixed.map((e) => (e.type === 'put' ? e.entry.value : null))).toEqual([1, 2, 3]);
  expect(RevkitError.is(bad[0])).toBe(true);
}, 60_000);

/*
 * Hostile review: the reader read from the lowest watch's position only, so a watch of a key that
 * was caught up waited while a watch from revision 0 read a long backlog page by page (1.4 s behind
 * 300,000 rows; growing with the backlog). Counted in reads, not time: between a write and its
 * delivery to the caught-up watch, at most one round of reads (two pages).
 */
it('a watch far behind does not hold up a caught-up watch: its change comes within one round', async () => {
  const { store, reads } = countedStore();
  for (let b = 0; b < 20; b++) {
    const batch = store.atomic();
    for (let i = 0; i < 1000; i++) batch.set(`bulk/${b}/${i}`, i);
    await batch.commit();
  }
  const controller = new AbortController();
  const caughtUp: WatchEvent[] = [];
  const behind: WatchEvent[] = [];
  // Reads counted when the event reaches its consumer (a microtask after the round that pushed it),
  // not when a timer notices: rounds keep running for the backlog meanwhile.
  let readsAtDelivery = 0;
  const watching = [
    (async () => {
      for await (const ev of store.watch({ key: 'x', signal: controller.signal })) {
        readsAtDelivery = reads();
        caughtUp.push(ev);
      }
    })(),
    collect(store, { prefix: 'bulk/', fromRevision: 0, signal: controller.signal }, behind),
  ];
  await until('the backlog to start', () => behind.length > 0);
  const before = reads();
  await store.put('x', 1);
  await until('the caught-up watch', () => caughtUp.length === 1);
  const readsToDeliver = readsAtDelivery - before;
  await until('the backlog', () => behind.length === 20_000);
  controller.abort();
  await Promise.all(watching);
  // One page from the far watch's position, one from the caught-up one's (and one round more at most,
  // if the write came while a round ran); the old reader needed a page per 1,000 rows of backlog first.
  expect(readsToDeliver).toBeLessThanOrEqual(4);
}, 120_000);
