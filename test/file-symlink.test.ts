// A file: store opened through a symlink (current.json → state.json, a linked
// folder) is the same store as through the real path: every alias takes the
// same lock (the real file's <path>.lock) and a commit replaces the file the
// link points to, never the link. The old store locked <alias>.lock and
// renamed its new version over the link, turning it into a file of its own:
// two stores that had shared one file went on apart, and acknowledged
// increments were lost.
import { spawn } from 'node:child_process';
import { lstatSync, mkdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../src/file/index.js';
import { open } from '../src/open.js';
import { tempDir } from './helpers.js';

const dir = tempDir('file-symlink');
let n = 0;
const fresh = () => {
  const d = join(dir, `case${n++}`);
  mkdirSync(d);
  return d;
};

const increments = async (store: FileStore, times: number) => {
  for (let i = 0; i < times; i++) await store.update<number>('n', (v) => (v ?? 0) + 1);
};

describe('file: a store opened through a symlink', () => {
  it('a symlink to the file and the real path: concurrent increments through both lose nothing, and the link stays a link', async () => {
    const d = fresh();
    const real = join(d, 'state.json');
    const first = new FileStore(real);
    await first.put('n', 0);
    await first.close();
    symlinkSync('state.json', join(d, 'current.json'));
    const viaReal = new FileStore(real, { fsync: false });
    const viaLink = new FileStore(join(d, 'current.json'), { fsync: false });
    try {
      await Promise.all([increments(viaReal, 40), increments(viaLink, 40)]);
      expect((await viaReal.get('n'))?.value).toBe(80);
      expect((await viaLink.get('n'))?.value).toBe(80);
      expect(lstatSync(join(d, 'current.json')).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(d, 'current.json'))).toBe('state.json');
    } finally {
      await viaReal.close();
      await viaLink.close();
    }
  });

  it('a link to a file not yet there (a new store): the first commit creates the target and the link stays a link', async () => {
    const d = fresh();
    mkdirSync(join(d, 'data'));
    symlinkSync(join('data', 'state.json'), join(d, 'current.json'));
    const viaLink = await open(`file:${join(d, 'current.json')}?fsync=false`);
    const viaReal = new FileStore(join(d, 'data', 'state.json'), { fsync: false });
    try {
      await Promise.all([increments(viaLink as FileStore, 20), increments(viaReal, 20)]);
      expect((await viaReal.get('n'))?.value).toBe(40);
      expect((await viaLink.get('n'))?.value).toBe(40);
      expect(lstatSync(join(d, 'current.json')).isSymbolicLink()).toBe(true);
      expect(lstatSync(join(d, 'data', 'state.json')).isFile()).toBe(true);
    } finally {
      await viaLink.close();
      await viaReal.close();
    }
  });

  it('a linked folder: the store through the link and through the real folder is one store, at one path (the real one)', async () => {
    const d = fresh();
    mkdirSync(join(d, 'real'));
    symlinkSync('real', join(d, 'alias'));
    const a = new FileStore(join(d, 'alias', 'state.json'), { fsync: false });
    const b = new FileStore(join(d, 'real', 'state.json'), { fsync: false });
    try {
      expect(a.path).toBe(b.path);
      await Promise.all([increments(a, 20), increments(b, 20)]);
      expect((await a.get('n'))?.value).toBe(40);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('another process incrementing through the link while this one does through the real path: nothing lost (dist/: build first)', async () => {
    const d = fresh();
    const real = join(d, 'state.json');
    const s = new FileStore(real, { fsync: false });
    await s.put('n', 0);
    symlinkSync('state.json', join(d, 'current.json'));
    const child = new Promise<number | null>((resolve) => {
      spawn(process.execPath, ['--input-type=module', '-e', `
        const { FileStore } = await import(${JSON.stringify(new URL('../dist/file/index.js', import.meta.url).href)});
        const s = new FileStore(${JSON.stringify(join(d, 'current.json'))}, { fsync: false });
        for (let i = 0; i < 50; i++) await s.update('n', (v) => (v ?? 0) + 1);
        await s.close();
      `], { stdio: 'inherit' }).on('close', resolve);
    });
    try {
      await increments(s, 50);
      expect(await child).toBe(0);
      expect((await s.get('n'))?.value).toBe(100);
      expect(lstatSync(join(d, 'current.json')).isSymbolicLink()).toBe(true);
    } finally {
      await s.close();
    }
  });
});
