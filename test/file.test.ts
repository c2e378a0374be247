import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../src/file/index.js';
import { BackendError, ConflictError, HistoryGoneError, InvalidArgumentError, TooLargeError, UnsupportedError, rawCodec, type WatchEvent } from '../src/core/index.js';
import { open } from '../src/open.js';
import { describeConformance } from '../src/testing/vitest.js';
import { tempDir, uniqueName } from './helpers.js';
import { pausedWriter } from './support/paused-file-writer.js';

const dir = tempDir('file');
const freshPath = () => join(dir, `${uniqueName('state')}.json`);

describeConformance({
  name: 'file (fsync, group commit)',
  create: async () => new FileStore(freshPath(), { sweepIntervalMs: 50 }),
  url: async () => `file:${freshPath()}`,
  timeoutMs: 60_000,
});

/** Another process holding the store's write lock until told to let go. */
async function holdLock(path: string): Promise<{ release: () => Promise<void> }> {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['--input-type=module', '-e', `
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(${JSON.stringify(`${path}.lock`)});
    db.exec('BEGIN IMMEDIATE');
    console.log('locked');
    process.stdin.once('data', () => { db.exec('COMMIT'); db.close(); process.exit(0); });
  `]);
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`lock holder exited with ${code}`)));
  });
  return {
    release: () => new Promise<void>((resolve) => {
      child.removeAllListeners('exit');
      child.once('exit', () => resolve());
      child.stdin.write('go\n');
    }),
  };
}

const tempFiles = (path: string) => readdirSync(dir).filter((n) => n.startsWith(`.${path.split('/').pop()}.`));

