// JSON as the console shows and checks it.
import { describeUnfaithfulNumber, findUnfaithfulNumber } from '../../src/core/json-numbers';

export const pretty = (value: unknown): string => JSON.stringify(value, null, 2);

export type Parsed =
  | { ok: true; value: unknown }
  | { ok: false; message: string; line?: number; column?: number; title: 'JSON syntax error' | 'Cannot be saved as written' };

/**
 * Parses the editor's text; on a syntax error, or a number JSON cannot carry
 * as written (12345678901234567891 would be saved as 12345678901234567000,
 * 1e400 as null: the server refuses them), says where (line and column)
 * before anything is sent.
 *
 * The place of a syntax error is found by the console itself
 * (findSyntaxError): browsers name no position for many errors (Chromium's
 * "Unexpected token ',', ..." is not valid JSON" has none, Firefox gives
 * its own wording), so relying on their messages left most errors unplaced.
 */
export function parseJson(text: string): Parsed {
  if (text.trim() === '') return { ok: false, title: 'JSON syntax error', message: 'empty: a value is required (e.g. null, {} or "")' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const found = findSyntaxError(text);
    // The scanner and the engine agree on every text; should they not, the engine's word stands, unplaced.
    if (found === null) return { ok: false, title: 'JSON syntax error', message: (err as Error).message };
    return { ok: false, title: 'JSON syntax error', message: found.message, ...place(text, found.offset) };
  }
  const unfaithful = findUnfaithfulNumber(text);
  if (unfaithful !== null) return { ok: false, title: 'Cannot be saved as written', message: describeUnfaithfulNumber(unfaithful), ...place(text, unfaithful.offset) };
  return { ok: true, value };
}

function place(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  return { line: before.split('\n').length, column: before.length - before.lastIndexOf('\n') };
}

export interface SyntaxProblem { offset: number; message: string }

const isDigit = (c: number) => c >= 48 && c <= 57;
const HEX = /^[0-9a-fA-F]{4}$/;
const VALUE_KINDS = 'a value (a string in double quotes, a number, true, false, null, an object or an array)';

/**
 * The first place where `text` stops being JSON (RFC 8259, as JSON.parse
 * reads it) and what is wrong there, or null when the text is JSON.
 * Iterative: nesting as deep as JSON.parse takes costs no stack.
 */
export function findSyntaxError(text: string): SyntaxProblem | null {
  const n = text.length;
  let i = 0;
  const stack: number[] = []; // 123 `{` or 91 `[` for each open container
  const fail = (offset: number, message: string): SyntaxProblem => ({ offset, message });
  const found = (at: number): string => {
    if (at >= n) return 'the end of the text';
    const word = /[A-Za-z_$][\w$]*/y;
    word.lastIndex = at;
    const m = word.exec(text);
    if (m) return `the word ${m[0]}`;
    const quoted = /"(?:[^"\\\n]|\\.){0,40}"/y;
    quoted.lastIndex = at;
    const q = quoted.exec(text);
    if (q) return `the string ${q[0]}`;
    const ch = String.fromCodePoint(text.codePointAt(at) as number);
    return `'${ch}'`;
  };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else break;
    }
  };
  const string = (): SyntaxProblem | null => {
    const start = i;
    i++; // the opening quote
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 34) { i++; return null; }
      if (c < 32) return fail(i, c === 10 ? 'a line break inside a string: close the string first, or write the break as \\n' : 'a control character inside a string: write it escaped (\\t, \\n or \\u00XX)');
      if (c === 92) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!HEX.test(text.slice(i + 2, i + 6))) return fail(i, '\\u must be followed by four hexadecimal digits');
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else return fail(i, `${e === undefined ? 'a lone \\ at the end' : `\\${e} is not an escape JSON knows`} (it knows \\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX)`);
        continue;
      }
      i++;
    }
    return fail(start, 'this string is never closed (no closing ")');
  };
  const number = (): SyntaxProblem | null => {
    if (text.charCodeAt(i) === 45) i++;
    if (!isDigit(text.charCodeAt(i))) return fail(i, `a digit was expected after '-', found ${found(i)}`);
    if (text.charCodeAt(i) === 48) {
      i++;
      if (isDigit(text.charCodeAt(i))) return fail(i, 'a number may not have a leading zero');
    } else while (isDigit(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) === 46) {
      i++;
      if (!isDigit(text.charCodeAt(i))) return fail(i, `a digit was expected after the decimal point, found ${found(i)}`);
      while (isDigit(text.charCodeAt(i))) i++;
    }
    const e = text.charCodeAt(i);
    if (e === 101 || e === 69) {
      i++;
      const s = text.charCodeAt(i);
      if (s === 43 || s === 45) i++;
      if (!isDigit(text.charCodeAt(i))) return fail(i, `a digit was expected in the exponent, found ${found(i)}`);
      while (isDigit(text.charCodeAt(i))) i++;
    }
    return null;
  };
  const memberName = (): SyntaxProblem | null => {
    ws();
    if (text.charCodeAt(i) === 39) return fail(i, "member names take double quotes (\"), not single quotes (')");
    if (text.charCodeAt(i) !== 34) {
      return fail(i, text.charCodeAt(i) === 125 ? "a member name in double quotes was expected after ',', found '}' (JSON allows no trailing comma)" : `a member name in double quotes was expected, found ${found(i)}`);
    }
    const bad = string();
    if (bad) return bad;
    ws();
    if (text.charCodeAt(i) !== 58) return fail(i, `':' was expected after the member name, found ${found(i)}`);
    i++;
    return null;
  };

  for (;;) {
    // A value is expected here.
    ws();
    const c = text.charCodeAt(i);
    if (i >= n) return fail(i, stack.length === 0 ? 'empty: a value is required (e.g. null, {} or "")' : `the text ends where ${VALUE_KINDS} was expected`);
    if (c === 123 || c === 91) {
      i++;
      ws();
      if (text.charCodeAt(i) === (c === 123 ? 125 : 93)) i++; // {} or []
      else {
        stack.push(c);
        if (c === 123) {
          const bad = memberName();
          if (bad) return bad;
        }
        continue;
      }
    } else if (c === 34) {
      const bad = string();
      if (bad) return bad;
    } else if (c === 45 || isDigit(c)) {
      const bad = number();
      if (bad) return bad;
    } else if (text.startsWith('true', i)) i += 4;
    else if (text.startsWith('false', i)) i += 5;
    else if (text.startsWith('null', i)) i += 4;
    else if (c === 39) return fail(i, "strings take double quotes (\"), not single quotes (')");
    else if (c === 93 && stack[stack.length - 1] === 91) return fail(i, "a value was expected after ',', found ']' (JSON allows no trailing comma)");
    else return fail(i, `${VALUE_KINDS} was expected, found ${found(i)}`);

    // After a value: close containers, or a comma leads to the next value.
    for (;;) {
      ws();
      const open = stack[stack.length - 1];
      if (open === undefined) return i < n ? fail(i, `the value is complete, yet ${found(i)} follows it`) : null;
      const d = text.charCodeAt(i);
      const close = open === 123 ? 125 : 93;
      if (d === close) { i++; stack.pop(); continue; }
      if (d === 44) {
        i++;
        if (open === 123) {
          const bad = memberName();
          if (bad) return bad;
        }
        break;
      }
      const what = open === 123 ? "',' or '}' was expected after a member" : "',' or ']' was expected after an element";
      return fail(i, `${what}, found ${found(i)}${i < n && (d === 34 || d === 123 || d === 91 || isDigit(d)) ? ' (a comma is missing?)' : ''}`);
    }
  }
}
