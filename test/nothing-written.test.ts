import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { PostgresStore, dropPostgresStore } from '../src/postgres/index.js';
import type { Store, WatchEvent } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { FileStore } from '../src/file/index.js';
import { tempDir, uniqueName } from './helpers.js';
import { dropStoresAfterAll, freshStore } from './redis-helpers.js';

dropStoresAfterAll();
const PG_URL = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test`;
const pgPrefixes: string[] = [];
afterAll(async () => {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 1 });
  for (const prefix of pgPrefixes) await dropPostgresStore(pool, { prefix }).catch(() => undefined);
  await pool.end();
}, 60_000);

/**
 * DESIGN §3: "A revision handed to a caller is never handed out again. A
 * commit that writes nothing (an atomic() of checks only, a SKIP) answers with
 * a revision that is already committed — the highest one its checks saw —,
 * never one that the next write will receive; so watch({ fromRevision: r })
 * started from any revision a caller was told delivers every later write."
 *
 * These backends have a store-wide revision counter: a commit that writes
 * nothing draws no revision (no bump), and answers with the highest revision
 * its keys were found at, or the head when none of them was ever written.
 */

const dir = tempDir('nothing-written');

const backends: Array<[string, () => Promise<Store>]> = [
  ['memory', async () => new MemoryStore({ sweepIntervalMs: 60_000 })],
  ['sqlite', async () => new SqliteStore(join(dir, `${uniqueName('db')}.db`), { pollIntervalMs: 60_000, sweepIntervalMs: 60_000 })],
  ['redis', () => freshStore({ sweepIntervalMs: 0 })],
  ['file', async () => FileStore.fromUrl(`file:${join(dir, `${uniqueName('f')}.json`)}`)],
  // A sequence, not a counter, but the same promise: nothing drawn, a committed revision answered.
  ['postgres', async () => {
    const prefix = `rk_nw_${uniqueName('p').toLowerCase()}_`;
    pgPrefixes.push(prefix);
    return PostgresStore.fromUrl(PG_URL, { prefix, sweepIntervalMs: 60_000 });
  }],
];

const head = (s: Store) => (s.headRevision as () => Promise<number>).call(s);

/** The revisions a watch from `from` delivers, up to and including `until`. */
async function revisionsFrom(s: Store, prefix: string, from: number, until: number): Promise<Array<[string, number]>> {
  const seen: Array<[string, number]> = [];
  for await (const ev of s.watch({ prefix, fromRevision: from }) as AsyncIterable<WatchEvent>) {
    seen.push([ev.key, ev.revision]);
    if (ev.revision >= until) break;
  }
  return seen;
}

for (const [name, make] of backends) {
  describe(`${name}: a commit that writes nothing`, () => {
    it('watch({ fromRevision }) from the answer of a check-only atomic() delivers the next write', async () => {
      const s = await make();
      try {
        const a = await s.put('w/a', 1);
        const { revision } = await s.atomic().check('w/a', a.revision).commit();
        const first = await s.put('w/b', 1);
        const second = await s.put('w/b', 2);
        expect(await revisionsFrom(s, 'w/', revision, second.revision)).toEqual([['w/b', first.revision], ['w/b', second.revision]]);
      } finally {
        await s.close();
      }
    });

    it('a check-only atomic() answers with the highest revision its checks saw, draws none, and a watch from it delivers the next write', async () => {
      const s = await make();
      try {
        const a = await s.put('n/a', 1);
        const b = await s.put('n/b', 1);
        await s.put('other', 1);
        const h = await head(s);
        const { revision } = await s.atomic().check('n/b', b.revision).check('n/a', a.revision).check('n/none', null).commit();
        expect(revision).toBe(b.revision);
        expect(await head(s)).toBe(h); // no revision bump
        const first = await s.put('n/c', 1);
        const second = await s.put('n/c', 2);
        expect(first.revision).toBeGreaterThan(revision);
        expect(await revisionsFrom(s, 'n/', revision, second.revision)).toEqual([['n/c', first.revision], ['n/c', second.revision]]);
      } finally {
        await s.close();
      }
    });

    it('checks of keys never written answer with the head, already committed; the next write gets a higher revision and is delivered', async () => {
      const s = await make();
      try {
        expect((await s.atomic().check('n/none', null).commit()).revision).toBe(0); // an empty store: nothing committed yet
        await s.put('x/1', 1);
        const h = (await s.put('x/2', 1)).revision;
        const { revision } = await s.atomic().check('n/none', null).check('n/nothing', null).commit();
        expect(revision).toBe(h);
        const next = await s.put('n/a', 1);
        const after = await s.put('n/a', 2);
        expect(next.revision).toBe(h + 1);
        expect(await revisionsFrom(s, 'n/', revision, after.revision)).toEqual([['n/a', next.revision], ['n/a', after.revision]]);
      } finally {
        await s.close();
      }
    });

    it('an atomic() that only deletes absent keys writes nothing: no revision drawn, its answer is committed, the next write is delivered', async () => {
      const s = await make();
      try {
        const gone = await s.put('n/gone', 1);
        const tomb = (await s.delete('n/gone')) as number;
        expect(tomb).toBeGreaterThan(gone.revision);
        await s.put('other', 1);
        const h = await head(s);
        const { revision } = await s.atomic().delete('n/gone').delete('n/never').commit();
        expect(revision).toBe(tomb); // the tombstone's revision: the highest its keys were found at
        expect(await head(s)).toBe(h);
        const first = await s.put('n/c', 1);
        const second = await s.put('n/c', 2);
        expect(first.revision).toBe(h + 1);
        expect(await revisionsFrom(s, 'n/', revision, second.revision)).toEqual([['n/c', first.revision], ['n/c', second.revision]]);
      } finally {
        await s.close();
      }
    });

    it('delete() of an absent key returns null and consumes no revision', async () => {
      const s = await make();
      try {
        await s.put('n/a', 1);
        await s.put('n/gone', 1);
        await s.delete('n/gone');
        const h = await head(s);
        expect(await s.delete('n/never')).toBeNull();
        expect(await s.delete('n/gone')).toBeNull();
        expect(await head(s)).toBe(h);
        const next = await s.put('n/a', 2);
        expect(next.revision).toBe(h + 1);
        expect(await revisionsFrom(s, 'n/', h, next.revision)).toEqual([['n/a', next.revision]]);
      } finally {
        await s.close();
      }
    });
  });
}

describe('sqlite: a commit that writes nothing, grouped with writes in one transaction', () => {
  it('check-only commits in the same group commit as writes answer with committed revisions the next write never gets', async () => {
    const s = new SqliteStore(join(dir, `${uniqueName('db')}.db`), { pollIntervalMs: 60_000, sweepIntervalMs: 60_000 });
    try {
      const a = await s.put('g/a', 0);
      // Issued in one turn: one transaction, in this order.
      const [put, sameKey, unrelated, last] = await Promise.all([
        s.put('g/a', 1),
        s.atomic().check('g/a', null).commit().catch((e) => e), // g/a is live: a conflict
        s.atomic().check('g/none', null).commit(),
        s.atomic().check('g/b', null).commit(),
      ]);
      expect(sameKey.code).toBe('ERR_CONFLICT');
      expect(put.revision).toBe(a.revision + 1);
      expect(unrelated.revision).toBe(put.revision); // the head inside the transaction, committed with it
      expect(last.revision).toBe(put.revision);
      expect(s.commitCount).toBeGreaterThan(0);
      const next = await s.put('g/c', 1);
      expect(next.revision).toBe(put.revision + 1);
      expect(await revisionsFrom(s, 'g/', last.revision, next.revision)).toEqual([['g/c', next.revision]]);
    } finally {
      await s.close();
    }
  });
});
