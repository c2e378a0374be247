import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../core/index.js';

/**
 * The canonical JSON text of a value, as RFC 8785 (JCS) defines it: object
 * members sorted by their UTF-16 code units, no whitespace, numbers in the
 * shortest form that round-trips (ECMAScript's Number#toString, so `1`,
 * `1.0` and `1e0` are all `1`, and `-0` is `0`), strings as JSON.stringify
 * writes them. Anything JSON cannot carry faithfully (undefined, NaN,
 * Infinity, bigint, functions, class instances, cycles) is refused rather
 * than silently dropped: two different identities must never share a text.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, '$', new Set());
}

function encode(value: unknown, path: string, open: Set<object>): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      if (!value.isWellFormed()) throw bad(path, 'a string with a lone surrogate');
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw bad(path, String(value));
      // Number#toString is the shortest round-trip form JCS prescribes; JSON.stringify agrees.
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw bad(path, `a ${typeof value}`);
  }
  const obj = value as object;
  if (open.has(obj)) throw bad(path, 'a cycle');
  open.add(obj);
  try {
    if (Array.isArray(obj)) return `[${obj.map((item, i) => encode(item, `${path}[${i}]`, open)).join(',')}]`;
    const proto = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) throw bad(path, `an instance of ${proto?.constructor?.name ?? 'a class'}`);
    const members = Object.keys(obj).sort().map((k) => {
      const member = (obj as Record<string, unknown>)[k];
      if (member === undefined) throw bad(`${path}.${k}`, 'undefined');
      return `${encode(k, path, open)}:${encode(member, `${path}.${k}`, open)}`;
    });
    return `{${members.join(',')}}`;
  } finally {
    open.delete(obj);
  }
}

function bad(path: string, what: string): InvalidArgumentError {
  return new InvalidArgumentError(`a subscription identity must be plain JSON; ${path} is ${what}`);
}

/**
 * The resume key of a subscription: SHA-256 (lowercase hex) of the canonical
 * JSON of whatever identifies it — e.g. `{ stream: 'orders', consumer: 'billing' }`.
 * A JSON text (string) is also accepted via `resumeKeyOfJson`, so that `1.0`
 * and `1e0` written by another program give the same key as `1`.
 */
export function resumeKey(identity: unknown): string {
  if (identity === undefined) throw new InvalidArgumentError('resumeKey() needs the identity of a subscription');
  return createHash('sha256').update(canonicalJson(identity), 'utf8').digest('hex');
}

/** `resumeKey` of an identity given as JSON text (as a CLI or another language would give it). */
export function resumeKeyOfJson(text: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new InvalidArgumentError(`the subscription identity is not valid JSON: ${text.length > 60 ? `${text.slice(0, 60)}…` : text}`, { cause });
  }
  return resumeKey(parsed);
}

const RESUME_KEY = /^[0-9a-f]{64}$/;

export function isResumeKey(key: unknown): key is string {
  return typeof key === 'string' && RESUME_KEY.test(key);
}
