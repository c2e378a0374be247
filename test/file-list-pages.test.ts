import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import fc from 'fast-check';
import { compareKeys } from '../src/core/index.js';
import { FileStore } from '../src/file/index.js';
import { tempDir, uniqueName } from './helpers.js';

const dir = tempDir('file-list');

/**
 * list() starts a page at its place in the sorted keys (by halving) instead of walking from the
 * first key: every page of every prefix and cursor must still be the byte-ordered run of keys.
 * Keys mix ASCII, BMP characters above the surrogates and astral ones, whose UTF-16 order is
 * not their UTF-8 order.
 */
describe('file: list() pages start where the prefix and cursor say', () => {
  it('every prefix, cursor and limit gives the keys after the cursor with the prefix, in UTF-8 byte order', async () => {
    const alphabet = fc.constantFrom('a', 'b', '/', 'é', '\uffee', '😀', 'z');
    const key = fc.array(alphabet, { minLength: 1, maxLength: 4 }).map((cs) => cs.join(''));
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(key, { minLength: 0, maxLength: 40 }), fc.array(alphabet, { maxLength: 2 }), fc.option(key), fc.integer({ min: 1, max: 7 }), async (keys, prefixChars, after, limit) => {
        const prefix = prefixChars.join('');
        const store = new FileStore(join(dir, `${uniqueName('l')}.json`));
        try {
          if (keys.length > 0) {
            const batch = store.atomic();
            for (const k of keys) batch.set(k, k);
            await batch.commit();
          }
          const expected = keys.filter((k) => k.startsWith(prefix) && (after === null || compareKeys(k, after) > 0)).sort(compareKeys);
          const seen: string[] = [];
          let cursor = after ?? undefined;
          for (;;) {
            const page = await store.list({ prefix, limit, ...(cursor !== undefined ? { after: cursor } : {}) });
            seen.push(...page.entries.map((e) => e.key));
            if (page.cursor === undefined) break;
            cursor = page.cursor;
          }
          expect(seen).toEqual(expected);
        } finally {
          await store.close();
        }
      }),
      { numRuns: 150 },
    );
  });
});
