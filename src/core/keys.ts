import type { WatchOptions } from './types.js';
import { InvalidArgumentError, InvalidKeyError, TooLargeError } from './errors.js';

export const MAX_KEY_BYTES = 1024;
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;

// C0, DEL and C1 controls: they break logs, terminals, NATS subjects and HTTP headers.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

export function assertKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new InvalidKeyError(`a key must be a string, got ${typeof key}`, MAX_KEY_BYTES);
  if (key.length === 0) throw new InvalidKeyError('a key must not be empty', MAX_KEY_BYTES);
  checkText(key, 'key');
}

/** A prefix follows the key rules but may be empty. */
export function assertPrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string') throw new InvalidKeyError(`a prefix must be a string, got ${typeof prefix}`, MAX_KEY_BYTES);
  if (prefix.length > 0) checkText(prefix, 'prefix');
}

function checkText(text: string, what: string): void {
  if (CONTROL_CHARS.test(text)) throw new InvalidKeyError(`a ${what} must not contain control characters`, MAX_KEY_BYTES);
  if (!text.isWellFormed()) throw new InvalidKeyError(`a ${what} must be well-formed unicode (no lone surrogates)`, MAX_KEY_BYTES);
  // A UTF-16 code unit is at most 3 UTF-8 bytes: short text needs no count.
  if (text.length <= MAX_KEY_BYTES / 3) return;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_KEY_BYTES) throw new InvalidKeyError(`a ${what} is ${bytes} UTF-8 bytes, over the limit of ${MAX_KEY_BYTES}`, MAX_KEY_BYTES);
}

export function assertValueSize(bytes: Uint8Array, limit: number): void {
  if (bytes.byteLength > limit) throw new TooLargeError('the encoded value', bytes.byteLength, limit);
}

/** list()'s cursor: the last key of the page before (any string; it need not be a key that exists). */
export function assertAfter(after: unknown): void {
  if (after !== undefined && typeof after !== 'string') throw new InvalidArgumentError(`after must be a string (the last key of the page before), got ${after === null ? 'null' : typeof after}`);
}

export function assertTtl(ttlMs: unknown): void {
  if (ttlMs === undefined) return;
  if (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new InvalidArgumentError(`ttlMs must be a positive integer number of milliseconds, got ${String(ttlMs)}`);
  }
}

export function assertRevision(revision: unknown, what = 'revision'): asserts revision is number {
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
    throw new InvalidArgumentError(`${what} must be a non-negative safe integer, got ${String(revision)}`);
  }
}

export function assertLimit(limit: unknown, max: number): number | undefined {
  if (limit === undefined) return undefined;
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit <= 0) {
    throw new InvalidArgumentError(`limit must be a positive integer, got ${String(limit)}`);
  }
  return Math.min(limit, max);
}


/** Keys sort by UTF-8 bytes on every backend, so pages are stable across stores. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Checks a watch's options (key or prefix, fromRevision) and answers whether a key is watched. */
/** The longest writer token a write may carry (update()'s own are about 20 characters). */
export const MAX_WRITER_LENGTH = 200;

/**
 * A writer token from a header that carries it percent-encoded (HTTP's
 * Revkit-Writer, NATS's Revkit-Writer-Encoded); one that is not (another
 * writer's header) is taken as it stands.
 */
export function writerFromPercentEncoding(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** A writer token is stored beside the value and sent in headers (NATS): short, printable text. */
export function assertWriter(writer: unknown): void {
  if (writer === undefined) return;
  if (typeof writer !== 'string' || writer.length === 0 || writer.length > MAX_WRITER_LENGTH || CONTROL_CHARS.test(writer) || !writer.isWellFormed()) {
    throw new InvalidArgumentError(`writer must be a string of 1 to ${MAX_WRITER_LENGTH} characters without control characters, got ${typeof writer === 'string' ? JSON.stringify(writer.slice(0, 40)) : typeof writer}`);
  }
}

/** What the features built on a store (locks, checkpoints, exactly-once) are handed: a store, not null or a URL. */
export function assertStore(store: unknown, of: string): void {
  const s = store as { getRecord?: unknown; put?: unknown; capabilities?: unknown } | null;
  if (typeof s !== 'object' || s === null || typeof s.getRecord !== 'function' || typeof s.put !== 'function' || typeof s.capabilities !== 'object' || s.capabilities === null) {
    throw new InvalidArgumentError(`${of} needs an open revkit store (from open() or a backend), got ${store === null ? 'null' : typeof store}`);
  }
}

/** An options argument is an object or left out; null, a number or a string is refused, not read as none. */
export function assertOptions(options: unknown, of: string): void {
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new InvalidArgumentError(`${of} options must be an object, got ${options === null ? 'null' : typeof options}`);
  }
}

/** An AbortSignal (or one shaped like it, as polyfills make), or left out: anything else would fail later as a plain TypeError, or be ignored. */
export function assertSignal(signal: unknown, of: string): void {
  if (signal === undefined || signal instanceof AbortSignal) return;
  const s = signal as { aborted?: unknown; addEventListener?: unknown; removeEventListener?: unknown } | null;
  if (typeof s?.aborted !== 'boolean' || typeof s.addEventListener !== 'function' || typeof s.removeEventListener !== 'function') {
    throw new InvalidArgumentError(`${of} signal must be an AbortSignal`);
  }
}

export function keyFilter(options: WatchOptions): (key: string) => boolean {
  if (options === undefined) throw new InvalidArgumentError('watch() needs options: { key } or { prefix }, and fromRevision or signal if wanted');
  assertOptions(options, 'watch()');
  assertSignal(options.signal, 'watch()');
  if (options.fromRevision !== undefined) assertRevision(options.fromRevision, 'fromRevision');
  // Both given, one would be ignored without a word (the HTTP API refuses the same).
  if (options.key !== undefined && options.prefix !== undefined) throw new InvalidArgumentError('watch() takes a key or a prefix, not both');
  if (options.key !== undefined) {
    assertKey(options.key);
    const key = options.key;
    return (k) => k === key;
  }
  const prefix = options.prefix ?? '';
  assertPrefix(prefix);
  return (k) => k.startsWith(prefix);
}

