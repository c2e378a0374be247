import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { HistoryGoneError, type Store, type WatchEvent } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { RedisStore } from '../src/redis/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { tempDir, uniqueName } from './helpers.js';
import { REDIS_URL, dropStoresAfterAll, freshPrefix, freshStore } from './redis-helpers.js';

dropStoresAfterAll();

/**
 * DESIGN §3, watch guarantees: *atomic* — the writes of one commit arrive
 * together, never split by a page or a trimmed change log; *reliable* — a gap
 * is HistoryGoneError. A watch that starts just before an atomic commit whose
 * changes are being trimmed gets all of its writes or HistoryGoneError before
 * any of them, never a part.
 */

const dir = tempDir('trim-atomic');
const freshPath = () => join(dir, `${uniqueName('db')}.db`);

/** The events a watch from `from` delivers up to revision `until`, or 'gone' with the events that came before the error. */
async function watchUntil(store: Store, prefix: string, from: number, until: number): Promise<{ events: WatchEvent[]; gone: boolean }> {
  const events: WatchEvent[] = [];
  try {
    for await (const ev of store.watch({ prefix, fromRevision: from })) {
      events.push(ev);
      if (ev.revision >= until) break;
    }
    return { events, gone: false };
  } catch (err) {
    if (!HistoryGoneError.is(err)) throw err;
    return { events, gone: true };
  }
}

const keysAt = (events: WatchEvent[], revision: number) => events.filter((e) => e.revision === revision).map((e) => e.key).sort();

/**
 * A store with a small change log: some writes, an atomic commit of `size`
 * keys, then single writes that push it out of the log. After each of them, a
 * watch from just before the commit sees all its writes or HistoryGoneError.
 * `lead` moves the commit across the positions of the trim point; watches
 * start from the `watchFrom`th write on (SQLite prunes every 1000 writes).
 */
async function straddle(make: () => Promise<Store>, leads: number[], writesAfter: number, size = 5, watchFrom = 0): Promise<void> {
  const all = Array.from({ length: size }, (_, i) => `t/k${String(i).padStart(2, '0')}`);
  for (const lead of leads) {
    const s = await make();
    try {
      for (let i = 0; i < lead; i++) await s.put(`t/lead${i % 3}`, i);
      const batch = s.atomic();
      for (const key of all) batch.set(key, lead);
      const { revision } = await batch.commit();
      let gone = false;
      for (let i = 0; i < writesAfter; i++) {
        const last = (await s.put(`t/after${i % 3}`, i)).revision;
        if (i < watchFrom) continue;
        const seen = await watchUntil(s, 't/', revision - 1, last);
        if (seen.gone) {
          gone = true;
          expect(keysAt(seen.events, revision), `lead ${lead}, after ${i + 1} writes: part of the commit, then HistoryGoneError`).toEqual([]);
        } else {
          expect(keysAt(seen.events, revision), `lead ${lead}, after ${i + 1} writes`).toEqual(all);
        }
      }
      // The commit did leave the log: the test reached the trim point.
      expect(gone, `lead ${lead}: the commit was never trimmed`).toBe(true);
    } finally {
      await s.close();
    }
  }
}

describe('memory: trimming the change log keeps or drops an atomic commit whole', () => {
  it('a watch from just before a commit straddling the trim point gets all its writes or HistoryGoneError, never a part', async () => {
    await straddle(async () => new MemoryStore({ changeLogSize: 8, sweepIntervalMs: 60_000 }), Array.from({ length: 12 }, (_, i) => i), 20);
  });

  it('a commit larger than the whole change log is kept whole, then dropped whole', async () => {
    await straddle(async () => new MemoryStore({ changeLogSize: 4, sweepIntervalMs: 60_000 }), [0, 1, 2, 3, 4, 5], 12, 10);
  });
});

