// Group commit on PostgreSQL (issue 15, point 2): writes that arrive together go out in one
// statement and one transaction, each with its own condition and outcome.
import { describe, expect, it } from 'vitest';
import { BackendError, ConflictError, TooLargeError, rawCodec, type Store, type WatchEvent } from '../src/core/index.js';
import { canary } from '../src/testing/canary.js';
import { postgresStoresThisFileMakes } from './support/postgres-stores.js';

const { admin, freshPrefix, store } = postgresStoresThisFileMakes('rk_gc_', 2);

/** The transaction (xmin) that wrote each change row of these keys: one xid per transaction. */
async function writingTransactions(prefix: string, keys: string[]): Promise<Map<string, string>> {
  const r = await admin.query(`SELECT key, xmin::text AS x FROM "${prefix}changes" WHERE key = ANY($1)`, [keys]);
  return new Map(r.rows.map((row) => [row.key as string, row.x as string]));
}

async function settle<T>(p: Promise<T>): Promise<{ ok: T } | { err: unknown }> {
  return p.then((ok) => ({ ok }), (err: unknown) => ({ err }));
}

describe('postgres group commit', () => {
  it('a batch mixing successes, conflicts and a too-large value: one transaction, each write its own outcome, failures leave no trace', async () => {
    const prefix = freshPrefix();
    const s = await store(prefix, { maxValueBytes: 64 });
    const c1 = await s.put('c1', 1);
    const c2 = await s.put('c2', 2);
    const v = await s.put('v', { a: 1, b: [1, 2] });
    const d = await s.put('d', 'gone soon');
    const taken = await s.put('taken', 'first');
    // Issued in one turn: the first goes out at once, alone; the others queue behind it and go out together.
    const [, newKey, cas, stale, big, byValue, wrongValue, del, absentTaken, delMissing, ttl] = await Promise.all([
      settle(s.put('lead', 'goes first, alone')),
      settle(s.put('new', 'n', { ifAbsent: true, writer: 'w-new' })),
      settle(s.put('c1', 11, { ifRevision: c1.revision, writer: 'w-c1' })),
      settle(s.put('c2', 22, { ifRevision: c2.revision + 1000 })),
      settle(s.put('big', 'x'.repeat(100))),
      settle(s.put('v', 'replaced', { ifValue: { b: [1, 2], a: 1 } })),
      settle(s.put('taken', 'second', { ifValue: 'not what is stored' })),
      settle(s.delete('d', { ifRevision: d.revision, writer: 'w-d' })),
      settle(s.put('taken', 'third', { ifAbsent: true })),
      settle(s.delete('missing')),
      settle(s.put('t', 'short-lived', { ttlMs: 60_000 })),
    ]);
    const ok = <T>(r: { ok: T } | { err: unknown }): T => {
      if ('err' in r) throw r.err;
      return r.ok;
    };
    const conflictOf = (r: { ok: unknown } | { err: unknown }) => {
      expect('err' in r && ConflictError.is(r.err)).toBe(true);
      return (r as { err: ConflictError }).err;
    };
    expect(ok(newKey).value).toBe('n');
    expect(ok(cas).value).toBe(11);
    expect(ok(byValue).value).toBe('replaced');
    expect(ok(del)).toBeGreaterThan(d.revision);
    expect(ok(delMissing)).toBeNull();
    expect(ok(ttl).expiresAt).toBeGreaterThan(Date.now());
    expect(conflictOf(stale).checks).toEqual([{ key: 'c2', expected: c2.revision + 1000, actual: c2.revision }]);
    expect(conflictOf(wrongValue).checks).toEqual([{ key: 'taken', expected: 'value', actual: taken.revision }]);
    expect(conflictOf(absentTaken).checks).toEqual([{ key: 'taken', expected: 'absent', actual: taken.revision }]);
    expect('err' in big && TooLargeError.is(big.err)).toBe(true);

    // Every write that happened was committed by one transaction, each with its own revision.
    const written = ['new', 'c1', 'v', 'd', 't'];
    const txs = await writingTransactions(prefix, written);
    const batchTx = txs.get('new');
    for (const key of written) expect((await s.history(key))[0]?.revision).toBeGreaterThan(taken.revision);
    const revisions = [ok(newKey).revision, ok(cas).revision, ok(byValue).revision, ok(del), ok(ttl).revision];
    expect(new Set(revisions).size).toBe(5);
    const x = await admin.query(`SELECT key, xmin::text AS x FROM "${prefix}changes" WHERE revision = ANY($1)`, [revisions]);
    expect(x.rows.length).toBe(5);
    for (const row of x.rows) expect(row.x).toBe(batchTx);
    // The failures left nothing: stored values and history as before.
    expect((await s.get('c2'))?.revision).toBe(c2.revision);
    expect((await s.history('c2')).length).toBe(1);
    expect((await s.history('taken')).length).toBe(1);
    expect(await s.get('big')).toBeNull();
    // Writer tokens are recorded per row, in the record and in history (ambiguous-write lookback needs them).
    expect((await s.getRecord('c1'))?.writer).toBe('w-c1');
    expect((await s.history('new'))[0]?.writer).toBe('w-new');
    expect((await s.history('d'))[0]).toMatchObject({ deleted: true, writer: 'w-d', revision: ok(del) });
  });

  it('a row whose condition cannot be evaluated fails alone; the rest of its batch commits', async () => {
    const prefix = freshPrefix();
    const bytes = await store(prefix, { codec: rawCodec });
    await bytes.put('bin', new Uint8Array([0xff, 0xfe, 0x00]));
    const s = await store(prefix);
    // ifValue under the JSON codec compares as jsonb: the stored bytes are not UTF-8, so that row's
    // statement fails with a data exception; the batch is re-sent write by write.
    const [, bad, a, b] = await Promise.all([
      settle(s.put('lead', 0)),
      settle(s.put('bin', 'x', { ifValue: { a: 1 } })),
      settle(s.put('a', 1, { ifAbsent: true })),
      settle(s.put('b', 2)),
    ]);
    expect('err' in bad && BackendError.is(bad.err) && !bad.err.transient).toBe(true);
    expect('ok' in a && a.ok.value).toBe(1);
    expect('ok' in b && b.ok.value).toBe(2);
    expect([...((await bytes.get<Uint8Array>('bin'))?.value ?? [])]).toEqual([0xff, 0xfe, 0x00]);
    // The failed batch wrote nothing; its writes were then sent one by one, each its own transaction.
    const txs = await writingTransactions(prefix, ['a', 'b']);
    expect(txs.size).toBe(2);
    expect(txs.get('a')).not.toBe(txs.get('b'));
  });

  /**
   * `writers` loops of read → put(ifRevision / ifAbsent) increments, on one shared key or a key
   * each; returns what was acknowledged and what is stored. A store that checks then writes
   * blindly loses increments on the shared key.
   */
  async function increments(s: Store, keyOf: (w: number) => string, writers: number, each: number) {
    const acked = new Map<string, number>();
    await Promise.all(Array.from({ length: writers }, async (_, w) => {
      const key = keyOf(w);
      for (let i = 0; i < each; i++) {
        for (;;) {
          const r = await s.getRecord<number>(key);
          const live = r !== null && !('deleted' in r);
          try {
            await s.put(key, (live ? r.value : 0) + 1, r === null ? { ifAbsent: true } : { ifRevision: r.revision });
            acked.set(key, (acked.get(key) ?? 0) + 1);
            break;
          } catch (err) {
            if (!ConflictError.is(err)) throw err;
          }
        }
      }
    }));
    let lost = 0;
    let duplicated = 0;
    for (const [key, n] of acked) {
      const stored = (await s.get<number>(key))?.value ?? 0;
      lost += Math.max(0, n - stored);
      duplicated += Math.max(0, stored - n);
    }
    return { lost, duplicated, acked: [...acked.values()].reduce((x, y) => x + y, 0) };
  }

  it('32 writers on distinct keys and 16 on one key lose nothing, and the distinct writes really shared commits', async () => {
    const prefix = freshPrefix();
    const s = await store(prefix);
    const [distinct, shared] = await Promise.all([
      increments(s, (w) => `d/${w}`, 32, 20),
      increments(s, () => 'hot', 16, 10),
    ]);
    expect(distinct).toEqual({ lost: 0, duplicated: 0, acked: 640 });
    expect(shared).toEqual({ lost: 0, duplicated: 0, acked: 160 });
    expect((await s.get('hot'))?.value).toBe(160);
    // Fewer transactions than writes: writes were grouped (each change row carries its transaction's xid).
    const r = await admin.query(`SELECT count(*)::int AS writes, count(DISTINCT xmin::text)::int AS txs FROM "${prefix}changes" WHERE key LIKE 'd/%'`);
    expect(r.rows[0].writes).toBe(640);
    expect(r.rows[0].txs).toBeLessThan(640);
    // Per key, revisions strictly increase in commit order (history newest first).
    const hist = await s.history('d/0');
    for (let i = 1; i < hist.length; i++) expect(hist[i - 1]!.revision).toBeGreaterThan(hist[i]!.revision);
  });

  it('the same check catches the canary store (check, then write blindly) losing updates on the shared key', async () => {
    const s = await store(freshPrefix());
    const broken = canary(s);
    const shared = await increments(broken, () => 'hot', 16, 10);
    expect(shared.lost).toBeGreaterThan(0);
  });

  it('two stores (two pools) writing overlapping keys in opposite orders: batches never deadlock, revisions per key strictly increase', async () => {
    const prefix = freshPrefix();
    const [a, b] = [await store(prefix, { historyDepth: 1000 }), await store(prefix, { historyDepth: 1000 })];
    const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
    await Promise.all([a, b].flatMap((s, side) => Array.from({ length: 12 }, async (_, w) => {
      for (let i = 0; i < 15; i++) {
        const key = keys[(side === 0 ? w + i : 11 - ((w + i) % 12)) % 12]!;
        if (i % 5 === 4) await s.delete(key);
        else await s.put(key, { side, w, i });
      }
    })));
    let total = 0;
    for (const key of keys) {
      const hist = await a.history(key, { limit: 1000 });
      total += hist.length;
      for (let i = 1; i < hist.length; i++) expect(hist[i - 1]!.revision).toBeGreaterThan(hist[i]!.revision);
    }
    // Every put happened; a delete of a key already deleted writes nothing.
    expect(total).toBeGreaterThanOrEqual(2 * 12 * 12);
  });

  it('watch delivers every batched change exactly once, in revision order', async () => {
    const prefix = freshPrefix();
    const s = await store(prefix, { watchPollMs: 50 });
    const start = await s.put('w/seed', 0);
    const seen: WatchEvent[] = [];
    const ac = new AbortController();
    const done = (async () => {
      for await (const e of s.watch({ prefix: 'w/', fromRevision: start.revision, signal: ac.signal })) {
        seen.push(e);
        if (seen.length === 24 * 10) ac.abort();
      }
    })().catch(() => undefined);
    await Promise.all(Array.from({ length: 24 }, async (_, w) => {
      for (let i = 0; i < 10; i++) await s.put(`w/${w}`, i);
    }));
    const deadline = Date.now() + 20_000;
    while (seen.length < 240 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    await done;
    expect(seen.length).toBe(240);
    const revs = seen.map((e) => e.revision);
    expect(new Set(revs).size).toBe(240);
    for (let i = 1; i < revs.length; i++) expect(revs[i]).toBeGreaterThan(revs[i - 1]!);
    for (let w = 0; w < 24; w++) {
      const mine = seen.filter((e) => e.key === `w/${w}`).map((e) => (e.type === 'put' ? e.entry.value : undefined));
      expect(mine).toEqual(Array.from({ length: 10 }, (_, i) => i));
    }
  });

  it('groupCommit: false sends every write in its own transaction', async () => {
    const prefix = freshPrefix();
    const s = await store(prefix, { groupCommit: false });
    await Promise.all(Array.from({ length: 8 }, (_, w) => s.put(`k${w}`, w)));
    const txs = await writingTransactions(prefix, Array.from({ length: 8 }, (_, w) => `k${w}`));
    expect(new Set(txs.values()).size).toBe(8);
  });
});
