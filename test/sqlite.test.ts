import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/sqlite/index.js';
import { HistoryGoneError, RevkitError } from '../src/core/index.js';
import { open } from '../src/open.js';
import { describeConformance } from '../src/testing/vitest.js';
import { tempDir, uniqueName } from './helpers.js';

const dir = tempDir('sqlite');
const freshPath = () => join(dir, `${uniqueName('db')}.db`);

describeConformance({
  name: 'sqlite (file, synchronous=FULL)',
  create: async () => new SqliteStore(freshPath(), { sweepIntervalMs: 50 }),
  url: async () => `sqlite:${freshPath()}`,
});

describeConformance({
  name: 'sqlite (synchronous=NORMAL)',
  create: async () => SqliteStore.fromUrl(`sqlite:${freshPath()}?synchronous=normal`, { sweepIntervalMs: 50 }),
});

describe('sqlite specifics', () => {
  it('open() by URL: capabilities report the durability that was asked for', async () => {
    const full = await open(`sqlite:${freshPath()}`);
    const normal = await open(`sqlite:${freshPath()}?synchronous=normal`);
    expect(full.capabilities).toMatchObject({ durability: 'fsync', crossProcess: true, atomic: true });
    expect(normal.capabilities.durability).toBe('os-buffered');
    await full.close();
    await normal.close();
    expect(await open('sqlite:').catch((e) => e.code)).toBe('ERR_INVALID_ARGUMENT');
    expect(await open(`sqlite:${freshPath()}?synchronous=sometimes`).catch((e) => e.code)).toBe('ERR_INVALID_ARGUMENT');
  });

  it('a second store on the same file sees the first one\'s writes, in watch too', async () => {
    const path = freshPath();
    const a = new SqliteStore(path);
    const b = new SqliteStore(path, { pollIntervalMs: 10 });
    const start = await a.put('shared/x', 0);
    const seen: number[] = [];
    const controller = new AbortController();
    const watching = (async () => {
      for await (const ev of b.watch({ prefix: 'shared/', fromRevision: start.revision, signal: controller.signal })) {
        seen.push(ev.revision);
        if (seen.length === 3) break;
      }
    })();
    const revs = [(await a.put('shared/x', 1)).revision, (await a.put('shared/y', 2)).revision, (await a.delete('shared/x')) as number];
    await watching;
    expect(seen).toEqual(revs);
    expect((await b.get('shared/y'))?.value).toBe(2);
    await a.close();
    await b.close();
  });

  it('a watch wakes on another store\'s commit to the file, long before its safety poll', async () => {
    const path = freshPath();
    const a = new SqliteStore(path);
    const b = new SqliteStore(path, { pollIntervalMs: 120_000, sweepIntervalMs: 120_000 });
    const start = await a.put('f/x', 0);
    const seen: number[] = [];
    const controller = new AbortController();
    const watching = (async () => {
      for await (const ev of b.watch({ prefix: 'f/', fromRevision: start.revision, signal: controller.signal })) seen.push(ev.revision);
    })();
    try {
      await new Promise((r) => setTimeout(r, 100)); // b's watcher has made its first read and sleeps
      const revs = [(await a.put('f/x', 1)).revision, (await a.put('f/y', 2)).revision];
      const end = Date.now() + 20_000;
      while (seen.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(seen).toEqual(revs);
    } finally {
      controller.abort();
      await watching;
      await a.close();
      await b.close();
    }
  });

  it('watch from a revision older than the kept history throws HistoryGoneError', async () => {
    const s = new SqliteStore(freshPath(), { historyRetention: 500 });
    const first = await s.put('k', 0);
    for (let i = 1; i <= 1000; i++) await s.put('k', i);
    const err = await s.watch({ key: 'k', fromRevision: first.revision })[Symbol.asyncIterator]().next().catch((e) => e);
    expect(HistoryGoneError.is(err)).toBe(true);
    expect(err.oldestRevision).toBe(501);
    // Recent history still works.
    const it = s.watch({ key: 'k', fromRevision: 999 })[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ revision: 1000 });
    await it.return?.();
    // Pruning never lets a revision be drawn again, also after the whole log was dropped.
    const tiny = new SqliteStore(freshPath(), { historyRetention: 1 });
    let last = 0;
    for (let i = 0; i < 1005; i++) {
      const e = i % 2 === 0 ? (await tiny.put('x', i)).revision : ((await tiny.delete('x')) as number);
      expect(e).toBe(last + 1);
      last = e;
    }
    await tiny.close();
    await s.close();
  });

  it('migrations: several processes opening a new file at once all succeed', async () => {
    const path = freshPath();
    const script = `import('${new URL('../dist/sqlite/index.js', import.meta.url).href}').then(async ({ SqliteStore }) => {
      const s = new SqliteStore(${JSON.stringify(path)});
      await s.update('opened', (n) => (n ?? 0) + 1);
      await s.close();
    }).catch((e) => { console.error(e); process.exit(1); });`;
    const codes = await Promise.all(Array.from({ length: 6 }, () => new Promise<number | null>((resolve) => {
      spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' }).on('close', resolve);
    })));
    expect(codes).toEqual([0, 0, 0, 0, 0, 0]);
    const s = new SqliteStore(path);
    expect((await s.get('opened'))?.value).toBe(6);
    await s.close();
  });

  it('a writer blocked by another process\'s lock does not freeze the event loop', async () => {
    const path = freshPath();
    const s = new SqliteStore(path, { lockTimeoutMs: 60_000 });
    await s.put('x', 0);
    // Another process holds the write lock for 600 ms.
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(${JSON.stringify(path)});
      db.exec('BEGIN IMMEDIATE');
      console.log('locked');
      setTimeout(() => { db.exec('COMMIT'); db.close(); }, 600);
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    const written = await s.put('x', 1);
    clearInterval(ticker);
    expect(written.value).toBe(1);
    // The write waited for the lock; the timer kept firing meanwhile.
    expect(ticks).toBeGreaterThan(10);
    await s.close();
  });

  it('an unreadable database path is a typed BackendError', async () => {
    const err = await open('sqlite:/dev/null/not-a-dir/x.db').catch((e) => e);
    expect(RevkitError.is(err)).toBe(true);
    expect(err.code).toBe('ERR_BACKEND');
  });
});
