import assert from 'node:assert/strict';
import { ConflictError, DEFAULT_MAX_VALUE_BYTES, type Store, type WatchEvent } from '../core/index.js';

type StoreTest = (store: Store) => Promise<void>;
type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

const settle = (p: Promise<unknown>): Promise<Outcome> => p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
const codeOf = (o: Outcome) => (o.ok ? 'ok' : String((o.error as { code?: unknown }).code));

/**
 * Group commit as callers see it (issue #15), for any store: writes issued
 * together — which a batching backend commits together — each get their own
 * outcome, checked against the writes before them; a failed one leaves no
 * trace; revisions stay store-wide and unique, and watch sees every write in
 * revision order. Stores made with default options. The last check is a
 * lost-update check: the canary store must fail it.
 */
export const groupCommitChecks: Record<string, StoreTest> = {
  'writes issued together, mixing successes, conflicts and a too-large value: each caller its own outcome, failures leave no trace': async (s) => {
    const a = await s.put('gc/a', 1);
    const outcomes = await Promise.all([
      settle(s.put('gc/a', 2, { ifRevision: a.revision })),
      settle(s.put('gc/b', 'x'.repeat(DEFAULT_MAX_VALUE_BYTES + 1))),
      settle(s.put('gc/c', 1, { ifAbsent: true })),
      settle(s.put('gc/d', 1, { ifRevision: a.revision })), // never written: no revision to match
      settle(s.put('gc/e', 1, { ifValue: 'nothing like it' })),
      settle(s.put('gc/f', 1)),
    ]);
    assert.deepEqual(outcomes.map(codeOf), ['ok', 'ERR_TOO_LARGE', 'ok', 'ERR_CONFLICT', 'ERR_CONFLICT', 'ok']);
    // Whatever order the store committed them in, the losers' checks failed against real state.
    const late = await settle(s.put('gc/a', 3, { ifRevision: a.revision }));
    assert.equal(codeOf(late), 'ERR_CONFLICT');
    assert.equal((await s.get('gc/a'))?.value, 2);
    for (const key of ['gc/b', 'gc/d', 'gc/e']) assert.equal(await s.getRecord(key), null, `${key} left a trace`);
    if (s.capabilities.history) for (const key of ['gc/b', 'gc/d', 'gc/e']) assert.deepEqual(await s.history(key), [], `${key} left history`);
    if (s.capabilities.atomic) {
      const txns = await Promise.all([
        settle(s.atomic().check('gc/c', null).set('gc/g', 1).commit()), // 'gc/c' exists
        settle(s.atomic().check('gc/f', (outcomes[5] as { value: { revision: number } }).value.revision).set('gc/h', 1).delete('gc/f').commit()),
      ]);
      assert.deepEqual(txns.map(codeOf), ['ERR_CONFLICT', 'ok']);
      assert.equal(await s.getRecord('gc/g'), null);
      assert.equal((await s.get('gc/h'))?.value, 1);
      assert.equal(await s.get('gc/f'), null);
    }
  },
  '200 writes issued together: unique revisions, and watch delivers every one, in revision order': async (s) => {
    const from = (await s.put('gcw/start', 0)).revision;
    const writes = await Promise.all(Array.from({ length: 200 }, (_, i) => s.put(`gcw/${i % 23}`, i).then((e) => ({ key: e.key, revision: e.revision }))));
    const revisions = writes.map((w) => w.revision);
    assert.equal(new Set(revisions).size, revisions.length, 'a revision was handed out twice');
    assert.ok(revisions.every((r) => r > from));
    if (!s.capabilities.watch) return;
    const expected = [...writes].sort((x, y) => x.revision - y.revision);
    const seen: WatchEvent[] = [];
    const controller = new AbortController();
    for await (const ev of s.watch({ prefix: 'gcw/', fromRevision: from, signal: controller.signal })) {
      seen.push(ev);
      if (seen.length === expected.length) break;
    }
    assert.deepEqual(seen.map((e) => ({ key: e.key, revision: e.revision })), expected);
  },
  '64 puts issued together, all guarded by one revision: exactly one wins': async (s) => {
    const base = await s.put('gcr', 'start');
    const results = await Promise.all(Array.from({ length: 64 }, (_, i) => settle(s.put('gcr', `w${i}`, { ifRevision: base.revision }))));
    assert.equal(results.filter((r) => r.ok).length, 1, 'more than one write guarded by the same revision won');
    for (const r of results) if (!r.ok) assert.ok(ConflictError.is(r.error), String(r.error));
  },
};
