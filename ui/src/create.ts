import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { ApiError, allows, type Api, type Scope } from './api';
import { parseJson } from './json';
import { Notice, type Note } from './widgets';

interface Props { api: Api; scopes: Scope[]; folder: string; writer: string; onCreated(key: string): void; onCancel(): void; onOpen(key: string): void }

/** A new key: PUT with If-None-Match: *, so an existing key is never overwritten. */
export function CreateKey(p: Props) {
  const [key, setKey] = useState(p.folder);
  const [draft, setDraft] = useState('{\n  \n}');
  const [ttl, setTtl] = useState('');
  const [note, setNote] = useState<Note>(null);
  const [exists, setExists] = useState<string | null>(null);
  const parsed = parseJson(draft);
  const ttlMs = ttl.trim() === '' ? undefined : Math.round(Number(ttl) * 1000);
  const ttlOk = ttlMs === undefined || (Number.isSafeInteger(ttlMs) && ttlMs > 0);
  const writable = key !== '' && allows(p.scopes, 'write', key);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!parsed.ok || !writable || !ttlOk) return;
    setExists(null);
    try {
      await p.api.put(key, JSON.stringify(parsed.value), { ifNoneMatch: '*', writer: p.writer, ...(ttlMs !== undefined ? { ttlMs } : {}) });
      p.onCreated(key);
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        setExists(key);
        setNote({ kind: 'error', text: `Not created: ${key} already exists (nothing was overwritten).` });
      } else setNote({ kind: 'error', text: `Not created: ${(err as Error).message}` });
    }
  };

  return html`<section class="create" aria-labelledby="create-heading">
    <h2 id="create-heading">New key</h2>
    <form onSubmit=${submit}>
      <label for="new-key" class="field">Key</label>
      <input id="new-key" value=${key} spellcheck=${false} autocomplete="off" aria-invalid=${key === '' || writable ? 'false' : 'true'} aria-describedby="new-key-hint"
        onInput=${(e: Event) => setKey((e.target as HTMLInputElement).value)} />
      <p id="new-key-hint" class="hint">${key !== '' && !writable ? 'This token cannot write this key.' : 'Levels are separated by /.'}</p>
      <label for="new-value" class="field">Value (JSON)</label>
      <textarea id="new-value" class="editor" rows="10" spellcheck=${false} aria-invalid=${parsed.ok ? 'false' : 'true'} aria-describedby="new-value-error"
        value=${draft} onInput=${(e: Event) => setDraft((e.target as HTMLTextAreaElement).value)}></textarea>
      <p id="new-value-error" class=${parsed.ok ? 'sr-only' : 'error'} role=${parsed.ok ? undefined : 'alert'}>${parsed.ok ? 'Valid JSON.' : `${parsed.title}${parsed.line !== undefined ? ` at line ${parsed.line}, column ${parsed.column}` : ''}: ${parsed.message}`}</p>
      <div class="actions">
        <label for="new-ttl" class="inline">TTL (seconds, optional)</label>
        <input id="new-ttl" class="ttl-input" inputmode="numeric" value=${ttl} aria-invalid=${ttlOk ? 'false' : 'true'} onInput=${(e: Event) => setTtl((e.target as HTMLInputElement).value)} />
        <button type="submit" class="primary" disabled=${!parsed.ok || !writable || !ttlOk}>Create (If-None-Match: *)</button>
        <button type="button" onClick=${p.onCancel}>Cancel</button>
      </div>
      <${Notice} note=${note} />
      ${exists ? html`<button type="button" class="link" onClick=${() => p.onOpen(exists)}>Open ${exists}</button>` : null}
    </form>
  </section>`;
}
