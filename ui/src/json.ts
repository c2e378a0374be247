// JSON as the console shows and checks it.

export const pretty = (value: unknown): string => JSON.stringify(value, null, 2);

export type Parsed = { ok: true; value: unknown } | { ok: false; message: string; line?: number; column?: number };

/** Parses the editor's text; on a syntax error, says where (line and column) before anything is sent. */
export function parseJson(text: string): Parsed {
  if (text.trim() === '') return { ok: false, message: 'empty: a value is required (e.g. null, {} or "")' };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    const message = (err as Error).message;
    const pos = /position (\d+)/.exec(message);
    if (!pos) return { ok: false, message };
    const before = text.slice(0, Number(pos[1]));
    const line = before.split('\n').length;
    const column = before.length - before.lastIndexOf('\n');
    // The place is given as line and column instead.
    return { ok: false, message: message.replace(/\s*\(line \d+ column \d+\)/, '').replace(/\s*(in JSON )?at position \d+/, ''), line, column };
  }
}
