// C02: a combined caller that SKIPs after a neighbour changed the value must be answered with what it saw
// (the neighbour's value) at the revision of the commit — docs/semantics.md "update()", DESIGN §4 rule 8.
import { expect, it } from 'vitest';
import { SKIP } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const stores = {
  memory: () => new MemoryStore(),
  sqlite: () => new SqliteStore(join(mkdtempSync(join(tmpdir(), 'c02-')), 'db.sqlite')),
};

for (const [name, make] of Object.entries(stores)) {
  it(`${name}: SKIP after a neighbour's write in the same combined attempt is answered with what it saw`, async () => {
    const s = make();
    const first = await s.put('k', 1);
    let seen: unknown;
    const [a, b] = await Promise.all([
      s.update<number>('k', (v) => (v ?? 0) + 1),
      s.update<number>('k', (v) => { seen = v; return SKIP; }),
    ]);
    console.log(name, 'A (wrote):', JSON.stringify(a), '\n', name, 'B (SKIP, saw', seen, '):', JSON.stringify(b), ' first put revision', first.revision);
    expect(seen).toBe(2);                    // B ran on A's value: they were combined
    expect(b?.value).toBe(2);                // what B saw
    expect(b?.revision).toBe(a?.revision);   // the commit that made it durable
    await s.close();
  });
}
