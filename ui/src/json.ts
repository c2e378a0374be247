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
 */
export function parseJson(text: string): Parsed {
  if (text.trim() === '') return { ok: false, title: 'JSON syntax error', message: 'empty: a value is required (e.g. null, {} or "")' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const pos = /position (\d+)/.exec(message);
    if (!pos) return { ok: false, title: 'JSON syntax error', message };
    // The place is given as line and column instead.
    return { ok: false, title: 'JSON syntax error', message: message.replace(/\s*\(line \d+ column \d+\)/, '').replace(/\s*(in JSON )?at position \d+/, ''), ...place(text, Number(pos[1])) };
  }
  const unfaithful = findUnfaithfulNumber(text);
  if (unfaithful !== null) return { ok: false, title: 'Cannot be saved as written', message: describeUnfaithfulNumber(unfaithful), ...place(text, unfaithful.offset) };
  return { ok: true, value };
}

function place(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  return { line: before.split('\n').length, column: before.length - before.lastIndexOf('\n') };
}
