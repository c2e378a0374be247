// C07b: a lone caller's mutation must get a private copy: changing its argument in place and answering SKIP
// writes nothing, and the caller is told the stored value (what a read returns), not its own edits.
import { expect, it } from 'vitest';
import { SKIP } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const stores = {
  memory: () => new MemoryStore(),
  sqlite: () => new SqliteStore(join(mkdtempSync(join(tmpdir(), 'c07-')), 'db.sqlite')),
};

for (const [name, make] of Object.entries(stores)) {
  it(`${name}: a lone SKIP after editing its argument in place is answered with the stored value`, async () => {
    const s = make();
    await s.put('cfg', { limit: 1 });
    const answer = await s.update<{ limit: number }>('cfg', (v) => {
      v!.limit = 99; // e.g. a "try it and see" check that then decides not to write
      return SKIP;
    });
    const stored = await s.get('cfg');
    console.log(name, 'answer:', JSON.stringify(answer?.value), 'stored:', JSON.stringify(stored?.value), 'same revision:', answer?.revision === stored?.revision);
    expect(answer?.value).toEqual(stored?.value);
    await s.close();
  });
}
