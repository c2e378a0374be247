// The console's pure parts, in node: the folder paging over a real store's
// list(), the SSE reader fed in awkward chunks, the line diff, the re-apply merge
// and the JSON check. The browser tests cover them again end to end.
import { describe, expect, it } from 'vitest';
import { open } from '../../src/open.js';
import { diffLines } from '../../ui/src/diff.js';
import { findSyntaxError, parseJson } from '../../ui/src/json.js';
import { crumbs, loadPage, type Row } from '../../ui/src/keys.js';
import { reapply } from '../../ui/src/merge.js';
import { SseParser } from '../../src/http/sse-parser.js';
import type { Entry } from '../../ui/src/api.js';

const label = (r: Row) => (r.kind === 'folder' ? `${r.prefix}*` : r.key);

describe('folder paging over list()', () => {
  it('folds each folder into one row, skips its keys with one cursor jump, and pages without repeats or gaps', async () => {
    const store = await open('memory:');
    const keys = ['a', 'b/1', 'b/2', 'c', ...Array.from({ length: 500 }, (_, i) => `d/${String(i).padStart(3, '0')}`), 'e', 'f/x/1', 'f/y', 'g'];
    for (const k of keys) await store.put(k, 1);
    let calls = 0;
    const list = async (prefix: string, after: string | undefined, limit: number) => {
      calls++;
      return store.list({ prefix, ...(after !== undefined ? { after } : {}), limit }) as Promise<{ entries: Entry[]; cursor?: string }>;
    };
    const seen: string[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await loadPage(list, { folder: '', search: '', after, rows: 3 });
      seen.push(...page.rows.map(label));
      if (page.next === undefined) break;
      after = page.next;
    }
    expect(seen).toEqual(['a', 'b/*', 'c', 'd/*', 'e', 'f/*', 'g']);
    // 500 keys in d/ cost one jump, not 500 rows' worth of calls.
    expect(calls).toBeLessThan(12);

    const inside = await loadPage(list, { folder: 'f/', search: '', after: undefined, rows: 50 });
    expect(inside.rows.map(label)).toEqual(['f/x/*', 'f/y']);
    const searched = await loadPage(list, { folder: 'd/', search: '49', after: undefined, rows: 50 });
    expect(searched.rows.map(label)).toEqual(Array.from({ length: 10 }, (_, i) => `d/49${i}`));
    await store.close();
  });

  it('names the breadcrumb of a folder', () => {
    expect(crumbs('')).toEqual([{ prefix: '', label: '(root)' }]);
    expect(crumbs('a/b/')).toEqual([{ prefix: '', label: '(root)' }, { prefix: 'a/', label: 'a' }, { prefix: 'a/b/', label: 'b' }]);
  });
});

describe('SSE reader', () => {
  it('parses events split anywhere, CRLF included, and remembers the id of an id-only block', () => {
    const text = 'retry: 1000\r\nid: 7\r\n\r\n: watching\r\n\r\nid: 8.0\r\nevent: put\r\ndata: {"key":"a"}\r\n\r\nid: 8.1\nevent: delete\ndata: {"key":"b"}\n\n';
    for (let size = 1; size <= text.length; size++) {
      const p = new SseParser();
      const out = [];
      for (let i = 0; i < text.length; i += size) out.push(...p.feed(text.slice(i, i + size)));
      expect(out).toEqual([
        { id: '8.0', event: 'put', data: '{"key":"a"}' },
        { id: '8.1', event: 'delete', data: '{"key":"b"}' },
      ]);
      expect(p.lastId).toBe('8.1');
      expect(p.retryMs).toBe(1000);
    }
    const announced = new SseParser();
    expect(announced.feed('retry: 1000\nid: 41\n\n: watching\n\n')).toEqual([]);
    expect(announced.lastId).toBe('41');
  });
});

