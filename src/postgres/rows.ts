/** How rows of kv and changes become revkit records: numbers, the store's value codec, entries and tombstones. */
import type { QueryResultRow } from 'pg';
import { BackendError, encodeForWrite, jsonCodec, type Codec, type Entry, type StoredRecord, type Tombstone } from '../core/index.js';

export interface Row extends QueryResultRow {
  [column: string]: unknown;
}

export function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(v as string);
}

export function optNum(v: unknown): number | undefined {
  return v === null || v === undefined ? undefined : num(v);
}

export class RowCodec {
  /** The JSON codec: ifValue is compared as jsonb on the server (see sql/condition.ts). */
  readonly json: boolean;

  constructor(readonly codec: Codec, private readonly maxValueBytes: number) {
    this.json = codec === jsonCodec || codec.name === 'json';
  }

  /** An ifValue condition's bytes: encoded as a write's (a copy, typed errors), of any size. */
  encodeCondition(value: unknown): Buffer {
    return this.encode(value, Number.MAX_SAFE_INTEGER).bytes;
  }

  /** The bytes a write stores and its caller's copy of the value, decoded before anything is written. */
  encode(value: unknown, maxValueBytes = this.maxValueBytes): { bytes: Buffer; value: unknown } {
    const { bytes, value: copy } = encodeForWrite(this.codec, value, maxValueBytes);
    return { bytes: Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), value: copy };
  }

  private decodeValue(bytes: unknown): unknown {
    try {
      return this.codec.decode(bytes as Buffer);
    } catch (cause) {
      throw new BackendError(`a stored value could not be decoded with the ${this.codec.name} codec`, { transient: false, cause });
    }
  }

  toRecord<T>(key: string, r: Row, now: number, withoutValue = false): StoredRecord<T> {
    const revision = num(r.revision);
    if (r.deleted) {
      const t: Tombstone = { key, revision, deleted: true };
      if (r.writer !== null && r.writer !== undefined) t.writer = r.writer as string;
      const at = optNum(r.updated_at);
      if (at !== undefined) t.updatedAt = at;
      return t;
    }
    const expiresAt = optNum(r.expires_at);
    if (expiresAt !== undefined && expiresAt <= now) return { key, revision, deleted: true };
    return this.toEntry<T>(key, r, withoutValue ? { value: null } : undefined);
  }

  /** `known`: the value already decoded (a write's own copy, which may be undefined under a custom codec), not decoded again. */
  toEntry<T>(key: string, r: Row, known?: { value: unknown }): Entry<T> {
    const entry: Entry<T> = {
      key,
      value: (known ? known.value : this.decodeValue(r.value)) as T,
      revision: num(r.revision),
      createdRevision: num(r.created_revision),
      updatedAt: num(r.updated_at),
    };
    const expiresAt = optNum(r.expires_at);
    if (expiresAt !== undefined) entry.expiresAt = expiresAt;
    if (r.writer !== null && r.writer !== undefined) entry.writer = r.writer as string;
    return entry;
  }
}