describe('file specifics', () => {
  it('the file is versioned, human-readable JSON with one record per line', async () => {
    const path = freshPath();
    const s = new FileStore(path);
    await s.put('cfg/a', { n: 1 });
    await s.put('cfg/b', 'two', { writer: 'w_1' });
    await s.delete('cfg/b');
    const text = readFileSync(path, 'utf8');
    const doc = JSON.parse(text);
    expect(doc).toMatchObject({ revkit: 'file', version: 1, revision: 3, prunedBelow: 0 });
    expect(doc.records['cfg/a']).toMatchObject({ revision: 1, createdRevision: 1, value: { n: 1 } });
    expect(doc.records['cfg/b']).toEqual({ revision: 3, deleted: true, updatedAt: expect.any(Number) });
    // A tombstone keeps the time of the delete, like the other backends.
    expect((await s.getRecord('cfg/b'))?.updatedAt).toBe(doc.records['cfg/b'].updatedAt);
    expect(doc.changes.map((c: { key: string; revision: number }) => [c.key, c.revision])).toEqual([['cfg/a', 1], ['cfg/b', 2], ['cfg/b', 3]]);
    expect(doc.changes[1].writer).toBe('w_1');
    expect(text.split('\n').filter((l) => l.startsWith('"cfg/'))).toHaveLength(2);
    expect(s.capabilities).toMatchObject({ durability: 'fsync', crossProcess: true, atomic: true, watch: true });
    await s.close();
  });

  it('an empty or missing file starts an empty store; a foreign, damaged or newer file is refused and never overwritten', async () => {
    const empty = freshPath();
    writeFileSync(empty, '');
    const s = new FileStore(empty);
    expect(await s.get('x')).toBeNull();
    expect((await s.put('x', 1)).revision).toBe(1);
    await s.close();
    const cases: Array<[string, (e: unknown) => boolean]> = [
      ['{"settings": {"theme": "dark"}}', (e) => InvalidArgumentError.is(e)],
      ['{"revkit":"file","version":1,"revision":3,"records":{"a":{"revision":', (e) => BackendError.is(e) && !e.transient],
      ['{"revkit":"file","version":2,"revision":3,"records":{},"changes":[]}', (e) => UnsupportedError.is(e)],
      ['{"revkit":"file","version":1,"revision":1,"records":{"a":{"revision":5,"deleted":true}},"changes":[]}', (e) => BackendError.is(e) && !e.transient],
    ];
    for (const [text, isExpected] of cases) {
      const path = freshPath();
      writeFileSync(path, text);
      const err = await open(`file:${path}`).catch((e) => e);
      expect(isExpected(err), `${text} → ${String(err)}`).toBe(true);
      expect(err.message).toContain(path);
      expect(readFileSync(path, 'utf8')).toBe(text);
    }
    // A store already open when the file goes bad refuses to write over it.
    const path = freshPath();
    const open1 = new FileStore(path);
    await open1.put('k', 1);
    writeFileSync(path, 'garbage');
    const err = await open1.put('k', 2).catch((e) => e);
    expect(BackendError.is(err) && !err.transient).toBe(true);
    expect(readFileSync(path, 'utf8')).toBe('garbage');
    await open1.close();
  });

  it('writes queued while another process holds the lock commit in one rewrite, each with its own result or ConflictError', async () => {
    for (const groupCommit of [true, false]) {
      const path = freshPath();
      const s = new FileStore(path, { groupCommit });
      const seed = await s.put('seed', 0);
      const before = s.rewrites;
      const holder = await holdLock(path);
      const writes = [
        ...Array.from({ length: 16 }, (_, i) => s.put(`k/${i}`, i)),
        s.put('seed', 'stale', { ifRevision: seed.revision + 100 }),
        s.put('k/0', 'again', { ifAbsent: true }),
        s.put('seed', 'fresh', { ifRevision: seed.revision }),
        s.delete('never-written'),
      ];
      const settled = Promise.allSettled(writes);
      await new Promise((r) => setTimeout(r, 100));
      expect(s.rewrites).toBe(before);
      await holder.release();
      const results = await settled;
      expect(results.map((r) => r.status)).toEqual([...Array(16).fill('fulfilled'), 'rejected', 'rejected', 'fulfilled', 'fulfilled']);
      expect(ConflictError.is((results[16] as PromiseRejectedResult).reason)).toBe(true);
      expect((results[17] as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_CONFLICT', key: 'k/0', expected: 'absent' });
      expect((results[19] as PromiseFulfilledResult<unknown>).value).toBeNull();
      const revisions = results.slice(0, 16).map((r) => (r as PromiseFulfilledResult<{ revision: number }>).value.revision);
      expect(new Set(revisions).size).toBe(16);
      expect((await s.get('seed'))?.value).toBe('fresh');
      // Grouped: the 17 writes that changed something went into one rewrite; ungrouped: one each.
      expect(s.rewrites - before).toBe(groupCommit ? 1 : 17);
      const reopened = new FileStore(path);
      expect((await reopened.list({ prefix: 'k/' })).entries.map((e) => e.value)).toEqual([0, 1, 10, 11, 12, 13, 14, 15, 2, 3, 4, 5, 6, 7, 8, 9]);
      await reopened.close();
      await s.close();
    }
  });

  it('a writer waiting past lockTimeoutMs gets a transient BackendError and writes nothing', async () => {
    const path = freshPath();
    const s = new FileStore(path, { lockTimeoutMs: 300 });
    await s.put('k', 1);
    const holder = await holdLock(path);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    const err = await s.put('k', 2).catch((e) => e);
    clearInterval(ticker);
    await holder.release();
    expect(BackendError.is(err)).toBe(true);
    expect(err).toMatchObject({ transient: true, ambiguous: false });
    expect(err.message).toMatch(/lock .* was not free within 300 ms/);
    // The wait happened in async sleeps: the event loop kept running.
    expect(ticks).toBeGreaterThan(5);
    expect((await s.get('k'))?.value).toBe(1);
    expect(tempFiles(path)).toEqual([]);
    await s.close();
  });

  it('another process\'s writes are seen by get, list and watch', async () => {
    const path = freshPath();
    // Polling every 10 minutes: only the folder watch can wake the watcher within the test's timeout.
    const s = new FileStore(path, { pollIntervalMs: 600_000 });
    const start = await s.put('shared/x', 0);
    const seen: WatchEvent[] = [];
    const controller = new AbortController();
    const watching = (async () => {
      for await (const ev of s.watch({ prefix: 'shared/', fromRevision: start.revision, signal: controller.signal })) {
        seen.push(ev);
        if (seen.length === 3) break;
      }
    })();
    const code = await new Promise<number | null>((resolve) => {
      spawn(process.execPath, ['--input-type=module', '-e', `
        const { FileStore } = await import(${JSON.stringify(new URL('../dist/file/index.js', import.meta.url).href)});
        const s = new FileStore(${JSON.stringify(path)});
        await s.put('shared/x', 1);
        await s.put('shared/y', 2);
        await s.delete('shared/x');
        await s.close();
      `], { stdio: 'inherit' }).on('close', resolve);
    });
    expect(code).toBe(0);
    await watching;
    expect(seen.map((e) => [e.type, e.key, e.revision])).toEqual([['put', 'shared/x', 2], ['put', 'shared/y', 3], ['delete', 'shared/x', 4]]);
    expect((await s.get('shared/y'))?.value).toBe(2);
    expect((await s.list({ prefix: 'shared/' })).entries.map((e) => e.key)).toEqual(['shared/y']);
    await s.close();
  });

  it('the change log is bounded: watch from before it throws HistoryGoneError; purged tombstones never bring a revision back', async () => {
    const path = freshPath();
    // Log semantics, not durability: skip the fsyncs so 500 commits stay quick.
    const s = new FileStore(path, { changeLogSize: 100, fsync: false });
    const first = await s.put('k', 0);
    let last = first.revision;
    for (let i = 1; i <= 300; i++) {
      const rev = i % 2 === 0 ? (await s.put('k', i)).revision : ((await s.delete('k')) as number);
      expect(rev).toBe(last + 1);
      last = rev;
      if (i % 3 === 0) await s.delete(`gone/${i}`).then(() => s.put(`gone/${i}`, i)).then(() => s.delete(`gone/${i}`)).then((r) => (last = r as number));
    }
    const err = await s.watch({ key: 'k', fromRevision: first.revision })[Symbol.asyncIterator]().next().catch((e) => e);
    expect(HistoryGoneError.is(err)).toBe(true);
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    expect(doc.changes.length).toBeLessThanOrEqual(100 + Math.ceil(100 / 8));
    expect(err.oldestRevision).toBe(doc.prunedBelow + 1);
    // Old tombstones left the file with their changes; the counter kept going.
    expect(Object.keys(doc.records).length).toBeLessThan(50);
    expect((await s.put('gone/3', 'back')).revision).toBe(last + 1);
    expect((await s.history('k', { limit: 5 })).map((r) => r.revision)).toHaveLength(5);
    await s.close();
  });

  it('open() by URL with options; values of other codecs are stored as base64', async () => {
    const path = freshPath();
    const s = await open(`file:${path}?changeLog=50&groupCommit=false&fsync=false&lockTimeoutMs=2000`);
    expect(s.capabilities.durability).toBe('os-buffered');
    await s.close();
    for (const bad of ['file:', `file:${path}?changeLog=0`, `file:${path}?fsync=maybe`]) {
      expect(await open(bad).catch((e) => e.code), bad).toBe('ERR_INVALID_ARGUMENT');
    }
    const raw = new FileStore(freshPath(), { codec: rawCodec });
    await raw.put('bytes', new Uint8Array([0, 255, 7]));
    expect([...((await raw.get<Uint8Array>('bytes'))?.value ?? [])]).toEqual([0, 255, 7]);
    expect(JSON.parse(readFileSync(raw.path, 'utf8')).records.bytes.base64).toBe('AP8H');
    await raw.close();
  });

  it('a store removes only its own temp files: a sibling whose name starts with its own (state.json.bak) keeps its temp files', async () => {
    const sub = mkdtempSync(join(dir, 'temps-'));
    const hex = 'abcdef012345';
    const own = `.state.json.4242.${hex}.revkit-tmp`;
    const notOwn = [
      `.state.json.bak.4242.${hex}.revkit-tmp`, // state.json.bak's
      `.state.json.1.4242.${hex}.revkit-tmp`, // state.json.1's
      `.state.json.4242.${hex}.revkit-tmp.keep`, // not a temp file name
      `.state.json.4242.abc.revkit-tmp`, // random part malformed
      `.state.json.x.${hex}.revkit-tmp`, // pid malformed
      `.other.json.4242.${hex}.revkit-tmp`,
      'state.json.bak',
    ];
    for (const name of [own, ...notOwn]) writeFileSync(join(sub, name), 'x');
    const s = new FileStore(join(sub, 'state.json'));
    await s.put('k', 1);
    expect(notOwn.filter((name) => !existsSync(join(sub, name)))).toEqual([]);
    expect(existsSync(join(sub, own))).toBe(false);
    await s.close();
  });

  it('a live write of a sibling store (state.json.bak, in another process) survives a commit of state.json', async () => {
    const sub = mkdtempSync(join(dir, 'sibling-'));
    const sibling = await pausedWriter(join(sub, 'state.json.bak'), 'k', 'backup');
    // The sibling holds its own lock with its temp file written, not yet renamed into place.
    expect(existsSync(sibling.temp)).toBe(true);
    const s = new FileStore(join(sub, 'state.json'));
    await s.put('k', 'live');
    expect(existsSync(sibling.temp)).toBe(true);
    // Before the fix its rename found the temp file gone: a permanent BackendError, the write lost.
    expect(await sibling.resume()).toEqual({ ok: true });
    const backup = new FileStore(join(sub, 'state.json.bak'));
    expect((await backup.get('k'))?.value).toBe('backup');
    await backup.close();
    expect((await s.get('k'))?.value).toBe('live');
    await s.close();
  });

  it('a long-running store removes a temp file left by a writer that died at its next commit, not only at its first', async () => {
    const sub = mkdtempSync(join(dir, 'stale-'));
    const path = join(sub, 'state.json');
    const s = new FileStore(path);
    await s.put('k', 1);
    // What a writer killed between writing its temp file and renaming it leaves behind.
    const stale = join(sub, '.state.json.999999.0123456789ab.revkit-tmp');
    writeFileSync(stale, '{"revkit":"file","version":1,"revision":2,');
    await s.put('k', 2);
    expect(existsSync(stale)).toBe(false);
    expect(readdirSync(sub).filter((n) => n.endsWith('.revkit-tmp'))).toEqual([]);
    expect((await s.get('k'))?.value).toBe(2);
    await s.close();
  });

  it('in a folder of 1,000 names, where listing costs more, a long-running store still removes a dead writer\'s temp file within ⌈names / 200⌉ commits', async () => {
    const sub = mkdtempSync(join(dir, 'crowded-'));
    for (let i = 0; i < 1000; i++) writeFileSync(join(sub, `other-${i}.txt`), '');
    const path = join(sub, 'state.json');
    const s = new FileStore(path, { fsync: false });
    await s.put('k', 0);
    const stale = join(sub, '.state.json.999999.0123456789ab.revkit-tmp');
    writeFileSync(stale, '{"revkit":"file","version":1,"revision":2,');
    const within = Math.ceil(readdirSync(sub).length / 200);
    for (let i = 1; i <= within; i++) await s.put('k', i);
    expect(existsSync(stale)).toBe(false);
    await s.close();
  });

  /** A store with one small key, closed; and the length of its file. */
  async function seededFile(): Promise<{ path: string; size: number }> {
    const path = freshPath();
    const s = new FileStore(path);
    await s.put('a', 'x'.repeat(100));
    await s.close();
    return { path, size: statSync(path).size };
  }

  it('a write that would make the file longer than maxFileLength is refused with TooLargeError: nothing written, the store still usable', async () => {
    const { path, size } = await seededFile();
    const limit = size + 1000;
    const s = new FileStore(path, { maxFileLength: limit });
    expect(s.maxFileLength).toBe(limit);
    const before = readFileSync(path);
    const err = await s.put('big', 'y'.repeat(2000)).catch((e) => e);
    expect(TooLargeError.is(err)).toBe(true);
    expect(err).toMatchObject({ code: 'ERR_TOO_LARGE', limit });
    expect(err.size).toBeGreaterThan(limit);
    expect(err.message).toContain(path);
    expect(err.message).toMatch(/nothing was written/);
    expect(readFileSync(path)).toEqual(before);
    expect(readdirSync(dir).filter((n) => n.endsWith('.revkit-tmp'))).toEqual([]);
    expect(await s.getRecord('big')).toBeNull();
    // The refused write drew no revision; smaller writes still commit, up to exactly the limit.
    expect((await s.put('small', 1)).revision).toBe(2);
    const probe = await s.put('fill', 'z'.repeat(2000)).catch((e) => e);
    expect(TooLargeError.is(probe)).toBe(true);
    const fill = await s.put('fill', 'z'.repeat(2000 - (probe.size - limit)));
    expect(fill.revision).toBe(3);
    expect(statSync(path).size).toBe(limit);
    // Deleting a value does not shrink the file while the change log keeps it: refused too.
    expect(TooLargeError.is(await s.delete('a').catch((e) => e))).toBe(true);
    await s.close();
    const reopened = new FileStore(path);
    expect((await reopened.list()).entries.map((e) => [e.key, e.revision])).toEqual([['a', 1], ['fill', 3], ['small', 2]]);
    await reopened.close();
  });

  it('the length limit counts what the reader holds in one string: a multi-byte character once, one outside the BMP twice', async () => {
    const { path, size } = await seededFile();
    const limit = size + 1000;
    const s = new FileStore(path, { maxFileLength: limit });
    // 600 × 'é' is 1,200 bytes but 600 characters: the file's bytes pass the limit, its text does not.
    const accented = await s.put('é', 'é'.repeat(600));
    expect(statSync(path).size).toBeGreaterThan(limit);
    // 300 × U+1F600 is 1,200 bytes and 600 UTF-16 code units.
    const err = await s.put('emoji', '\u{1F600}'.repeat(300)).catch((e) => e);
    expect(TooLargeError.is(err)).toBe(true);
    // It counts as much as 600 ASCII characters would (not as its 1,200 bytes).
    const ascii = await s.put('emoji', 'x'.repeat(600)).catch((e) => e);
    expect(TooLargeError.is(ascii)).toBe(true);
    expect(err.size).toBe(ascii.size);
    await s.close();
    const reopened = new FileStore(path);
    expect((await reopened.get('é'))?.revision).toBe(accented.revision);
    await reopened.close();
  });

  it('writes queued together whose one rewrite would be too long commit one by one: only the write that does not fit is refused', async () => {
    const { path, size } = await seededFile();
    const s = new FileStore(path, { maxFileLength: size + 1000 });
    const holder = await holdLock(path);
    const writes = [
      s.put('b', 1),
      s.put('big', 'y'.repeat(2000)),
      s.put('c', 2),
      s.put('a', 'again', { ifAbsent: true }),
      s.delete('never-written'),
    ];
    const settled = Promise.allSettled(writes);
    await holder.release();
    const results = await settled;
    expect(results.map((r) => (r.status === 'fulfilled' ? 'ok' : r.reason.code))).toEqual(['ok', 'ERR_TOO_LARGE', 'ok', 'ERR_CONFLICT', 'ok']);
    expect(results.slice(0, 3).flatMap((r) => (r.status === 'fulfilled' ? [(r.value as { revision: number }).revision] : []))).toEqual([2, 3]);
    await s.close();
    const reopened = new FileStore(path);
    expect((await reopened.list()).entries.map((e) => e.key)).toEqual(['a', 'b', 'c']);
    await reopened.close();
  });

  it('maxFileLength is a positive integer no larger than what the reader can hold', () => {
    for (const bad of [0, -1, 1.5, 2 ** 29]) {
      expect(() => new FileStore(freshPath(), { maxFileLength: bad }), String(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
  });
});
