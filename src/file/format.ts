/**
 * The on-disk format: versioned, human-readable JSON with one record per line,
 * so a diff of two versions shows the keys that changed.
 *
 *   {"revkit":"file","version":1,"revision":42,"prunedBelow":0,
 *   "records":{
 *   "cfg/a":{"revision":41,"createdRevision":3,"updatedAt":1764250000000,"value":{"n":1}},
 *   "cfg/b":{"revision":42,"deleted":true,"updatedAt":1764250001000}
 *   },
 *   "changes":[
 *   {"key":"cfg/a","revision":40,"createdRevision":3,...,"value":{"n":0}},
 *   {"key":"cfg/a","revision":41,"current":true},
 *   ...
 *   ]}
 *
 * `revision` is the store-wide counter (the last revision drawn); `changes`
 * is the bounded change log behind watch() and history(); `prunedBelow` is the
 * newest revision dropped from it. Values written with the JSON codec are
 * stored as JSON; other codecs' bytes are stored as `"base64"`.
 */
import { constants } from 'node:buffer';
import { BackendError, InvalidArgumentError, TooLargeError, UnsupportedError } from '../core/index.js';

export const FORMAT_VERSION = 1;

/**
 * The largest file a store can read back, as the length of its text: the
 * file is read into a Buffer and decoded as UTF-8 into one string for
 * JSON.parse, and a string holds at most this many UTF-16 code units
 * (2^29 - 24 = 536,870,888 on 64-bit V8). Past it, decoding throws
 * ERR_STRING_TOO_LONG. Bytes and characters are the same count for ASCII;
 * a multi-byte character is one code unit (two for one outside the BMP).
 */
export const MAX_FILE_LENGTH: number = constants.MAX_STRING_LENGTH;

/**
 * The length, in UTF-16 code units, of `bytes` decoded as UTF-8 — what
 * `bytes.toString('utf8').length` would be, without building the string.
 * Exact for well-formed UTF-8 (which is all a store writes). Never more than
 * `bytes.length`, so it only needs counting when the byte count is over a limit.
 */
export function textLength(bytes: Uint8Array): number {
  let units = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    // A continuation byte adds nothing; a 4-byte sequence's lead byte stands for a surrogate pair.
    if ((b & 0xc0) !== 0x80) units += b >= 0xf0 ? 2 : 1;
  }
  return units;
}

/** Whether a file of these bytes is longer, as text, than `limit`. */
export function textOver(bytes: Uint8Array, limit: number): { over: boolean; length: number } {
  if (bytes.length <= limit) return { over: false, length: bytes.length };
  const length = textLength(bytes);
  return { over: length > limit, length };
}

/**
 * The file's text, as the reader needs it: one string. A file longer than
 * that can hold is a TooLargeError (`size` = its length as text), never a
 * bare ERR_STRING_TOO_LONG.
 */
export function readText(bytes: Buffer, path: string): string {
  try {
    return bytes.toString('utf8');
  } catch (cause) {
    if ((cause as { code?: unknown }).code !== 'ERR_STRING_TOO_LONG') throw cause;
    throw tooLongToRead(path, bytes.length, textLength(bytes), false, cause);
  }
}

/**
 * Refuses, before reading it, a file of so many bytes that its text cannot fit
 * one string (a UTF-16 code unit takes at most 3 bytes of UTF-8) — past 2 GiB,
 * readFileSync could not even read it into one Buffer.
 */
export function assertReadableSize(bytes: number, path: string): void {
  if (bytes > 3 * MAX_FILE_LENGTH) throw tooLongToRead(path, bytes, Math.ceil(bytes / 3), true);
}

function tooLongToRead(path: string, bytes: number, length: number, atLeast: boolean, cause?: unknown): TooLargeError {
  const err = new TooLargeError(path, length, MAX_FILE_LENGTH);
  err.message = `${path} cannot be read: its text (${bytes} bytes, ${atLeast ? 'at least ' : ''}${length} characters) is longer than the ${MAX_FILE_LENGTH} characters one JavaScript string can hold; it is left untouched`;
  if (cause !== undefined) Object.defineProperty(err, 'cause', { value: cause, writable: true, configurable: true });
  return err;
}

