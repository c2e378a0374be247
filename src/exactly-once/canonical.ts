import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../core/index.js';

/**
 * Canonical JSON (RFC 8785 / JCS for JSON values): members sorted by UTF-16
 * code units, no whitespace, numbers as ECMAScript writes them. Anything JSON
 * cannot carry faithfully is refused, so two different payloads never share a
 * hash by being flattened to the same text.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, '$', new Set());
}

/** SHA-256 (base64url) of a payload: of its bytes when it is a Uint8Array, else of its canonical JSON. */
export function payloadHash(payload: unknown): string {
  const hash = createHash('sha256');
  if (payload instanceof Uint8Array) hash.update('bytes:').update(payload);
  else hash.update('json:').update(canonicalJson(payload), 'utf8');
  return hash.digest('base64url');
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
      return `${JSON.stringify(k)}:${encode(member, `${path}.${k}`, open)}`;
    });
    return `{${members.join(',')}}`;
  } finally {
    open.delete(obj);
  }
}

function bad(path: string, what: string): InvalidArgumentError {
  return new InvalidArgumentError(`an exactly-once payload or result must be plain JSON (or a Uint8Array payload); ${path} is ${what}`);
}
