import { BackendError, RevkitError, type Entry, type StoredRecord } from '../core/index.js';
import { NOT_SENT } from './connection.js';

/** A record as the scripts store it (see scripts.ts): header, writer token, value bytes. */
export interface PackedRecord {
  revision: number;
  createdRevision: number;
  updatedAt: number;
  /** 0: no expiry. */
  expiresAt: number;
  deleted: boolean;
  writer: string;
  value: Buffer;
}

const HEADER = /^(\d+),(\d+),(\d+),(\d+),([01]),(\d+):/;

export function unpack(packed: Buffer): PackedRecord {
  // The header is ASCII and short; only its bytes are turned into text.
  const colon = packed.indexOf(0x3a);
  const match = HEADER.exec(packed.subarray(0, colon + 1).toString('latin1'));
  if (colon < 0 || match === null) throw new BackendError('a Redis record of this store is damaged (no header)', { transient: false });
  const writerStart = colon + 1;
  const writerEnd = writerStart + Number(match[6]);
  return {
    revision: Number(match[1]),
    createdRevision: Number(match[2]),
    updatedAt: Number(match[3]),
    expiresAt: Number(match[4]),
    deleted: match[5] === '1',
    writer: packed.subarray(writerStart, writerEnd).toString('utf8'),
    value: packed.subarray(writerEnd),
  };
}

/**
 * The record as callers see it: an expired entry reads as absent at its
 * revision (a tombstone), so it still guards the next write. `now` is the
 * server's clock, the one the scripts judge expiry by.
 */
export function toRecord<T>(key: string, r: PackedRecord, now: number, decode: (key: string, r: PackedRecord) => T): StoredRecord<T> {
  const writer = r.writer === '' ? {} : { writer: r.writer };
  if (r.deleted) return { key, revision: r.revision, deleted: true, updatedAt: r.updatedAt, ...writer };
  if (r.expiresAt !== 0 && r.expiresAt <= now) return { key, revision: r.revision, deleted: true, ...writer };
  const entry: Entry<T> = { key, value: decode(key, r), revision: r.revision, createdRevision: r.createdRevision, updatedAt: r.updatedAt, ...writer };
  if (r.expiresAt !== 0) entry.expiresAt = r.expiresAt;
  return entry;
}

/**
 * Maps what ioredis throws to a revkit error.
 *
 * - A reply error: the server refused the command, so a script did not run
 *   (LOADING while it reads its data back, BUSY, READONLY after a failover,
 *   MASTERDOWN, TRYAGAIN / CLUSTERDOWN / MOVED / ASK during resharding) →
 *   transient, never ambiguous. Any other reply error (OOM, NOPERM, a script
 *   error) is permanent.
 * - `MaxRetriesPerRequestError`: the command waited in the offline queue
 *   through several reconnect attempts and was never sent → transient, not
 *   ambiguous. (A command that had been sent is failed as ambiguous by
 *   `InFlight` in connection.ts, whatever ioredis says about it.)
 * - NOT_SENT (connection.ts): held for a connection that did not become
 *   ready within the command timeout, never handed to ioredis → transient,
 *   not ambiguous.
 * - Anything else (connection closed, socket errors, a command timeout) →
 *   transient, and ambiguous for a write: the script may have run.
 */
export function mapRedisError(err: unknown, what: string, write: boolean): RevkitError {
  if (RevkitError.is(err)) return err;
  const e = err as { name?: unknown; message?: unknown } | null;
  const name = typeof e?.name === 'string' ? e.name : '';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (name === 'ReplyError') {
    const transient = /^(LOADING|BUSY|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|MOVED|ASK|NOREPLICAS)\b/.test(message);
    return new BackendError(`redis ${what} failed: ${message}`, { transient, ambiguous: false, cause: err });
  }
  if (name === NOT_SENT) return new BackendError(`redis ${what} failed: ${message}`, { transient: true, ambiguous: false, cause: err });
  if (name === 'MaxRetriesPerRequestError') {
    return new BackendError(`redis ${what} failed: the server stayed unreachable (${message})`, { transient: true, ambiguous: false, cause: err });
  }
  return new BackendError(`redis ${what} failed: ${message}`, { transient: true, ambiguous: write, cause: err });
}
