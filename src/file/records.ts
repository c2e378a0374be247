import { BackendError, jsonCodec, type Codec, type Entry, type StoredRecord, type WatchEvent } from '../core/index.js';
import type { FileRecord } from './format.js';
import { isLive, type EncodedValue } from './transaction.js';

/** A value as it goes into the file: JSON as JSON, readable and diffable; other codecs' bytes as base64. */
export function encodeValue(codec: Codec, bytes: Uint8Array): EncodedValue {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return codec === jsonCodec ? { encoding: 'json', data: buf.toString('utf8') } : { encoding: 'base64', data: buf.toString('base64') };
}

function decodeValue(codec: Codec, rec: FileRecord): unknown {
  try {
    if (rec.encoding === 'json' && codec === jsonCodec) return JSON.parse(rec.data as string);
    return codec.decode(Buffer.from(rec.data as string, rec.encoding === 'json' ? 'utf8' : 'base64'));
  } catch (cause) {
    throw new BackendError(`the value of ${JSON.stringify(rec.key)} at revision ${rec.revision} cannot be decoded with the ${codec.name} codec`, { transient: false, cause });
  }
}

/**
 * A record as the store answers it: a tombstone once deleted or expired at `now` (NEGATIVE_INFINITY: as written).
 * `written`: the value its writer already decoded (core encodeForWrite), not decoded again.
 */
export function toStored<T>(codec: Codec, rec: FileRecord, now: number, written?: { value: unknown }): StoredRecord<T> {
  const writer = rec.writer === undefined ? {} : { writer: rec.writer };
  if (rec.deleted) return { key: rec.key, revision: rec.revision, deleted: true, ...writer, ...(rec.updatedAt === undefined ? {} : { updatedAt: rec.updatedAt }) };
  if (!isLive(rec, now)) return { key: rec.key, revision: rec.revision, deleted: true, ...writer };
  const entry: Entry<T> = {
    key: rec.key,
    value: (written ? written.value : decodeValue(codec, rec)) as T,
    revision: rec.revision,
    createdRevision: rec.createdRevision as number,
    updatedAt: rec.updatedAt as number,
    ...writer,
  };
  if (rec.expiresAt !== undefined) entry.expiresAt = rec.expiresAt;
  return entry;
}

/** The shape conditionFailure reads; the value is decoded only for ifValue. */
export function comparable(codec: Codec, rec: FileRecord | null, withValue: boolean): StoredRecord | null {
  if (rec === null) return null;
  if (rec.deleted) return { key: rec.key, revision: rec.revision, deleted: true };
  const entry: Entry = { key: rec.key, value: withValue ? decodeValue(codec, rec) : undefined, revision: rec.revision, createdRevision: rec.createdRevision as number, updatedAt: rec.updatedAt as number };
  if (rec.expiresAt !== undefined) entry.expiresAt = rec.expiresAt;
  return entry;
}

export function toEvent<T>(codec: Codec, c: FileRecord): WatchEvent<T> {
  if (c.deleted) return { type: 'delete', key: c.key, revision: c.revision };
  return { type: 'put', key: c.key, revision: c.revision, entry: toStored<T>(codec, c, Number.NEGATIVE_INFINITY) as Entry<T> };
}
