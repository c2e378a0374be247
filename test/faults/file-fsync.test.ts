import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../src/file/index.js';
import { tempDir } from '../helpers.js';

// libfiu (Debian: fiu-utils, libfiu0) makes chosen POSIX calls fail inside a child process.
const hasFiu = (() => {
  try {
    execFileSync('fiu-run', ['-x', 'true']);
    return true;
  } catch {
    return false;
  }
})();

const dir = tempDir('file-fsync');
const storeModule = new URL('../../dist/file/index.js', import.meta.url).href;

/** One put() in a child process where `failing` (a libfiu point) always fails; returns what the caller was told. */
async function putUnder(failing: string, path: string, call: 'put' | 'update') {
  const script = `
    const { FileStore } = await import(${JSON.stringify(storeModule)});
    const s = new FileStore(${JSON.stringify(path)});
    try {
      const e = ${call === 'put' ? "await s.put('k', 2)" : "await s.update('k', (n) => n + 1)"};
      console.log(JSON.stringify({ ok: true, value: e.value }));
    } catch (err) {
      console.log(JSON.stringify({ ok: false, code: err.code, transient: err.transient, ambiguous: err.ambiguous, message: err.message }));
    }
    await s.close();
  `;
  const { stdout } = await promisify(execFile)('fiu-run', ['-x', '-c', `enable name=${failing}`, process.execPath, '--input-type=module', '-e', script]);
  return JSON.parse(stdout.trim().split('\n').pop() as string);
}

async function seeded(name: string) {
  const path = join(dir, name);
  const s = new FileStore(path);
  await s.put('k', 1);
  await s.close();
  return { path, before: readFileSync(path, 'utf8') };
}

const temps = () => readdirSync(dir).filter((n) => n.endsWith('.revkit-tmp'));

describe('file: fsync failures (libfiu)', () => {
  it.skipIf(!hasFiu)('the temp file\'s fdatasync fails: a BackendError, the previous file intact, no temp file left', async () => {
    for (const call of ['put', 'update'] as const) {
      const { path, before } = await seeded(`datasync-${call}.json`);
      const told = await putUnder('posix/io/sync/fdatasync', path, call);
      expect(told).toMatchObject({ ok: false, code: 'ERR_BACKEND', transient: false, ambiguous: false });
      expect(told.message).toMatch(/previous file is intact/);
      expect(readFileSync(path, 'utf8')).toBe(before);
      expect(temps()).toEqual([]);
    }
  });

  it.skipIf(!hasFiu)('the folder\'s fsync fails after the rename: an ambiguous BackendError, never a success', async () => {
    const { path } = await seeded('dirsync.json');
    const told = await putUnder('posix/io/sync/fsync', path, 'put');
    expect(told).toMatchObject({ ok: false, code: 'ERR_BACKEND', transient: false, ambiguous: true });
    expect(told.message).toMatch(/may be lost on power failure/);
    // The new file is in place (the rename happened), whole and parseable; only its durability is unknown.
    const s = new FileStore(path);
    expect((await s.get('k'))?.value).toBe(2);
    await s.close();
    expect(temps()).toEqual([]);
  });
});
