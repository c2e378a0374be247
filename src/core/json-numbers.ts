// No imports: the web console bundles this file as it is.

/**
 * A number literal of a JSON text that JSON.parse cannot carry faithfully:
 * the number it parses to (a double) would be stored and read back as
 * `readsBack`, which is not the number the literal wrote.
 */
export interface UnfaithfulNumber {
  /** The literal as written. */
  literal: string;
  /** What the value reads back as once stored (`null` when the literal does not fit a double at all: ±Infinity). */
  readsBack: string | null;
  /** Where the literal is: object member names and array indexes, from the top. */
  path: (string | number)[];
  /** Offset of the literal in the text (UTF-16 code units). */
  offset: number;
}

/**
 * The first number literal of a well-formed JSON text whose value would
 * change on the way through JSON.parse and back out (JSON.stringify), or
 * null when every literal survives.
 *
 * The rule is "never changed": a literal is faithful when the text the
 * stored double prints back as denotes the same decimal number as the
 * literal. So `1.0`, `1e2`, `-0`, `0.1` and `1e+23` pass (they read back as
 * `1`, `100`, `0`, `0.1`, `1e+23`, the same numbers), while
 * `12345678901234567891` (reads back as 12345678901234567000), `1e400`
 * (Infinity, which JSON cannot carry), `1e-400` (0) and
 * `0.12345678901234567891` (0.12345678901234568) are caught.
 *
 * A literal of at most 15 significant digits without an exponent always
 * survives (any decimal of 15 digits or fewer is the shortest text of the
 * double nearest to it), so the common case costs one pass over the text,
 * skipping strings with indexOf. Call it on text JSON.parse accepted.
 */
export function findUnfaithfulNumber(text: string): UnfaithfulNumber | null {
  // Only a literal with 16 digits or more, or with an exponent, can fail: a text with
  // neither (not even inside its strings) needs no scan.
  if (!MAY_NEED_SCAN.test(text)) return null;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      i = skipString(text, i);
      continue;
    }
    if (c !== 45 /* - */ && (c < 48 || c > 57)) {
      i++;
      continue;
    }
    const start = i;
    let digits = 0;
    let simple = true;
    for (; i < n; i++) {
      const d = text.charCodeAt(i);
      if (d >= 48 && d <= 57) digits++;
      else if (d === 101 || d === 69 /* e E */) simple = false;
      else if (d !== 46 && d !== 45 && d !== 43 /* . - + */) break;
    }
    if (simple && digits <= 15) continue;
    const literal = text.slice(start, i);
    const readsBack = readBack(literal);
    // Most such literals were printed by a JSON serializer of doubles: the same text.
    if (readsBack === literal) continue;
    if (readsBack === null || !sameDecimal(literal, readsBack)) {
      return { literal, readsBack, path: pathAt(text, start), offset: start };
    }
  }
  return null;
}

/**
 * A digit that starts 16 digits (a '.' may sit among them) or is followed by an
 * exponent mark. Every literal with either starts so (a JSON number's digits begin
 * with a digit, and its exponent follows one). Led by \d, which irregexp scans
 * for quickly: half the time of `[\d.]{16}|\d[eE]`.
 */
const MAY_NEED_SCAN = /\d(?:[eE]|[\d.]{15})/;

/** What a number literal reads back as after JSON.parse and JSON.stringify; null when it is not finite. */
function readBack(literal: string): string | null {
  const value = Number(literal);
  return Number.isFinite(value) ? JSON.stringify(value) : null;
}

/** Index just past the string that opens at `i` (or the end of the text). */
function skipString(text: string, i: number): number {
  let j = i;
  for (;;) {
    j = text.indexOf('"', j + 1);
    if (j === -1) return text.length;
    let backslashes = 0;
    for (let k = j - 1; text.charCodeAt(k) === 92; k--) backslashes++;
    if (backslashes % 2 === 0) return j + 1;
  }
}

/** A decimal number as 0.<digits> × 10^exp with no leading or trailing zero in digits; zero is digits ''. */
interface Decimal { negative: boolean; digits: string; exp: number }

function decimalOf(literal: string): Decimal {
  let k = 0;
  const negative = literal.charCodeAt(0) === 45;
  if (negative) k++;
  let mantissa = '';
  let point = -1;
  for (; k < literal.length; k++) {
    const c = literal.charCodeAt(k);
    if (c === 46) point = mantissa.length;
    else if (c === 101 || c === 69) break;
    else mantissa += literal[k];
  }
  const exponent = k < literal.length ? Number(literal.slice(k + 1)) : 0;
  if (point === -1) point = mantissa.length;
  let lead = 0;
  while (lead < mantissa.length && mantissa.charCodeAt(lead) === 48) lead++;
  let end = mantissa.length;
  while (end > lead && mantissa.charCodeAt(end - 1) === 48) end--;
  return { negative, digits: mantissa.slice(lead, end), exp: point - lead + exponent };
}

/** Whether two number texts denote the same decimal number (-0 and 0 are the same number). */
function sameDecimal(a: string, b: string): boolean {
  const x = decimalOf(a);
  const y = decimalOf(b);
  if (x.digits !== y.digits) return false;
  return x.digits === '' || (x.exp === y.exp && x.negative === y.negative);
}

/** The path of the value that starts at `offset`, from the structure of the text before it. */
function pathAt(text: string, offset: number): (string | number)[] {
  const frames: { array: boolean; index: number; name: string }[] = [];
  let expectName = false;
  let i = 0;
  while (i < offset) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      const end = skipString(text, i);
      const top = frames[frames.length - 1];
      if (expectName && top !== undefined && !top.array) top.name = JSON.parse(text.slice(i, end)) as string;
      i = end;
      continue;
    }
    const top = frames[frames.length - 1];
    if (c === 123 /* { */) {
      frames.push({ array: false, index: 0, name: '' });
      expectName = true;
    } else if (c === 91 /* [ */) {
      frames.push({ array: true, index: 0, name: '' });
      expectName = false;
    } else if (c === 125 || c === 93 /* } ] */) {
      frames.pop();
      expectName = false;
    } else if (c === 44 /* , */ && top !== undefined) {
      if (top.array) top.index++;
      else expectName = true;
    } else if (c === 58 /* : */) {
      expectName = false;
    }
    i++;
  }
  return frames.map((f) => (f.array ? f.index : f.name));
}

/** A path as a JSON Pointer (RFC 6901): `/order`, `/items/0/id`; the whole value is ``. */
export function jsonPointer(path: ReadonlyArray<PropertyKey>): string {
  return path.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/** One sentence on why a literal is refused, naming where it is. */
export function describeUnfaithfulNumber(u: Pick<UnfaithfulNumber, 'literal' | 'readsBack' | 'path'>): string {
  const where = u.path.length === 0 ? 'the value' : jsonPointer(u.path);
  const shown = u.literal.length > 40 ? `${u.literal.slice(0, 40)}…` : u.literal;
  if (u.readsBack === null) return `${where}: the number ${shown} is beyond what JSON numbers can carry here (it parses to Infinity); send it as a string`;
  return `${where}: the number ${shown} cannot be stored exactly (it would read back as ${u.readsBack}, a JSON number is held as a 64-bit double); send it as a string`;
}

/** Deepest nesting of arrays and objects in JSON text (strings skipped). */
export function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > max) max = depth;
    } else if (c === 93 || c === 125) depth--;
  }
  return max;
}
