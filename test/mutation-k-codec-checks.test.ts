// K02 / K03 / K05 / K06 (src/core/codec.ts): a combined update() caller whose value a later caller's replaces is
// checked "as a write would check it" (asWritten / fitsAsIs); a value is answered "as a read returns it" (readBack).
// docs/semantics.md "update()": "too large or not encodable, its caller gets that error"; DESIGN §4: each caller gets
// "exactly the answer it would have got alone".
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { type Codec } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { SqliteStore } from '../src/sqlite/index.js';

const settle = <T>(p: Promise<T>) => p.then((v: any) => ({ ok: v?.value }), (e: any) => ({ err: e.code }));
const sqlite = (o: object = {}) => new SqliteStore(join(mkdtempSync(join(tmpdir(), 'k-')), 'db.sqlite'), o);

/** Caller A's answer alone, and combined with a caller B that replaces A's value in the same write. */
async function aloneAndCombined(make: () => any, aValue: unknown) {
  const s1 = make();
  await s1.put('k', 'start');
  const alone = await settle(s1.update('k', () => aValue));
  await s1.close();
  const s2 = make();
  await s2.put('k', 'start');
  const [a, b] = await Promise.all([settle(s2.update('k', () => aValue)), settle(s2.update('k', () => 'b'))]);
  await s2.close();
  return { alone, combined: a, neighbour: b };
}

for (const [name, make] of [['memory', (o?: object) => new MemoryStore(o)], ['sqlite', sqlite]] as const) {
  it(`K02 ${name}: a multi-byte string over the byte limit (not over it in UTF-16 units) is refused combined as alone`, async () => {
    const r = await aloneAndCombined(() => make({ maxValueBytes: 100 }), 'é'.repeat(60)); // 122 bytes as JSON, 62 code units
    console.log(`K02 ${name}:`, JSON.stringify(r).slice(0, 200));
    expect(r.combined).toEqual(r.alone);
  });

  it(`K06 ${name}: NaN replaced by a neighbour is refused combined as alone`, async () => {
    const r = await aloneAndCombined(() => make(), Number.NaN);
    console.log(`K06 ${name}:`, JSON.stringify(r));
    expect(r.combined).toEqual(r.alone);
  });

  it(`K03 ${name}: -0 is answered as a read returns it (0), alone, by put() and combined`, async () => {
    const s = make();
    const put = await s.put('z', -0);
    const upd = await s.update('z2', () => -0);
    const [a] = await Promise.all([s.update('z3', () => -0), s.update('z3', (v: number) => v)]);
    const read = (await s.get('z'))?.value;
    console.log(`K03 ${name}: put answered ${Object.is(put.value, -0) ? '-0' : put.value}, update ${Object.is(upd?.value, -0) ? '-0' : upd?.value}, combined ${Object.is(a?.value, -0) ? '-0' : a?.value}, get ${Object.is(read, -0) ? '-0' : read}`);
    expect(Object.is(put.value, read)).toBe(true);
    expect(Object.is(upd?.value, read)).toBe(true);
    expect(Object.is(a?.value, read)).toBe(true);
    await s.close();
  });
}

/** A custom codec (JSON text with a tag) whose bytes are longer than JSON's. */
const tagged: Codec = {
  name: 'tagged',
  encode: (v) => new TextEncoder().encode(`T:${JSON.stringify(v)}`),
  decode: (b) => JSON.parse(new TextDecoder().decode(b).slice(2)),
};
it('K05: with a custom codec, a value over the limit that a neighbour replaces is refused combined as alone', async () => {
  for (const [name, make] of [['memory', () => new MemoryStore({ codec: tagged, maxValueBytes: 64 })], ['sqlite', () => sqlite({ codec: tagged, maxValueBytes: 64 })]] as const) {
    const r = await aloneAndCombined(make, { big: 'x'.repeat(100) });
    console.log(`K05 ${name}:`, JSON.stringify(r).slice(0, 200));
    expect(r.combined).toEqual(r.alone);
  }
});
