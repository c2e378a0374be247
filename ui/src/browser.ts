import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { allows, type Api, type Scope } from './api';
import { crumbs, loadPage, type Page, type Row } from './keys';
import { Notice, type Note } from './widgets';

export const ROWS_PER_PAGE = 50;

interface Props {
  api: Api;
  scopes: Scope[];
  folder: string;
  setFolder(prefix: string): void;
  selected: string | null;
  onSelect(key: string): void;
  onCreate(): void;
  canCreate: boolean;
  /** Bumped after a write, to reload the page shown. */
  reload: number;
}

/** Folders and keys under `folder`, a page at a time; search narrows to keys starting with the text. */
export function KeyBrowser(p: Props) {
  const [search, setSearch] = useState('');
  const [query, setQuery] = useState('');
  // cursors[i] is the `after` of page i; page 0 starts at the beginning.
  const scope = `${p.folder}\u0000${query}`;
  const [paging, setPaging] = useState<{ scope: string; cursors: Array<string | undefined> }>({ scope, cursors: [undefined] });
  const cursors = paging.scope === scope ? paging.cursors : [undefined];
  const setCursors = (c: Array<string | undefined>) => setPaging({ scope, cursors: c });
  const [page, setPage] = useState<Page | null>(null);
  const [note, setNote] = useState<Note>(null);
  const [loading, setLoading] = useState(false);
  const list = useRef<HTMLUListElement>(null);
  const searchBox = useRef<HTMLInputElement>(null);
  const moved = useRef(false);
  // Entering a folder starts a new search there, with the focus in the search box.
  const go = (prefix: string) => {
    setSearch('');
    setQuery('');
    moved.current = true;
    p.setFolder(prefix);
  };
  useEffect(() => {
    if (!moved.current) return;
    moved.current = false;
    searchBox.current?.focus();
  }, [p.folder]);
  const index = cursors.length - 1;

  useEffect(() => {
    const t = setTimeout(() => setQuery(search), 200);
    return () => clearTimeout(t);
  }, [search]);

  useEffect(() => {
    let current = true;
    const prefix = p.folder + query;
    if (!allows(p.scopes, 'read', prefix)) {
      // Above the token's scopes: show the scopes it can read as folders instead of listing.
      const rows: Row[] = p.scopes.filter((s) => s.prefix.startsWith(prefix) && s.prefix !== prefix)
        .map((s) => ({ kind: 'folder', prefix: s.prefix, label: s.prefix.slice(p.folder.length) }));
      setPage({ rows, next: undefined, requests: 0 });
      setNote(rows.length === 0 ? { kind: 'info', text: 'This token cannot read here.' } : null);
      return;
    }
    setLoading(true);
    loadPage((pre, after, limit) => p.api.list(pre, after, limit), { folder: p.folder, search: query, after: cursors[index], rows: ROWS_PER_PAGE },
      (partial) => { if (current) setPage({ rows: partial, next: undefined, requests: 0 }); })
      .then((pg) => { if (current) { setPage(pg); setNote(null); } })
      .catch((err: Error) => { if (current) setNote({ kind: 'error', text: `Listing failed: ${err.message}` }); })
      .finally(() => { if (current) setLoading(false); });
    return () => { current = false; };
  }, [p.api, p.scopes, scope, index, cursors[index], p.reload]);

  // Arrow keys move between rows; Home/End jump to the ends (Tab still leaves the list).
  const onKeyDown = (e: KeyboardEvent) => {
    const buttons = [...(list.current?.querySelectorAll<HTMLButtonElement>('button.row') ?? [])];
    const at = buttons.indexOf(document.activeElement as HTMLButtonElement);
    const to = e.key === 'ArrowDown' ? at + 1 : e.key === 'ArrowUp' ? at - 1 : e.key === 'Home' ? 0 : e.key === 'End' ? buttons.length - 1 : null;
    if (to === null || buttons.length === 0) return;
    e.preventDefault();
    buttons[Math.max(0, Math.min(buttons.length - 1, to))]?.focus();
  };

  const rows = page?.rows ?? [];
  return html`<section class="browser" aria-labelledby="keys-heading">
    <div class="browser-head">
      <h2 id="keys-heading">Keys</h2>
      ${p.canCreate ? html`<button type="button" class="primary" onClick=${p.onCreate}>New key</button>` : null}
    </div>
    <nav aria-label="Folder path" class="crumbs">
      <ol>${crumbs(p.folder).map((c, i, all) => html`<li>${i === all.length - 1
        ? html`<span aria-current="location">${c.label}</span>`
        : html`<button type="button" class="link" onClick=${() => go(c.prefix)}>${c.label}</button>`}</li>`)}</ol>
    </nav>
    <label class="field" for="key-search">Keys in this folder starting with</label>
    <input id="key-search" ref=${searchBox} type="search" autocomplete="off" spellcheck=${false} placeholder="prefix…" value=${search}
      onInput=${(e: Event) => setSearch((e.target as HTMLInputElement).value)} />
    <${Notice} note=${note} />
    <ul class="rows" ref=${list} onKeyDown=${onKeyDown} aria-label=${`Folders and keys in ${p.folder || 'the root'}`} aria-busy=${loading ? 'true' : 'false'} data-testid="key-list">
      ${rows.map((r) => html`<li key=${r.kind === 'key' ? `k:${r.key}` : `f:${r.prefix}`}>${r.kind === 'folder'
        ? html`<button type="button" class="row folder" onClick=${() => go(r.prefix)} aria-label=${`Folder ${r.label}`}><span aria-hidden="true">▸ </span>${r.label}</button>`
        : html`<button type="button" class="row key" data-key=${r.key} aria-current=${p.selected === r.key ? 'true' : undefined} onClick=${() => p.onSelect(r.key)}>
            <span class="label">${r.label}</span><span class="rev" aria-label=${`revision ${r.entry.revision}`}>r${r.entry.revision}</span>${r.entry.expiresAt !== undefined ? html`<span class="ttl" title="has a TTL">⏱<span class="sr-only">expires</span></span>` : null}
          </button>`}</li>`)}
      ${!loading && page && rows.length === 0 ? html`<li class="empty">No keys here.</li>` : null}
    </ul>
    <div class="pager" role="group" aria-label="Pages">
      <button type="button" disabled=${index === 0} onClick=${() => setCursors(cursors.slice(0, -1))}>← Previous</button>
      <span aria-live="polite">Page ${index + 1}</span>
      <button type="button" disabled=${!page || page.next === undefined || loading} onClick=${() => page && setCursors([...cursors, page.next])}>Next →</button>
    </div>
  </section>`;
}
