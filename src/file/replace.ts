/**
 * Atomic, durable replacement of a file: a unique temp file in the same
 * folder, fdatasync, rename over, fsync the folder. Readers see the old file or
 * the new one, never a torn one; a failure before the rename leaves the old
 * file and no temp file behind.
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

export function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}${tempSuffix}`);
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
export async function replaceFile(path: string, data: Buffer, sync: boolean, hooks: ReplaceHooks): Promise<void> {
  const temp = tempName(path);
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

/** Temp files left by a writer that died mid-commit; call only while holding the lock. */
export async function removeStaleTemps(path: string): Promise<void> {
  const prefix = `.${basename(path)}.`;
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.startsWith(prefix) && n.endsWith(tempSuffix)).map((n) => unlink(join(dirname(path), n)).catch(() => undefined)));
}

function describe(err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === 'ENOSPC') return 'the disk is full (ENOSPC)';
  if (code === 'EDQUOT') return 'the disk quota is exhausted (EDQUOT)';
  return (err as Error).message ?? String(err);
}
