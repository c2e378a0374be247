// R01 / R03 / R04 (src/redis/watch.ts readPage, src/redis/index.ts toEvent): caught-up watches share one page
// read, keyed by the position they read after. Every watch must still get every change after its own position
// exactly once (DESIGN §3 watch guarantees: unique, reliable, atomic), and values of its own.
import { expect, it } from 'vitest';
import { type Codec } from '../src/core/index.js';
import { dropStoresAfterAll, freshStore } from './redis-helpers.js';

dropStoresAfterAll();

async function collect(it: AsyncIterator<any>, n: number, ms = 3000): Promise<string[]> {
  const out: string[] = [];
  const until = Date.now() + ms;
  while (out.length < n && Date.now() < until) {
    const r = await Promise.race([it.next(), new Promise<any>((res) => setTimeout(() => res({ timeout: true }), until - Date.now()))]);
    if (r.timeout || r.done) break;
    out.push(`${r.value.key}@${r.value.revision}`);
  }
  return out;
}

it('R01: two watches started together at different positions each get exactly the changes after their own', async () => {
  const store = await freshStore();
  for (let i = 0; i < 5; i++) await store.put(`k${i}`, i);
  const head = (await store.put('k5', 5)).revision;
  const ac = new AbortController();
  const fromStart = store.watch({ prefix: '', fromRevision: 0, signal: ac.signal })[Symbol.asyncIterator]();
  const fromHead = store.watch({ prefix: '', fromRevision: head, signal: ac.signal })[Symbol.asyncIterator]();
  const [a, b] = [fromStart.next(), fromHead.next()];
  const after = (await store.put('later', 1)).revision;
  const firstA = await a; const firstB = await b;
  console.log(`R01: watch from 0 first got ${firstA.value.key}@${firstA.value.revision}; watch from ${head} first got ${firstB.value.key}@${firstB.value.revision} (expected later@${after})`);
  expect(firstB.value.revision).toBe(after);
  expect(firstA.value.revision).toBeLessThanOrEqual(head);
  ac.abort();
  await store.close();
});

it('R04: two watches whose full pages end inside the same atomic commit at different entries each get the commit once and whole', async () => {
  const store = await freshStore();
  // revisions 1..1000: one entry each; revision 1001: an atomic commit of 10 entries (ids 1001-0 … 1001-9)
  for (let i = 0; i < 1000; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => store.put(`s/${i + j}`, i + j)));
  const batch = store.atomic();
  for (let j = 0; j < 10; j++) batch.set(`t/${j}`, j);
  const { revision: R } = await batch.commit();
  const before = R - 1; // 1000 single-entry revisions before R, so revision r is entry r
  const ac = new AbortController();
  // A: 995 entries then 5 of R on its first page (ends at R-4); B: 990 then all 10 of R (ends at R-9).
  const a = store.watch({ prefix: '', fromRevision: before - 995, signal: ac.signal })[Symbol.asyncIterator]();
  const b = store.watch({ prefix: '', fromRevision: before - 990, signal: ac.signal })[Symbol.asyncIterator]();
  const [ea, eb] = await Promise.all([collect(a, 1005 + 5), collect(b, 1000 + 5)]);
  const ofR = (e: string[]) => e.filter((x) => x.endsWith(`@${R}`)).length;
  const dup = (e: string[]) => e.length - new Set(e).size;
  console.log(`R04: watch A got ${ea.length} events, ${ofR(ea)} of commit ${R}, ${dup(ea)} repeated; watch B got ${eb.length}, ${ofR(eb)} of commit ${R}, ${dup(eb)} repeated`);
  expect([ofR(ea), dup(ea), ofR(eb), dup(eb)]).toEqual([10, 0, 10, 0]);
  ac.abort();
  await store.close();
}, 60_000);

/** A custom codec that hands back the very bytes it is given (a zero-copy decoder). */
const viewCodec: Codec = { name: 'view', encode: (v) => new Uint8Array(v as Uint8Array), decode: (b) => b };
it('R03: watches sharing a page read get values of their own with a zero-copy custom codec', async () => {
  const store = await freshStore({ codec: viewCodec });
  const base = (await store.put('k', Buffer.from('seed'))).revision;
  const ac = new AbortController();
  const [a, b] = [0, 1].map(() => store.watch({ key: 'k', fromRevision: base, signal: ac.signal })[Symbol.asyncIterator]());
  const [na, nb] = [a!.next(), b!.next()];
  await new Promise((r) => setTimeout(r, 200));
  await store.put('k', Buffer.from('hello'));
  const [ea, eb] = [(await na).value, (await nb).value];
  ea.entry.value[0] = 0x4a; // consumer A edits its own event
  const seenByB = Buffer.from(eb.entry.value).toString();
  console.log(`R03: after watcher A changed its event, watcher B's event reads "${seenByB}"`);
  expect(seenByB).toBe('hello');
  ac.abort();
  await store.close();
});