/** One key's current state; also one entry of the change log. */
export interface FileRecord {
  key: string;
  revision: number;
  deleted?: true;
  createdRevision?: number;
  updatedAt?: number;
  expiresAt?: number;
  writer?: string;
  /** The encoded value: JSON text (`"value"`) or base64 (`"base64"`), as `encoding` says. */
  data?: string;
  encoding?: 'json' | 'base64';
  /** This record's line in "records", in the change log, and as a reference to it there: built once, on first write. */
  recordLine?: Buffer;
  changeLine?: Buffer;
  referenceLine?: Buffer;
}

export interface FileState {
  revision: number;
  prunedBelow: number;
  records: Map<string, FileRecord>;
  /** In revision order. */
  changes: FileRecord[];
  /** Keys in UTF-8 byte order, built by list() and dropped when keys come or go. */
  sortedKeys?: string[];
}

export const emptyState = (): FileState => ({ revision: 0, prunedBelow: 0, records: new Map(), changes: [] });

const HEADER = /^\{"revkit":"file","version":1,"revision":(\d+),/;

/** The revision in a file's first bytes, when it was written by revkit; else null (parse it all). */
export function headerRevision(head: string): number | null {
  const m = HEADER.exec(head);
  return m ? Number(m[1]) : null;
}

function bodyOf(r: FileRecord): string {
  let s = `"revision":${r.revision}`;
  if (r.deleted) s += r.updatedAt === undefined ? ',"deleted":true' : `,"deleted":true,"updatedAt":${r.updatedAt}`;
  else {
    s += `,"createdRevision":${r.createdRevision},"updatedAt":${r.updatedAt}`;
    if (r.expiresAt !== undefined) s += `,"expiresAt":${r.expiresAt}`;
  }
  if (r.writer !== undefined) s += `,"writer":${JSON.stringify(r.writer)}`;
  if (!r.deleted) s += r.encoding === 'json' ? `,"value":${r.data}` : `,"base64":${JSON.stringify(r.data)}`;
  return s;
}

// Each record's lines are encoded once and kept: a rewrite copies bytes instead of serialising every key again.
const recordLine = (r: FileRecord) => (r.recordLine ??= Buffer.from(`${JSON.stringify(r.key)}:{${bodyOf(r)}}`));
const changeLine = (r: FileRecord) => (r.changeLine ??= Buffer.from(`{"key":${JSON.stringify(r.key)},${bodyOf(r)}}`));
const referenceLine = (r: FileRecord) => (r.referenceLine ??= Buffer.from(`{"key":${JSON.stringify(r.key)},"revision":${r.revision},"current":true}`));
const FIRST = Buffer.from('\n');
const NEXT = Buffer.from(',\n');

/**
 * Serialises a state given as pieces, so a commit need not copy the whole map
 * first. A change that is still its key's current record is written as a
 * reference (`"current":true`) rather than a second copy of the value.
 */
export function serialize(
  revision: number, prunedBelow: number, records: Iterable<FileRecord>, changes: Iterable<FileRecord>,
  current: (key: string) => FileRecord | null,
): Buffer {
  const parts: Buffer[] = [Buffer.from(`{"revkit":"file","version":${FORMAT_VERSION},"revision":${revision},"prunedBelow":${prunedBelow},\n"records":{`)];
  let first = true;
  for (const r of records) {
    parts.push(first ? FIRST : NEXT, recordLine(r));
    first = false;
  }
  parts.push(Buffer.from('\n},\n"changes":['));
  first = true;
  for (const c of changes) {
    parts.push(first ? FIRST : NEXT, current(c.key)?.revision === c.revision ? referenceLine(c) : changeLine(c));
    first = false;
  }
  parts.push(Buffer.from('\n]}\n'));
  return Buffer.concat(parts);
}

/**
 * Parses a whole file. A file that is not revkit's, is damaged or comes from
 * a newer version is an error — and since every commit parses before it
 * writes, such a file is never overwritten.
 */
export function parse(text: string, path: string): FileState {
  if (text.trim() === '') return emptyState();
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw corrupt(path, 'it is not valid JSON (damaged, or not a revkit file)', cause);
  }
  if (!isObject(doc) || doc.revkit !== 'file') {
    throw new InvalidArgumentError(`${path} is not a revkit file store (no "revkit":"file" marker); revkit will neither use nor overwrite it`);
  }
  if (typeof doc.version === 'number' && doc.version > FORMAT_VERSION) {
    throw new UnsupportedError('open', 'file', `${path} was written in format version ${doc.version}, newer than this revkit's ${FORMAT_VERSION}; upgrade revkit`);
  }
  if (doc.version !== FORMAT_VERSION) throw corrupt(path, `unknown format version ${JSON.stringify(doc.version)}`);
  const revision = doc.revision;
  const prunedBelow = doc.prunedBelow ?? 0;
  if (!isCount(revision) || !isCount(prunedBelow) || !isObject(doc.records) || !Array.isArray(doc.changes)) {
    throw corrupt(path, 'the revision, prunedBelow, records or changes field is missing or malformed');
  }
  const records = new Map<string, FileRecord>();
  for (const [key, raw] of Object.entries(doc.records)) records.set(key, toRecord(key, raw, path));
  const changes: FileRecord[] = [];
  let last = 0;
  for (const raw of doc.changes as unknown[]) {
    if (!isObject(raw) || typeof raw.key !== 'string') throw corrupt(path, 'a change log entry has no key');
    const change = raw.current === true ? records.get(raw.key) : toRecord(raw.key, raw, path);
    if (change === undefined || change.revision !== raw.revision) throw corrupt(path, `the change of ${JSON.stringify(raw.key)} at revision ${String(raw.revision)} refers to a record that is not there`);
    if (change.revision < last || change.revision > revision) throw corrupt(path, `the change log is out of order at revision ${change.revision}`);
    last = change.revision;
    changes.push(change);
  }
  for (const r of records.values()) if (r.revision > revision) throw corrupt(path, `key ${JSON.stringify(r.key)} is at revision ${r.revision}, above the store's ${revision}`);
  return { revision, prunedBelow, records, changes };
}

