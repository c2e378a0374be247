// The key browser's paging: a folder view (levels split at `/`) over the
// server's list API, one page at a time. A folder's keys are skipped with one
// jump of the list cursor, so a page costs a few requests however many keys
// the store holds; nothing ever loads every key.

import type { Entry } from './api';

export type Row =
  | { kind: 'folder'; prefix: string; label: string }
  | { kind: 'key'; key: string; label: string; entry: Entry };

/** Sorts after every key that starts with the folder (keys are compared as UTF-8 bytes; U+10FFFF is the largest). */
export const pastFolder = (folderPrefix: string): string => `${folderPrefix}\u{10FFFF}`;

export interface PageRequest {
  /** The folder shown ("" or ending in "/"). */
  folder: string;
  /** Keys must start with folder + search. */
  search: string;
  /** Continue after this key (undefined: from the start). */
  after: string | undefined;
  rows: number;
}

export interface Page {
  rows: Row[];
  /** `after` of the next page; undefined on the last page. */
  next: string | undefined;
  /** Requests made (for the figures). */
  requests: number;
}

type Lister = (prefix: string, after: string | undefined, limit: number) => Promise<{ entries: Entry[]; cursor?: string }>;

/** At most this many list calls for one page (a page of folders each holding many keys). */
const MAX_REQUESTS = 64;

/** List calls after a page that held one folder only: that folder is skipped and the next is likely big too. */
const PROBE = 4;

/** Loads one page of rows; `onRows` sees the rows so far after each list call, so the page can show them at once. */
export async function loadPage(list: Lister, req: PageRequest, onRows?: (rows: Row[]) => void): Promise<Page> {
  const rows: Row[] = [];
  let after = req.after;
  let requests = 0;
  let oneFolder = false;
  const prefix = req.folder + req.search;
  while (rows.length < req.rows && requests < MAX_REQUESTS) {
    if (requests > 0) onRows?.([...rows]);
    const page = await list(prefix, after, oneFolder ? PROBE : Math.max(req.rows - rows.length, 20));
    requests++;
    const before = rows.length;
    for (const entry of page.entries) {
      const rest = entry.key.slice(req.folder.length);
      const slash = rest.indexOf('/');
      const last = rows[rows.length - 1];
      if (slash < 0) {
        if (rows.length === req.rows) return { rows, next: cursorAfter(last), requests };
        rows.push({ kind: 'key', key: entry.key, label: rest, entry });
      } else {
        const folder = req.folder + rest.slice(0, slash + 1);
        if (last?.kind === 'folder' && last.prefix === folder) continue;
        if (rows.length === req.rows) return { rows, next: cursorAfter(last), requests };
        rows.push({ kind: 'folder', prefix: folder, label: rest.slice(0, slash + 1) });
      }
    }
    if (page.cursor === undefined) return { rows, next: undefined, requests };
    const last = rows[rows.length - 1];
    oneFolder = last?.kind === 'folder' && rows.length - before <= 1 && page.entries.every((e) => e.key.startsWith(last.prefix));
    after = last?.kind === 'folder' ? pastFolder(last.prefix) : page.cursor;
  }
  return { rows, next: after, requests };
}

function cursorAfter(row: Row | undefined): string | undefined {
  if (!row) return undefined;
  return row.kind === 'folder' ? pastFolder(row.prefix) : row.key;
}

/** "a/b/" → [["", "/"], ["a/", "a"], ["a/b/", "b"]]: the breadcrumb of a folder. */
export function crumbs(folder: string): Array<{ prefix: string; label: string }> {
  const out = [{ prefix: '', label: '(root)' }];
  let at = 0;
  for (let i = folder.indexOf('/'); i >= 0; i = folder.indexOf('/', i + 1)) {
    out.push({ prefix: folder.slice(0, i + 1), label: folder.slice(at, i) || '(empty)' });
    at = i + 1;
  }
  return out;
}
