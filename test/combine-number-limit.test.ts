// Found by the mutation review (round 13), src/core/codec.ts fitsAsIs(): "a number ... encoded within the limit whatever it
// holds" when maxValueBytes >= 24. But JSON.stringify of a finite number can be 25 characters
// (-0.0000012345678901234567 prints as "-0.0000012345678901234567"). With maxValueBytes 24 a combined caller whose
// such value a neighbour replaces is told success; alone it gets TooLargeError (docs/semantics.md "update()").
import { expect, it } from 'vitest';
import { MemoryStore } from '../src/memory/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const settle = (p: Promise<{ value?: unknown; revision?: number } | null>) => p.then((v) => ({ ok: v?.value, revision: v?.revision }), (e: { code?: string }) => ({ err: e.code }));
const n = -0.0000012345678901234567;

for (const [name, make] of [
  ['memory', () => new MemoryStore({ maxValueBytes: 24 })],
  ['sqlite', () => new SqliteStore(join(mkdtempSync(join(tmpdir(), 'r1-')), 'db.sqlite'), { maxValueBytes: 24 })],
] as const) {
  it(`${name}: a 25-byte number is refused combined as alone`, async () => {
    const s = make();
    await s.put('k', 0);
    const alone = await settle(s.update('k', () => n));
    const [a, b] = await Promise.all([settle(s.update('k', () => n)), settle(s.update('k', () => 1))]);

    expect(a).toEqual(alone);
    await s.close();
  });
}