describe('diff, re-apply and JSON check', () => {
  it('diffs lines', () => {
    expect(diffLines('a\nb\nc', 'a\nx\nc')).toEqual([{ op: ' ', text: 'a' }, { op: '-', text: 'b' }, { op: '+', text: 'x' }, { op: ' ', text: 'c' }]);
    expect(diffLines('same', 'same')).toEqual([{ op: ' ', text: 'same' }]);
  });

  it('re-applies an edit on top of a value changed meanwhile, keeping both changes', () => {
    const base = { a: 1, b: { c: 1, d: 1 }, gone: true };
    const mine = { a: 2, b: { c: 1, d: 1 } };
    const current = { a: 1, b: { c: 5, d: 1 }, gone: true, added: 'x' };
    expect(reapply(base, mine, current)).toEqual({ a: 2, b: { c: 5, d: 1 }, added: 'x' });
    expect(reapply([1], [2], [3])).toEqual([2]);
    expect(reapply({ a: 1 }, { a: null }, { a: 1, b: 2 })).toEqual({ a: null, b: 2 });
    expect(reapply({ a: 1 }, { a: 1 }, { a: 3 })).toEqual({ a: 3 });
    const proto = reapply({}, JSON.parse('{"__proto__": {"x": 1}}'), {}) as Record<string, unknown>;
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(Object.hasOwn(proto, '__proto__')).toBe(true);
  });

  it('says where a JSON syntax error is', () => {
    expect(parseJson('{"a": 1}')).toEqual({ ok: true, value: { a: 1 } });
    const bad = parseJson('{\n  "a": 1,\n}');
    expect(bad.ok).toBe(false);
    expect(bad).toMatchObject({ line: 3, column: 1 });
    expect(parseJson('  ').ok).toBe(false);
  });

  it('places every syntax error itself, also those the engine names no position for', () => {
    const at = (text: string) => {
      const r = parseJson(text);
      return r.ok ? 'ok' : `${r.line}:${r.column} ${r.message}`;
    };
    // V8 says only "Unexpected token ',', ..." is not valid JSON" for these (no position).
    expect(at('{\n  "a": 1,\n  "b": ,\n}')).toMatch(/^3:8 .*found ','$/);
    expect(at('{\n  "a": 1,\n  "b": nul\n}')).toMatch(/^3:8 .*found the word nul$/);
    expect(at('{"a": tru}')).toMatch(/^1:7 /);
    expect(at("{'a': 1}")).toMatch(/^1:2 member names take double quotes/);
    expect(at('{\n "a": 1\n "b": 2}')).toMatch(/^3:2 ',' or '\}' was expected after a member, found the string "b" \(a comma is missing\?\)$/);
    expect(at('[1,]')).toMatch(/^1:4 .*no trailing comma/);
    expect(at('[1, 2')).toMatch(/^1:6 .*found the end of the text$/);
    expect(at('"abc')).toMatch(/^1:1 this string is never closed/);
    expect(at('{"a": "x\ny"}')).toMatch(/^1:9 a line break inside a string/);
    expect(at('"\\q"')).toMatch(/^1:2 \\q is not an escape/);
    expect(at('01')).toMatch(/^1:2 a number may not have a leading zero$/);
    expect(at('1.')).toMatch(/^1:3 /);
    expect(at('{"a": 1}}')).toMatch(/^1:9 the value is complete, yet '\}' follows it$/);
    expect(at('[{"a": [1, {"b": 2]}]')).toMatch(/^1:19 ',' or '\}' was expected/);
    // Deep nesting costs no stack.
    expect(findSyntaxError(`${'['.repeat(100_000)}${']'.repeat(100_000)}`)).toBeNull();
    expect(findSyntaxError(`${'['.repeat(100_000)}${']'.repeat(99_999)}`)).toMatchObject({ offset: 199_999 });
  });

  it('agrees with JSON.parse on which texts are JSON (mutations of valid texts)', () => {
    const seeds = ['{"a": [1, 2.5e-3, -0, true, false, null, "s\\n\\u00e9\\/"], "b": {"c": {}}, "d": []}', '[{"x": "y"}, 1e10, "\\"q\\"", -12.5E+7]', '  "str"  ', '0'];
    const alphabet = ' \t\n\r{}[],:"\\-+.eE0123456789truefalsn\'x/u\u0001é';
    let seed = 42;
    const rnd = (k: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % k; };
    const disagreements: string[] = [];
    for (let round = 0; round < 20_000; round++) {
      let t = seeds[rnd(seeds.length)] as string;
      for (let m = 0, ms = 1 + rnd(3); m < ms; m++) {
        const i = rnd(t.length + 1);
        const ch = alphabet[rnd(alphabet.length)] as string;
        const op = rnd(3);
        t = op === 0 ? t.slice(0, i) + t.slice(i + 1) : op === 1 ? t.slice(0, i) + ch + t.slice(i) : t.slice(0, i) + ch + t.slice(i + 1);
      }
      let valid = true;
      try { JSON.parse(t); } catch { valid = false; }
      const found = findSyntaxError(t);
      if (valid !== (found === null) || (found !== null && (found.offset < 0 || found.offset > t.length))) disagreements.push(JSON.stringify(t));
    }
    expect(disagreements).toEqual([]);
  });
});