function toRecord(key: string, raw: unknown, path: string): FileRecord {
  if (!isObject(raw) || !isCount(raw.revision) || raw.revision === 0) throw corrupt(path, `the record of ${JSON.stringify(key)} has no valid revision`);
  const r: FileRecord = { key, revision: raw.revision };
  if (typeof raw.writer === 'string') r.writer = raw.writer;
  if (raw.deleted === true) {
    r.deleted = true;
    if (typeof raw.updatedAt === 'number') r.updatedAt = raw.updatedAt;
    return r;
  }
  if (!isCount(raw.createdRevision) || typeof raw.updatedAt !== 'number') throw corrupt(path, `the record of ${JSON.stringify(key)} lacks createdRevision or updatedAt`);
  r.createdRevision = raw.createdRevision;
  r.updatedAt = raw.updatedAt;
  if (typeof raw.expiresAt === 'number') r.expiresAt = raw.expiresAt;
  if ('value' in raw) {
    r.encoding = 'json';
    r.data = JSON.stringify(raw.value);
  } else if (typeof raw.base64 === 'string') {
    r.encoding = 'base64';
    r.data = raw.base64;
  } else {
    throw corrupt(path, `the record of ${JSON.stringify(key)} has neither "value" nor "base64"`);
  }
  return r;
}

function corrupt(path: string, why: string, cause?: unknown): BackendError {
  return new BackendError(`${path} cannot be read as a revkit file store: ${why}; it is left untouched`, { transient: false, cause });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
