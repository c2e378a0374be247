import { BackendError, encodeForWrite, type Codec, type Entry, type StoredRecord, type WatchEvent } from '../core/index.js';
import type { Row } from './statements.js';

/** What a write binds (better-sqlite3 stores a Buffer as a BLOB) and its caller's own copy of the value. */
export interface EncodedRow {
  bytes: Buffer;
  value: unknown;
}

export function encodeRow(codec: Codec, value: unknown, maxValueBytes: number): EncodedRow {
  const { bytes, value: copy } = encodeForWrite(codec, value, maxValueBytes);
  return { bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), value: copy };
}

/** A row as the store answers it: a tombstone once deleted or expired at `now` (NEGATIVE_INFINITY: as written). */
export function toRecord<T>(codec: Codec, row: Row, now: number): StoredRecord<T> {
  const writer = row.writer === null ? {} : { writer: row.writer };
  if (row.deleted) return { key: row.key, revision: row.revision, deleted: true, ...writer, updatedAt: row.updated_at };
  if (row.expires_at !== null && row.expires_at <= now) return { key: row.key, revision: row.revision, deleted: true, ...writer };
  const entry: Entry<T> = {
    key: row.key,
    value: decodeValue(codec, row) as T,
    revision: row.revision,
    createdRevision: row.created_revision ?? row.revision,
    updatedAt: row.updated_at,
    ...writer,
  };
  if (row.expires_at !== null) entry.expiresAt = row.expires_at;
  return entry;
}

/** A key's row as a condition check sees it; the value is decoded only when the check compares values. */
export function toCurrent(codec: Codec, row: Row, decode: boolean): StoredRecord {
  if (row.deleted) return { key: row.key, revision: row.revision, deleted: true };
  const entry: Entry = { key: row.key, value: decode ? decodeValue(codec, row) : undefined, revision: row.revision, createdRevision: row.created_revision ?? row.revision, updatedAt: row.updated_at };
  if (row.expires_at !== null) entry.expiresAt = row.expires_at;
  return entry;
}

export function toEvent<T>(codec: Codec, row: Row): WatchEvent<T> {
  if (row.deleted) return { type: 'delete', key: row.key, revision: row.revision };
  return { type: 'put', key: row.key, revision: row.revision, entry: toRecord<T>(codec, row, Number.NEGATIVE_INFINITY) as Entry<T> };
}

/** A value this codec cannot read (another codec wrote it, or the bytes are damaged) is a typed error. */
function decodeValue(codec: Codec, row: Row): unknown {
  try {
    return codec.decode(row.value as Buffer);
  } catch (cause) {
    throw new BackendError(`the value of ${JSON.stringify(row.key)} at revision ${row.revision} cannot be decoded with the ${codec.name} codec`, { transient: false, cause });
  }
}

export function isLive(record: StoredRecord | null, now: number): boolean {
  return record !== null && !isDeadRecord(record, now);
}

export function isDeadRecord(record: StoredRecord, now = Date.now()): boolean {
  return 'deleted' in record || (record.expiresAt !== undefined && record.expiresAt <= now);
}
