import { ValidationError, type ValidationIssue } from './errors.js';
import { describeUnfaithfulNumber, findUnfaithfulNumber, jsonPointer } from './json-numbers.js';

/**
 * Values are stored as JSON, and nothing is changed on the way and then
 * acknowledged: a value JSON cannot carry as it was given is refused with a
 * ValidationError naming where in the value the problem is. Two ways in:
 *
 * - JSON text (HTTP bodies, CLI arguments, the console's editor), read by
 *   parseJsonValue(): a number literal that would read back as another
 *   number (an integer beyond 2^53 such as 12345678901234567891, 1e400,
 *   1e-400) is refused. `1.0`, `1e2`, `-0` and `0.1` read back as the same
 *   numbers (`1`, `100`, `0`, `0.1`) and are accepted.
 * - JS values given to the library (put, update's result, atomic().set),
 *   checked by the JSON codec with unfaithfulValue(): NaN, ±Infinity,
 *   bigint, functions, symbols, undefined (at the top, or in an array where
 *   it would become null), cycles and class instances (Date, Map, Set,
 *   Uint8Array, boxed primitives; a Date would come back as a string) are
 *   refused. Every finite JS number is faithful, 2 ** 60 included: it is
 *   stored as JavaScript prints it (1152921504606847000) and reads back as
 *   the same double. A member whose value is undefined is left out, as
 *   JSON.stringify does; reading it back gives undefined again. -0 is
 *   stored as 0.
 */

/** JSON.parse, then refusal of any number literal that would not read back as written (ValidationError). */
export function parseJsonValue(text: string): unknown {
  const value: unknown = JSON.parse(text);
  assertFaithfulText(text);
  return value;
}

/** Refuses a well-formed JSON text with a number literal that would not read back as written. */
export function assertFaithfulText(text: string, key?: string): void {
  const found = findUnfaithfulNumber(text);
  if (found !== null) throw new ValidationError([{ message: describeUnfaithfulNumber(found), path: found.path }], key);
}

/** Where a JS value stops being faithful to JSON, and what is there. */
export interface UnfaithfulValue {
  path: (string | number)[];
  what: string;
}

/**
 * The first place in a JS value that JSON would not carry faithfully, or
 * undefined. Assumes no cycles (run it after JSON.stringify succeeded, which
 * rules them out); findUnfaithfulValue() handles cycles too.
 */
export function unfaithfulValue(value: unknown): UnfaithfulValue | undefined {
  const found = walk(value, null);
  if (found !== undefined) found.path.reverse();
  return found;
}

/** As unfaithfulValue(), tolerating cycles (for values JSON.stringify refused). */
export function findUnfaithfulValue(value: unknown): UnfaithfulValue | undefined {
  const found = walk(value, new Set());
  if (found !== undefined) found.path.reverse();
  return found;
}

/** Paths are built backwards as the walk unwinds: nothing is allocated while a value is fine. */
function walk(value: unknown, open: Set<object> | null): UnfaithfulValue | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : { path: [], what: String(value) };
    case 'object':
      if (value === null) return undefined;
      break;
    case 'undefined':
      return { path: [], what: 'undefined' };
    case 'bigint':
      return { path: [], what: `a bigint (${String(value)}n)` };
    default:
      return { path: [], what: `a ${typeof value}` };
  }
  if (open !== null) {
    if (open.has(value)) return { path: [], what: 'a cycle (the value contains itself)' };
    open.add(value);
  }
  let found: UnfaithfulValue | undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item === undefined) {
        found = { path: [i], what: i in value ? 'undefined (it would be stored as null)' : 'an empty slot (it would be stored as null)' };
        break;
      }
      found = walk(item, open);
      if (found !== undefined) {
        found.path.push(i);
        break;
      }
    }
  } else {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      found = { path: [], what: describeInstance(value, proto) };
    } else {
      const obj = value as Record<string, unknown>;
      // for-in, not Object.keys(): no array per object. It also lists enumerable members of a
      // polluted Object.prototype, which JSON.stringify ignores; hence the hasOwn check on a find.
      for (const name in obj) {
        const member = obj[name];
        if (member === undefined) continue; // left out, and read back as undefined
        found = walk(member, open);
        if (found !== undefined) {
          if (Object.hasOwn(obj, name)) {
            found.path.push(name);
            break;
          }
          found = undefined;
        }
      }
    }
  }
  if (open !== null) open.delete(value);
  return found;
}

function describeInstance(value: object, proto: unknown): string {
  const name = (proto as { constructor?: { name?: unknown } } | null)?.constructor?.name;
  if (value instanceof Date) return 'a Date, which JSON would store as a string (store date.toISOString() or date.getTime())';
  return `an instance of ${typeof name === 'string' && name !== '' ? name : 'a class'} (only plain objects, arrays, strings, finite numbers, booleans and null are stored as they are)`;
}

/** The issue a ValidationError carries for an unfaithful JS value. */
export function issueOf(found: UnfaithfulValue): ValidationIssue {
  const where = found.path.length === 0 ? 'the value' : jsonPointer(found.path);
  return { message: `JSON cannot carry ${where} faithfully: it is ${found.what}`, path: found.path };
}
