/**
 * Soak-size check of the `file:` length limit at its real default (the
 * engine's longest string, ~512 MiB): a store filled to just under it
 * refuses the write that would pass it, and a fresh process still opens it.
 * Writes ~1 GiB to a temp folder and holds ~4 GB in memory, so it runs only
 * when asked: REVKIT_FILE_FULL_SIZE=1 (needs `npm run build`: the reading
 * process loads dist/). test/file.test.ts checks the same behaviour with a
 * small maxFileLength, test/file-string-limit.test.ts the default against
 * the reader.
 */
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TooLargeError } from '../../src/core/index.js';
import { FileStore } from '../../src/file/index.js';
import { MAX_FILE_LENGTH } from '../../src/file/format.js';
import { tempDir } from '../helpers.js';

const fullSize = process.env.REVKIT_FILE_FULL_SIZE === '1';
const storeModule = new URL('../../dist/file/index.js', import.meta.url).href;

describe('file: a store at the real length limit', () => {
  const dir = fullSize ? tempDir('file-too-large') : '';

  it.skipIf(!fullSize)('filled to just under the limit: the write that would pass it is refused and nothing is written; a fresh process opens the store', async () => {
    const path = join(dir, 'state.json');
    const chunk = 64 * 2 ** 20;
    const s = new FileStore(path, { maxValueBytes: chunk + 16, changeLogSize: 16 });
    const stamp = () => {
      const st = statSync(path);
      return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
    };
    const fill = (sizes: number[]) => {
      const tx = s.atomic();
      sizes.forEach((n, i) => tx.set(`big/${i}`, 'x'.repeat(n)));
      return tx.commit();
    };
    // Nine 64 MiB values do not fit: refused whole, nothing written.
    const sizes = Array.from({ length: 9 }, () => chunk - 2);
    const over = await fill(sizes).catch((e) => e);
    expect(TooLargeError.is(over), String(over)).toBe(true);
    expect(over.limit).toBe(MAX_FILE_LENGTH);
    expect(await s.headRevision()).toBe(0);
    // The same write, 1,000 characters short of the limit, commits.
    let excess = over.size - (MAX_FILE_LENGTH - 1000);
    for (let i = sizes.length - 1; excess > 0; i--) {
      const cut = Math.min(excess, (sizes[i] as number) - 1);
      sizes[i] = (sizes[i] as number) - cut;
      excess -= cut;
    }
    const filled = await fill(sizes);
    const before = stamp();
    expect(before.size).toBe(MAX_FILE_LENGTH - 1000);

    const err = await s.put('one-more', 'y'.repeat(2000)).catch((e) => e);
    expect(TooLargeError.is(err), String(err)).toBe(true);
    expect(err.size).toBeGreaterThan(MAX_FILE_LENGTH);
    expect(stamp()).toEqual(before);
    const small = await s.put('small', 'z'.repeat(100));
    expect(small.revision).toBe(filled.revision + 1);
    const length = statSync(path).size;
    expect(length).toBeLessThanOrEqual(MAX_FILE_LENGTH);
    await s.close();

    // A new process, default options and heap: opens it and reads every value.
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', `
      const { FileStore } = await import(${JSON.stringify(storeModule)});
      const s = new FileStore(${JSON.stringify(path)});
      const page = await s.list({ prefix: 'big/' });
      console.log(JSON.stringify({ keys: page.entries.length, chars: page.entries.reduce((n, e) => n + e.value.length, 0), small: (await s.get('small')).revision }));
      await s.close();
    `], { maxBuffer: 1 << 20 });
    expect(JSON.parse(stdout)).toEqual({ keys: 9, chars: sizes.reduce((a, b) => a + b, 0), small: small.revision });
  }, 300_000);
});
