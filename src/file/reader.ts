import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { BackendError } from '../core/index.js';
import { assertReadableSize, emptyState, headerRevision, parse, readText, type FileState } from './format.js';
import type { FileStamp } from './replace.js';

const HEAD_BYTES = 96;

/**
 * The state on disk, cached. The file is only ever replaced, never changed in
 * place, so what one open descriptor reads is one committed version; it is
 * parsed again only when its inode, size, mtime or header revision differ
 * from the cached one's.
 */
export class StateReader {
  private cache: { state: FileState; stamp: FileStamp | null } | null = null;
  /** The commit being renamed into place, and what its file looks like. */
  private pending: (() => void) | null = null;
  private pendingStamp: FileStamp | null = null;

  constructor(private readonly path: string) {}

  read(): FileState {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw this.readError(err);
      if (this.cache?.stamp !== null) this.cache = { state: emptyState(), stamp: null };
      return this.cache.state;
    }
    try {
      const st = fstatSync(fd);
      if (this.pending !== null && sameStamp(this.pendingStamp, st)) this.pending();
      const cached = this.cache;
      if (cached && sameStamp(cached.stamp, st)) {
        const head = Buffer.alloc(HEAD_BYTES);
        const n = readSync(fd, head, 0, HEAD_BYTES, 0);
        if (headerRevision(head.toString('utf8', 0, n)) === cached.state.revision) return cached.state;
      }
      assertReadableSize(st.size, this.path);
      const state = parse(readText(readFileSync(fd), this.path), this.path);
      this.cache = { state, stamp: { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs } };
      return state;
    } catch (err) {
      throw this.readError(err);
    } finally {
      closeSync(fd);
    }
  }

  /** The file's size in bytes when last read or written (0: none yet); a read on the way may find it longer. */
  get lastSize(): number {
    return this.cache?.stamp?.size ?? 0;
  }

  /**
   * A commit on `base` has its new file written as `stamp`: from here a read
   * that finds that file in place applies the commit to the cached state
   * (`apply`) instead of parsing it.
   */
  written(base: FileState, apply: () => void, stamp: FileStamp): void {
    this.pending = () => {
      this.pending = null;
      if (this.cache?.state !== base) return;
      apply();
      this.cache.stamp = stamp;
    };
    this.pendingStamp = stamp;
  }

  /** The written commit's file is in place. */
  replaced(): void {
    this.pending?.();
  }

  /** The commit failed: its file may never be read as this process's own. */
  failed(): void {
    this.pending = null;
  }

  private readError(err: unknown): unknown {
    if (err instanceof Error && 'syscall' in err) {
      return new BackendError(`cannot read ${this.path}: ${err.message}`, { transient: false, cause: err });
    }
    return err;
  }
}

function sameStamp(stamp: FileStamp | null, st: FileStamp): boolean {
  return stamp !== null && stamp.ino === st.ino && stamp.size === st.size && stamp.mtimeMs === st.mtimeMs;
}
