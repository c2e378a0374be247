import { RevkitError, TooLargeError, ValidationError } from './errors.js';
import { findUnfaithfulValue, issueOf, unfaithfulValue } from './faithful.js';
import { assertValueSize } from './keys.js';
import type { Codec } from './types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Values as JSON text. A value JSON cannot carry as it was given (NaN,
 * ±Infinity, bigint, functions, symbols, undefined at the top or in an
 * array, cycles, class instances such as Date) is refused with a
 * ValidationError naming its path, rather than stored changed: see
 * faithful.ts. The check walks the value after JSON.stringify succeeded,
 * which already ruled out cycles.
 */
export const jsonCodec: Codec = {
  name: 'json',
  encode(value) {
    return encoder.encode(jsonText(value));
  },
  decode(bytes) {
    return JSON.parse(decoder.decode(bytes));
  },
};

/** What jsonCodec encodes, before it becomes bytes (a store that keeps values in its own memory can keep the text). */
export function jsonText(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    // A bigint, a cycle, a throwing toJSON: say where, when the walk can tell.
    let found;
    try {
      found = findUnfaithfulValue(value);
    } catch {
      found = undefined;
    }
    const error = new ValidationError([found !== undefined ? issueOf(found) : { message: `value cannot be encoded as JSON: ${(err as Error).message}` }]);
    (error as { cause?: unknown }).cause = err;
    throw error;
  }
  if (text === undefined) throw new ValidationError([{ message: `the value is ${typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`}, which JSON cannot carry`, path: [] }]);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ValidationError([issueOf({ path: [], what: String(value) })]);
  } else if (typeof value === 'object' && value !== null) {
    let found;
    try {
      found = unfaithfulValue(value);
    } catch (err) {
      // Deeper than the stack lets the walk go (JSON.stringify gives up sooner): unchecked is refused.
      const error = new ValidationError([{ message: 'the value nests too deeply to be checked', path: [] }]);
      (error as { cause?: unknown }).cause = err;
      throw error;
    }
    if (found !== undefined) throw new ValidationError([issueOf(found)]);
  }
  return text;
}

/**
 * encodeForWrite() for jsonCodec, as text: the same checks, limit (in UTF-8
 * bytes) and caller's copy, without an ArrayBuffer per value (MemoryStore).
 */
export function jsonTextForWrite(value: unknown, maxValueBytes: number): { text: string; value: unknown } {
  const text = jsonText(value);
  // A UTF-16 code unit is at most 3 UTF-8 bytes; JSON.stringify's text is well-formed (lone surrogates escaped).
  const bytes = text.length * 3 <= maxValueBytes ? text.length : Buffer.byteLength(text, 'utf8');
  if (bytes > maxValueBytes) throw new TooLargeError('the encoded value', bytes, maxValueBytes);
  return { text, value: isJsonPrimitive(value) ? readBack(value) : JSON.parse(text) };
}

/**
 * Stores bytes as they are; values must be Uint8Array (or Buffer). Both ways
 * copy: what a store keeps is never the caller's array, and what a caller is
 * given is never the store's (an in-memory store keeps the encoded bytes).
 */
export const rawCodec: Codec = {
  name: 'raw',
  encode(value) {
    if (!(value instanceof Uint8Array)) throw new ValidationError([{ message: 'the raw codec stores only Uint8Array values' }]);
    return new Uint8Array(value);
  },
  decode(bytes) {
    return new Uint8Array(bytes);
  },
};

/** What a write stores, and the value its caller is answered with. */
export interface EncodedWrite {
  bytes: Uint8Array;
  /** Decoded from `bytes`: the caller's own copy, as a later read returns it. */
  value: unknown;
}

/**
 * Encodes a value for a write and decodes it back before anything is
 * written: a value the codec cannot read back (a custom codec's bug or
 * limit) fails the write with a ValidationError instead of committing a
 * value whose writer is then told an error, and every reader after it too.
 */
export function encodeForWrite(codec: Codec, value: unknown, maxValueBytes: number): EncodedWrite {
  const bytes = encodeChecked(codec, value, maxValueBytes);
  // Lone surrogates are escaped too: what JSON reads back of a primitive is readBack()'s.
  if (codec === jsonCodec && isJsonPrimitive(value)) return { bytes, value: readBack(value) };
  let copy: unknown;
  try {
    copy = decodeStored(codec, bytes);
  } catch (err) {
    throw typed(err, `the ${codec.name} codec cannot read back the value it encoded`);
  }
  return { bytes, value: copy };
}

/**
 * What checkValue() gives: throws what a write of `value` would be refused
 * for, else the value as that write's caller gets it back. A JSON primitive
 * that cannot be over the limit needs no encoding: combined update()s check
 * every value a later caller's replaces, and a hot counter's are numbers.
 */
export function asWritten(codec: Codec, value: unknown, maxValueBytes: number): unknown {
  if (codec !== jsonCodec) return encodeForWrite(codec, value, maxValueBytes).value;
  return fitsAsIs(value, maxValueBytes) ? readBack(value) : jsonTextForWrite(value, maxValueBytes).value;
}

const isJsonPrimitive = (value: unknown): boolean => value === null || typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean';

/** A JSON primitive as JSON reads it back: itself (numbers print round-trip exact), but -0, which JSON has no sign for. */
const readBack = (value: unknown): unknown => (value === 0 ? 0 : value);

/** A primitive JSON carries as it is, encoded within the limit whatever it holds (a character is at most 6 bytes, as \uXXXX). */
function fitsAsIs(value: unknown, maxValueBytes: number): boolean {
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value) && maxValueBytes >= 25; // the longest: -0.0000012345678901234567
    case 'boolean':
      return maxValueBytes >= 5;
    case 'string':
      return value.length * 6 + 2 <= maxValueBytes;
    default:
      return value === null && maxValueBytes >= 4;
  }
}

/**
 * A private copy of a value read or composed, as a read would give it back
 * (what update() hands a mutation). The built-in codecs' values are plain
 * data, which structuredClone copies as it is and faster; a custom codec's
 * may be class instances or hold functions, which only the codec can copy.
 */
export function copyWith(codec: Codec, value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  return isBuiltIn(codec) ? structuredClone(value) : encodeForWrite(codec, value, Number.MAX_SAFE_INTEGER).value;
}

/**
 * Decodes bytes a store keeps (an in-memory store, or a write's own): a
 * custom codec may hand back views of the array it is given, so it is given a
 * copy. The built-in codecs never do.
 */
export function decodeStored(codec: Codec, bytes: Uint8Array): unknown {
  // A Buffer, as the reads of SQLite, PostgreSQL, Redis and the file give theirs.
  return codec.decode(isBuiltIn(codec) ? bytes : Buffer.from(bytes));
}

const isBuiltIn = (codec: Codec): boolean => codec === jsonCodec || codec === rawCodec;

/** A custom codec's bytes may be its own scratch, reused by its next call: the store keeps a copy. */
function encodeChecked(codec: Codec, value: unknown, maxValueBytes: number): Uint8Array {
  let bytes: unknown;
  try {
    bytes = codec.encode(value);
  } catch (err) {
    throw typed(err, `the ${codec.name} codec cannot encode the value`);
  }
  if (!(bytes instanceof Uint8Array)) {
    const what = bytes === null ? 'null' : typeof bytes === 'object' ? `an instance of ${(bytes as object).constructor?.name ?? 'Object'}` : `a ${typeof bytes}`;
    throw new ValidationError([{ message: `the ${codec.name} codec's encode returned ${what}, not a Uint8Array` }]);
  }
  assertValueSize(bytes, maxValueBytes);
  return isBuiltIn(codec) ? bytes : new Uint8Array(bytes);
}

function typed(err: unknown, what: string): RevkitError {
  if (RevkitError.is(err)) return err;
  const error = new ValidationError([{ message: `${what}: ${(err as Error)?.message ?? String(err)}` }]);
  (error as { cause?: unknown }).cause = err;
  return error;
}
