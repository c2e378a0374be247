/**
 * The `file:` store's size limit checked against the real engine limit: a
 * store file is read into a Buffer and decoded into one string, so the
 * longest file it can open is `buffer.constants.MAX_STRING_LENGTH`
 * characters. Writes ~512 MiB to a temp folder and holds ~1.5 GB in memory
 * for a few seconds.
 */
import { constants } from 'node:buffer';
import { appendFileSync, closeSync, openSync, readSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TooLargeError } from '../src/core/index.js';
import { FileStore } from '../src/file/index.js';
import { MAX_FILE_LENGTH as DEFAULT_LIMIT } from '../src/file/format.js';
import { tempDir } from './helpers.js';

const dir = tempDir('file-string-limit');

describe('file: the longest file the reader can hold', () => {
  it('the default maxFileLength is the engine\'s longest string; a store file of exactly that many characters opens, one more is a TooLargeError and is never overwritten', async () => {
    const MAX_FILE_LENGTH = constants.MAX_STRING_LENGTH;
    const path = join(dir, 'state.json');
    // A valid store padded to exactly the limit with whitespace between two of its tokens (still valid JSON).
    const head = Buffer.from('{"revkit":"file","version":1,"revision":1,"prunedBelow":0,');
    const body = Buffer.from('\n"records":{\n"k":{"revision":1,"createdRevision":1,"updatedAt":1,"value":"v"}\n},\n"changes":[\n{"key":"k","revision":1,"current":true}\n]}\n');
    const fd = openSync(path, 'w');
    try {
      writeSync(fd, head);
      writeSync(fd, Buffer.alloc(MAX_FILE_LENGTH - head.length - body.length, 0x20));
      writeSync(fd, body);
    } finally {
      closeSync(fd);
    }
    expect(statSync(path).size).toBe(MAX_FILE_LENGTH);
    const s = new FileStore(path, { fsync: false });
    expect((await s.get('k'))?.value).toBe('v');

    // One character more: refused at open, and by a store that had it open, which then writes nothing.
    appendFileSync(path, ' ');
    const atOpen = (() => {
      try {
        return new FileStore(path);
      } catch (e) {
        return e;
      }
    })();
    expect(TooLargeError.is(atOpen), String(atOpen)).toBe(true);
    expect(atOpen).toMatchObject({ limit: MAX_FILE_LENGTH, size: MAX_FILE_LENGTH + 1 });
    expect((atOpen as Error).message).toContain(path);
    const atWrite = await s.put('k', 'w').catch((e) => e);
    expect(TooLargeError.is(atWrite), String(atWrite)).toBe(true);
    expect(statSync(path).size).toBe(MAX_FILE_LENGTH + 1);
    const first = Buffer.alloc(head.length);
    const rd = openSync(path, 'r');
    try {
      readSync(rd, first, 0, head.length, 0);
    } finally {
      closeSync(rd);
    }
    expect(first).toEqual(head);
    await s.close();
    // The limit writes are held to by default is this same one.
    expect(DEFAULT_LIMIT).toBe(MAX_FILE_LENGTH);
    expect(s.maxFileLength).toBe(MAX_FILE_LENGTH);
  }, 180_000);

  it('a file too long for its text to fit one string even at 3 bytes a character is refused without being read (a sparse file of 1.5 GiB)', async () => {
    const path = join(dir, 'huge.json');
    writeFileSync(path, '{"revkit":"file","version":1,"revision":1,"prunedBelow":0,');
    truncateSync(path, 3 * constants.MAX_STRING_LENGTH + 1);
    const err = (() => {
      try {
        return new FileStore(path);
      } catch (e) {
        return e;
      }
    })();
    expect(TooLargeError.is(err), String(err)).toBe(true);
    expect(err).toMatchObject({ limit: constants.MAX_STRING_LENGTH, size: constants.MAX_STRING_LENGTH + 1 });
    expect(statSync(path).size).toBe(3 * constants.MAX_STRING_LENGTH + 1);
  });
});
