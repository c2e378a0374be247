import { InvalidArgumentError } from './errors.js';

/**
 * The canonical JSON text of a value, as RFC 8785 (JCS) defines it: object
 * members sorted by their UTF-16 code units, no whitespace, numbers in the
 * shortest form that round-trips (ECMAScript's Number#toString, so `1`,
 * `1.0` and `1e0` are all `1`, and `-0` is `0`), strings as JSON.stringify
 * writes them. Anything JSON cannot carry faithfully (undefined, NaN,
 * Infinity, bigint, functions, class instances, cycles) is refused rather
 * than silently dropped: two different identities must never share a text.
 */
export function canonicalJson(value: unknown, subject = 'the value'): string {
  return encode(value, '$', new Set(), subject);
}

function encode(value: unknown, path: string, open: Set<object>, subject: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      if (!value.isWellFormed()) throw bad(subject, path, 'a string with a lone surrogate');
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw bad(subject, path, String(value));
      // Number#toString is the shortest round-trip form JCS prescribes; JSON.stringify agrees.
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw bad(subject, path, `a ${typeof value}`);
  }
  const obj = value as object;
  if (open.has(obj)) throw bad(subject, path, 'a cycle');
  open.add(obj);
  try {
    if (Array.isArray(obj)) return `[${obj.map((item, i) => encode(item, `${path}[${i}]`, open, subject)).join(',')}]`;
    const proto = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) throw bad(subject, path, `an instance of ${proto?.constructor?.name ?? 'a class'}`);
    const members = Object.keys(obj).sort().map((k) => {
      const member = (obj as Record<string, unknown>)[k];
      if (member === undefined) throw bad(subject, `${path}.${k}`, 'undefined');
      return `${encode(k, path, open, subject)}:${encode(member, `${path}.${k}`, open, subject)}`;
    });
    return `{${members.join(',')}}`;
  } finally {
    open.delete(obj);
  }
}

function bad(subject: string, path: string, what: string): InvalidArgumentError {
  return new InvalidArgumentError(`${subject} must be plain JSON; ${path} is ${what}`);
}

