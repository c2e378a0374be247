import { createHash } from 'node:crypto';
import { InvalidArgumentError, canonicalJson as canonicalJsonOf } from '../core/index.js';

/** Canonical JSON (RFC 8785) of a subscription identity; see core's canonicalJson. */
export function canonicalJson(identity: unknown): string {
  return tooDeep(() => canonicalJsonOf(identity, 'a subscription identity'));
}

/** Nesting deep enough to exhaust the stack (or text too long for a string) is the caller's input, not a crash. */
function tooDeep<R>(fn: () => R): R {
  try {
    return fn();
  } catch (cause) {
    if (cause instanceof RangeError) throw new InvalidArgumentError(`a subscription identity nested too deeply (or too large) to encode: ${cause.message}`, { cause });
    throw cause;
  }
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

/**
 * `resumeKey` of an identity given as JSON text (as a CLI or another language would give it).
 *
 * Every number in the text must mean exactly the number the key is computed
 * from: `1.0`, `1e0` and `10E-1` are all 1 and give one key, but a literal that
 * a double cannot hold exactly once its spelling is ignored — an integer
 * beyond 2^53 such as 9007199254740993 (JSON.parse reads it as
 * 9007199254740992), `0.10000000000000001` (read as 0.1), `1e400` (Infinity),
 * `1e-400` (0) — is an `InvalidArgumentError` naming its path: two different
 * identities must never share one cursor. Give such values as strings. A
 * member name given twice in one object is refused too (parsers disagree on
 * which one counts).
 */
export function resumeKeyOfJson(text: string): string {
  if (typeof text !== 'string') throw new InvalidArgumentError(`the subscription identity must be JSON text, got ${typeof text}`);
  try {
    JSON.parse(text);
  } catch (cause) {
    throw new InvalidArgumentError(`the subscription identity is not valid JSON: ${text.length > 60 ? `${text.slice(0, 60)}…` : text}`, { cause });
  }
  // The text is valid JSON: read it again, keeping what JSON.parse would round away.
  return resumeKey(tooDeep(() => new ExactJsonReader(text).document()));
}

/**
 * A reader of JSON text that is already known to be valid (JSON.parse took
 * it), which refuses what JSON.parse would silently change: a number whose
 * value is not the value of the double it becomes, a member name given twice.
 */
class ExactJsonReader {
  private at = 0;
  constructor(private readonly text: string) {}

  document(): unknown {
    return this.value('$');
  }

  private value(path: string): unknown {
    this.space();
    const c = this.text[this.at];
    if (c === '{') return this.object(path);
    if (c === '[') return this.array(path);
    if (c === '"') return this.string();
    if (c === 't' || c === 'f' || c === 'n') {
      const word = c === 't' ? 'true' : c === 'f' ? 'false' : 'null';
      this.at += word.length;
      return c === 't' ? true : c === 'f' ? false : null;
    }
    return this.number(path);
  }

  private object(path: string): Record<string, unknown> {
    const obj: Record<string, unknown> = {};
    this.at++;
    this.space();
    if (this.text[this.at] === '}') return (this.at++, obj);
    for (;;) {
      this.space();
      const name = this.string();
      const memberPath = `${path}.${name}`;
      if (Object.prototype.hasOwnProperty.call(obj, name)) {
        throw new InvalidArgumentError(`the subscription identity gives the member ${memberPath} twice; JSON readers disagree on which one counts`);
      }
      this.space();
      this.at++; // ':'
      // defineProperty: a member named "__proto__" is a member, as with JSON.parse.
      Object.defineProperty(obj, name, { value: this.value(memberPath), enumerable: true, writable: true, configurable: true });
      this.space();
      if (this.text[this.at++] === '}') return obj;
    }
  }

  private array(path: string): unknown[] {
    const items: unknown[] = [];
    this.at++;
    this.space();
    if (this.text[this.at] === ']') return (this.at++, items);
    for (;;) {
      items.push(this.value(`${path}[${items.length}]`));
      this.space();
      if (this.text[this.at++] === ']') return items;
    }
  }

  private string(): string {
    const start = this.at;
    for (this.at++; this.text[this.at] !== '"'; this.at++) if (this.text[this.at] === '\\') this.at++;
    this.at++;
    return JSON.parse(this.text.slice(start, this.at)) as string;
  }

  private number(path: string): number {
    NUMBER.lastIndex = this.at;
    const literal = (NUMBER.exec(this.text) as RegExpExecArray)[0];
    this.at += literal.length;
    const value = Number(literal);
    if (!Number.isFinite(value) || !sameDecimal(literal, String(value))) {
      throw new InvalidArgumentError(
        `the subscription identity must be plain JSON; ${path} is the number ${literal.length > 40 ? `${literal.slice(0, 40)}…` : literal}, which a double cannot hold exactly `
        + `(it would be read as ${String(value)}, so another identity could share its resume key); give it as a string`,
      );
    }
    return value;
  }

  private space(): void {
    while (this.text[this.at] === ' ' || this.text[this.at] === '\t' || this.text[this.at] === '\n' || this.text[this.at] === '\r') this.at++;
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Whether two JSON number literals denote the same decimal value (0 and -0 alike). */
function sameDecimal(a: string, b: string): boolean {
  const x = decimal(a);
  const y = decimal(b);
  return x.digits === y.digits && x.exponent === y.exponent && x.negative === y.negative;
}

/** A literal as digits × 10^exponent, the digits without leading or trailing zeros ('' for zero). */
function decimal(literal: string): { negative: boolean; digits: string; exponent: bigint } {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(literal) as RegExpExecArray;
  const fraction = m[3] ?? '';
  let digits = (m[2] as string) + fraction;
  let exponent = BigInt(m[4] ?? 0) - BigInt(fraction.length);
  digits = digits.replace(/^0+/, '');
  const trimmed = digits.replace(/0+$/, '');
  exponent += BigInt(digits.length - trimmed.length);
  if (trimmed === '') return { negative: false, digits: '', exponent: 0n };
  return { negative: m[1] === '-', digits: trimmed, exponent };
}

const RESUME_KEY = /^[0-9a-f]{64}$/;

export function isResumeKey(key: unknown): key is string {
  return typeof key === 'string' && RESUME_KEY.test(key);
}
