// The console's pure parts, in node: the folder paging over a real store's
// list(), the SSE reader fed in awkward chunks, the line diff, the re-apply merge
// and the JSON check. The browser tests cover them again end to end.
import { describe, expect, it } from 'vitest';
import { open } from '../../src/open.js';
import { diffLines } from '../../ui/src/diff.js';
import { parseJson } from '../../ui/src/json.js';
import { crumbs, loadPage, type Row } from '../../ui/src/keys.js';
import { reapply } from '../../ui/src/merge.js';
import { SseParser } from '../../ui/src/sse.js';
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
});
