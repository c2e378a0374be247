// The revkit web console (served by `revkit serve` at /ui/). Preact + htm:
// components and templates without a JSX step, 6 kB gzipped together.
import { html } from 'htm/preact';
import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Api, ApiError, allows, type Info } from './api';
import { KeyBrowser } from './browser';
import { CreateKey } from './create';
import { KeyView } from './keyview';
import { LiveTail } from './live';
import { ReplicationPanel } from './replication';
import { Notice, writerFor, type Note } from './widgets';

const TOKEN = 'revkit.console.token';

function Login({ onToken, note }: { onToken(t: string): void; note: Note }) {
  const [token, setToken] = useState('');
  return html`<main class="login">
    <h1>revkit console</h1>
    <form onSubmit=${(e: Event) => { e.preventDefault(); if (token.trim()) onToken(token.trim()); }}>
      <label for="token" class="field">Bearer token</label>
      <input id="token" type="password" autocomplete="off" value=${token} aria-describedby="token-hint" onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)} autofocus />
      <p id="token-hint" class="hint">Kept in this tab's session storage only; it is gone when the tab closes. The console shows what the token's scopes allow.</p>
      <button type="submit" class="primary">Open</button>
      <${Notice} note=${note} />
    </form>
  </main>`;
}

function App() {
  const [token, setToken] = useState<string | null>(() => sessionStorage.getItem(TOKEN));
  const [info, setInfo] = useState<Info | null>(null);
  const [note, setNote] = useState<Note>(null);
  const [needsToken, setNeedsToken] = useState(false);
  // Bumped on every sign-in, so the same token typed again is tried again.
  const [attempt, setAttempt] = useState(0);
  const api = useMemo(() => new Api(token, (err) => {
    if (!token) return;
    sessionStorage.removeItem(TOKEN);
    setNote({ kind: 'error', text: `The server refused the token: ${err.message}` });
    setNeedsToken(true);
  }), [token, attempt]);
  const [tab, setTab] = useState<'keys' | 'live'>('keys');
  const [folder, setFolder] = useState('');
  const [selected, setSelected] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    let current = true;
    api.info().then((i) => {
      if (!current) return;
      setInfo(i);
      setNeedsToken(false);
      if (token) sessionStorage.setItem(TOKEN, token);
    }, (err: Error) => {
      if (!current) return;
      setInfo(null);
      if (err instanceof ApiError && err.status === 401) {
        sessionStorage.removeItem(TOKEN);
        setNeedsToken(true);
        setNote(token ? { kind: 'error', text: `The server refused the token: ${err.message}` } : null);
      } else setNote({ kind: 'error', text: `Cannot reach the server: ${err.message}` });
    });
    return () => { current = false; };
  }, [api]);

  if (needsToken) return html`<${Login} onToken=${(t: string) => { setToken(t); setAttempt((n) => n + 1); }} note=${note} />`;
  if (!info) return html`<main><${Notice} note=${note ?? { kind: 'info', text: 'Connecting…' }} /></main>`;

  const scopes = info.principal.scopes;
  const writer = writerFor(info.principal.name);
  const canWriteAnything = scopes.some((s) => s.access !== 'read');
  const signOut = () => { sessionStorage.removeItem(TOKEN); setToken(null); setNeedsToken(true); setNote(null); };
  const tabs = [['keys', 'Keys'], ['live', 'Live tail']] as const;
  // A key opened from the new-key form: show it in its folder.
  const openInFolder = (k: string) => { setCreating(false); setFolder(k.slice(0, k.lastIndexOf('/') + 1)); setSelected(k); };

  return html`<div class="shell">
    <header class="top">
      <h1>revkit</h1>
      <div role="tablist" aria-label="Console sections" class="tabs">
        ${tabs.map(([id, label]) => html`<button type="button" role="tab" id=${`section-${id}`} aria-selected=${tab === id ? 'true' : 'false'} aria-controls=${`section-panel-${id}`} tabindex=${tab === id ? 0 : -1}
          onClick=${() => setTab(id)} onKeyDown=${(e: KeyboardEvent) => { if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') { const next = id === 'keys' ? 'live' : 'keys'; setTab(next); document.getElementById(`section-${next}`)?.focus(); } }}>${label}</button>`)}
      </div>
      <p class="who"><span>${info.principal.name}</span> <span class=${canWriteAnything ? 'badge' : 'badge ro'} data-testid="access">${canWriteAnything ? scopes.map((s) => `${s.access} ${s.prefix || '*'}`).join(', ') : 'read-only'}</span> <span class="muted">${info.backend}</span>
        ${token ? html`<button type="button" class="link" onClick=${signOut}>Sign out</button>` : null}</p>
      <${ReplicationPanel} api=${api} initial=${info.replication} backend=${info.backend} />
    </header>
    <main id="section-panel-keys" role="tabpanel" aria-labelledby="section-keys" class="keys" hidden=${tab !== 'keys'}>
      <${KeyBrowser} api=${api} scopes=${scopes} folder=${folder} setFolder=${(f: string) => setFolder(f)} selected=${selected} reload=${reload}
        canCreate=${canWriteAnything} onCreate=${() => { setCreating(true); setSelected(null); }} onSelect=${(k: string) => { setCreating(false); setSelected(k); }} />
      <div class="detail">
        ${creating ? html`<${CreateKey} api=${api} scopes=${scopes} folder=${folder} writer=${writer}
            onCreated=${(k: string) => { openInFolder(k); setReload((n) => n + 1); }} onCancel=${() => setCreating(false)} onOpen=${openInFolder} />`
          : selected ? html`<${KeyView} key=${selected} api=${api} keyName=${selected} canWrite=${allows(scopes, 'write', selected)} writer=${writer} onChanged=${() => setReload((n) => n + 1)} />`
            : html`<p class="muted placeholder">Pick a key to see its value, revisions and history.</p>`}
      </div>
    </main>
    <main id="section-panel-live" role="tabpanel" aria-labelledby="section-live" hidden=${tab !== 'live'}>
      <${LiveTail} api=${api} scopes=${scopes} initialPrefix=${folder} />
    </main>
  </div>`;
}

const root = document.getElementById('app') as HTMLElement;
root.textContent = ''; // the "Loading…" line
render(html`<${App} />`, root);
