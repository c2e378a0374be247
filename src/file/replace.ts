/**
 * Atomic, durable replacement of a file: a unique temp file in the same
 * folder, fdatasync, rename over, fsync the folder. Readers see the old file or
 * the new one, never a torn one; a failure before the rename leaves the old
 * file and no temp file behind.
 *
 * Temp files are named `.<file name>.<pid>.<12 hex digits>.revkit-tmp`. The
 * pid and the random part hold no dot, so a name splits one way only: the temp
 * files of `state.json.bak` never pass for those of `state.json`.
 */
import { open, rename, unlink, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BackendError } from '../core/index.js';

export interface FileStamp {
  ino: number;
  size: number;
  mtimeMs: number;
}

const tempSuffix = '.revkit-tmp';
const TEMP_NAME = /^\.([^]+)\.(\d+)\.([0-9a-f]{12})\.revkit-tmp$/;

export function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}${tempSuffix}`);
}

/** The name of the store file a temp file belongs to, or null when `name` is not a revkit temp file's. */
export function tempOwner(name: string): string | null {
  return TEMP_NAME.exec(name)?.[1] ?? null;
}

export interface ReplaceHooks {
  /** The temp file is complete; `stamp` is what the file at `path` will look like once renamed. */
  written(stamp: FileStamp): void;
  /** The new file is in place (before the folder's fsync). */
  replaced(): void;
}

/**
 * Writes `data` to `path` atomically; `sync: false` skips both fsyncs (for
 * comparisons only).
 */
export async function replaceFile(path: string, data: Buffer, sync: boolean, hooks: ReplaceHooks, temp = tempName(path)): Promise<void> {
  try {
    const handle = await open(temp, 'wx', 0o644);
    let stamp: FileStamp;
    try {
      await handle.writeFile(data);
      // fdatasync covers the data and the size; the name is made durable by the folder's fsync below.
      if (sync) await handle.datasync();
      const st = await handle.stat();
      stamp = { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
      hooks.written(stamp);
    } finally {
      await handle.close();
    }
  } catch (cause) {
    await unlink(temp).catch(() => undefined);
    throw new BackendError(`cannot write ${path}: ${describe(cause)}; the previous file is intact`, { transient: false, cause });
  }
  try {
    await rename(temp, path);
  } catch (cause) {
    await unlink(temp).catch(() => undefined);
    throw new BackendError(`cannot replace ${path}: ${describe(cause)}; the previous file is intact`, { transient: false, cause });
  }
  hooks.replaced();
  if (sync) {
    try {
      const dir = await open(dirname(path), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (cause) {
      // The new file is in place but may not survive a power loss: the caller must not count it as durable.
      throw new BackendError(`${path} was replaced but its folder could not be synced: ${describe(cause)}; the write may be lost on power failure`, { transient: false, ambiguous: true, cause });
    }
  }
}

/**
 * Removes the temp files of the store at `path` — exactly its name, never a
 * sibling's — other than `own` (the temp file of the commit under way).
 * Call only while holding the store's lock: only the holder writes temp files,
 * so while it holds the lock every other one was left by a writer that died.
 * Housekeeping: never fails; resolves to how many it removed and how many
 * names the folder holds (what listing it costs).
 */
export async function removeStaleTemps(path: string, own?: string): Promise<{ removed: number; entries: number }> {
  const dir = dirname(path);
  const name = basename(path);
  const keep = own === undefined ? undefined : basename(own);
  const names = await readdir(dir).catch(() => [] as string[]);
  const stale = names.filter((n) => n !== keep && tempOwner(n) === name);
  const removed = await Promise.all(stale.map((n) => unlink(join(dir, n)).then(() => 1, () => 0)));
  return { removed: removed.reduce<number>((a, b) => a + b, 0), entries: names.length };
}

function describe(err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === 'ENOSPC') return 'the disk is full (ENOSPC)';
  if (code === 'EDQUOT') return 'the disk quota is exhausted (EDQUOT)';
  return (err as Error).message ?? String(err);
}