describe('sqlite: pruning the change log never delivers part of a commit', () => {
  it('pruning by revision drops whole commits: a watch from just before one straddling the prune gets it whole or HistoryGoneError', async () => {
    // Pruning runs after every 1000 committed writes and keeps `historyRetention` revisions.
    await straddle(async () => new SqliteStore(freshPath(), { historyRetention: 2, pollIntervalMs: 60_000, sweepIntervalMs: 60_000 }), [0, 3], 1010, 5, 990);
  }, 120_000);

  it('a prune by another process between two pages of one commit (1500 writes, pages of 1000) is HistoryGoneError, with none of its writes delivered', async () => {
    const path = freshPath();
    const s = new SqliteStore(path, { pollIntervalMs: 60_000, sweepIntervalMs: 60_000 });
    const other = new Database(path); // another process's connection to the file
    try {
      const before = await s.put('t/before', 0);
      const batch = s.atomic();
      for (let i = 0; i < 1500; i++) batch.set(`t/k${String(i).padStart(4, '0')}`, i);
      const { revision } = await batch.commit();
      const last = (await s.put('t/after', 1)).revision;
      // Just after the watch read its first page (1000 of the commit's 1500 changes), the other process prunes every
      // revision up to the commit's, as SqliteStore's housekeeping does (pruned_below, then the rows).
      const stmt = (s as unknown as { stmt: { prunedBelow: { get: () => unknown } } }).stmt;
      const original = stmt.prunedBelow;
      let reads = 0;
      stmt.prunedBelow = {
        get: () => {
          if (++reads === 2) {
            other.transaction(() => {
              other.prepare("UPDATE meta SET value = max(value, ?) WHERE name = 'pruned_below'").run(revision);
              other.prepare('DELETE FROM changes WHERE revision <= ?').run(revision);
            }).immediate();
          }
          return original.get();
        },
      };
      const seen = await watchUntil(s, 't/', before.revision, last);
      expect(reads).toBeGreaterThanOrEqual(2);
      expect(keysAt(seen.events, revision).length, 'writes of the commit delivered').toBe(0);
      expect(seen.gone).toBe(true);
    } finally {
      other.close();
      await s.close();
    }
  });
});

describe('redis: trimming the change-log stream never delivers part of a commit', () => {
  it('XTRIM MINID drops whole revisions: a watch from just before a commit straddling the trim gets it whole or HistoryGoneError', async () => {
    // The stream is trimmed at every 64th revision, down to the last `changeLogRevisions` revisions.
    await straddle(() => freshStore({ changeLogRevisions: 3, sweepIntervalMs: 0 }), [0, 30, 60, 62], 70);
  }, 120_000);

  it('a trim by another client between two pages of one commit (1500 writes, pages of 1000) is HistoryGoneError, with none of its writes delivered', async () => {
    const prefix = freshPrefix('trim');
    const s = await RedisStore.fromUrl(REDIS_URL, { prefix, sweepIntervalMs: 0 });
    const writer = await RedisStore.fromUrl(REDIS_URL, { prefix, sweepIntervalMs: 0, changeLogRevisions: 1 });
    try {
      const before = await s.put('t/before', 0);
      const batch = s.atomic();
      for (let i = 0; i < 1500; i++) batch.set(`t/k${String(i).padStart(4, '0')}`, i);
      const { revision } = await batch.commit();
      // Just before the watch reads its second page, another client writes until its trim drops the commit's revision.
      type Run = (script: { name: string }, ...rest: unknown[]) => Promise<unknown>;
      const target = s as unknown as { run: Run };
      const run = target.run.bind(s);
      let pages = 0;
      target.run = async (script, ...rest) => {
        if (script.name === 'changes' && ++pages === 2) {
          for (let i = 0; i < 200 && (await s.headRevision()) < revision + 66; i++) await writer.put('u/x', i);
        }
        return run(script, ...rest);
      };
      const seen = await watchUntil(s, 't/', before.revision, Number.MAX_SAFE_INTEGER);
      expect(pages).toBe(2);
      expect(keysAt(seen.events, revision).length, 'writes of the commit delivered').toBe(0);
      expect(seen.gone).toBe(true);
    } finally {
      await writer.close();
      await s.close();
    }
  });
});
