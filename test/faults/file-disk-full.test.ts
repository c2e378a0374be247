import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackendError } from '../../src/core/index.js';
import { FileStore } from '../../src/file/index.js';

const isRoot = process.getuid?.() === 0;

describe('file: disk full', () => {
  it.skipIf(!isRoot)('a write that does not fit fails with a BackendError; the previous file is intact and no temp file is left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'revkit-file-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir]);
    try {
      const path = join(dir, 'state.json');
      const s = new FileStore(path);
      for (let i = 0; i < 10; i++) await s.put(`k/${i}`, 'x'.repeat(10_000));
      const before = readFileSync(path);
      // The ~100 KB file plus a ~220 KB temp file exceed the 256 KB file system.
      const err = await s.put('big', 'y'.repeat(120_000)).catch((e) => e);
      expect(BackendError.is(err)).toBe(true);
      expect(err).toMatchObject({ transient: false, ambiguous: false });
      expect(err.message).toMatch(/disk is full \(ENOSPC\).*previous file is intact/);
      expect(readFileSync(path)).toEqual(before);
      expect(readdirSync(dir).filter((n) => n.endsWith('.revkit-tmp'))).toEqual([]);
      expect(await s.getRecord('big')).toBeNull();
      // A write that fits still works, and the failed one left no trace in the revisions either.
      const small = await s.put('small', 1);
      expect(small.revision).toBe(11);
      await s.close();
      const reopened = new FileStore(path);
      expect((await reopened.list()).entries.map((e) => e.key)).toEqual(['k/0', 'k/1', 'k/2', 'k/3', 'k/4', 'k/5', 'k/6', 'k/7', 'k/8', 'k/9', 'small']);
      await reopened.close();
    } finally {
      // Lazy: a failed assertion above may leave the store open; the mount must go anyway.
      execFileSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
