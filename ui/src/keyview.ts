import { html } from 'htm/preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, revisionOfEtag, type Api, type Entry } from './api';
import { ConflictView } from './conflict';
import { History } from './history';
import { parseJson, pretty } from './json';
import { Notice, time, until, type Note } from './widgets';

interface Props {
  api: Api;
  keyName: string;
  canWrite: boolean;
  writer: string;
  onChanged(): void;
}

/** A key that has no value: never written, or deleted (then its tombstone revision guards a re-create or revert). */
interface Missing { deleted: boolean; revision: number | null }

/** Saved with If-Match and refused: the entry the user started from and what they typed (what is there now, ConflictView reads and follows). */
interface Conflict { id: number; base: Entry; mine: unknown; ttlMs: number | undefined }

export function KeyView(p: Props) {
  const [entry, setEntry] = useState<Entry | null>(null);
  const [missing, setMissing] = useState<Missing | null>(null);
  const [draft, setDraft] = useState('');
  const [ttl, setTtl] = useState('');
  const [note, setNote] = useState<Note>(null);
  const [conflict, setConflict] = useState<Conflict | null>(null);
  const [busy, setBusy] = useState(false);
  const [tab, setTab] = useState<'value' | 'history'>('value');
  const [historyReload, setHistoryReload] = useState(0);
  const [, tick] = useState(0);
  const dialog = useRef<HTMLDialogElement>(null);

  const load = async (message?: Note) => {
    try {
      const e = await p.api.get(p.keyName);
      setEntry(e);
      setMissing(null);
      setDraft(pretty(e.value));
      setNote(message ?? null);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        setEntry(null);
        setMissing({ deleted: err.problem.deleted === true, revision: revisionOfEtag(err.problem.currentEtag as string | null) });
        setDraft('');
        setNote(message ?? null);
      } else setNote({ kind: 'error', text: `Could not read the key: ${(err as Error).message}` });
    }
    setHistoryReload((n) => n + 1);
  };

  // Mounted once per key (the parent keys it by name), so no state of another key is ever shown.
  useEffect(() => { void load(); }, [p.keyName, p.api]);

  // The expiry countdown.
  useEffect(() => {
    if (entry?.expiresAt === undefined) return;
    const t = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, [entry?.expiresAt]);

  // Values may be up to a MiB: parse and print once per change, not on every tick of the expiry countdown.
  const parsed = useMemo(() => parseJson(draft), [draft]);
  const original = useMemo(() => (entry ? pretty(entry.value) : ''), [entry]);
  const dirty = entry !== null && draft !== original;
  const ttlMs = ttl.trim() === '' ? undefined : Math.round(Number(ttl) * 1000);
  const ttlOk = ttlMs === undefined || (Number.isSafeInteger(ttlMs) && ttlMs > 0);

  const saved = async (text: string) => {
    setConflict(null);
    setTtl('');
    await load({ kind: 'ok', text });
    p.onChanged();
  };

  /** Guarded write of the edit over the revision the user saw; a refusal becomes a conflict to resolve. */
  const save = async (e: Event) => {
    e.preventDefault();
    if (!entry || !parsed.ok || !ttlOk) return;
    const value = parsed.value;
    setBusy(true);
    try {
      const meta = await p.api.put(p.keyName, JSON.stringify(value), { ifMatch: entry.revision, writer: p.writer, ...(ttlMs !== undefined ? { ttlMs } : {}) });
      await saved(`Saved as revision ${meta.revision}.`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        setConflict((c) => ({ id: (c?.id ?? 0) + 1, base: entry, mine: value, ttlMs }));
        setNote({ kind: 'error', text: `Not saved: the key changed while you edited it (you started from revision ${entry.revision}). Compare the three versions below, then re-apply your edit on top of what is stored now, or discard it.` });
      } else setNote({ kind: 'error', text: `Not saved: ${(err as Error).message}` });
    } finally {
      setBusy(false);
    }
  };

  const discard = () => {
    setConflict(null);
    void load({ kind: 'info', text: 'Your edit was discarded; showing the current value.' });
  };

  const confirmDelete = async () => {
    dialog.current?.close();
    if (!entry) return;
    setBusy(true);
    try {
      const r = await p.api.delete(p.keyName, { ifMatch: entry.revision, writer: p.writer });
      await load({ kind: 'ok', text: `Deleted at revision ${r.revision}.` });
      p.onChanged();
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) await load({ kind: 'error', text: 'Not deleted: the key changed since you loaded it. The current value is shown; delete again if you still mean to.' });
      else setNote({ kind: 'error', text: `Not deleted: ${(err as Error).message}` });
    } finally {
      setBusy(false);
    }
  };

  const headingId = 'key-heading';
  return html`<section class="keyview" aria-labelledby=${headingId}>
    <h2 id=${headingId} class="keyname"><span class="sr-only">Key </span>${p.keyName}</h2>
    ${entry ? html`<dl class="meta">
      <div><dt>Revision</dt><dd data-testid="revision">${entry.revision}</dd></div>
      <div><dt>Created at revision</dt><dd>${entry.createdRevision}</dd></div>
      <div><dt>Last writer</dt><dd data-testid="writer">${entry.writer ?? '—'}</dd></div>
      <div><dt>Updated</dt><dd>${time(entry.updatedAt)}</dd></div>
      <div><dt>Expires</dt><dd data-testid="expires">${entry.expiresAt === undefined ? 'never (no TTL)' : html`${until(entry.expiresAt)} <span class="muted">(${time(entry.expiresAt)})</span>`}</dd></div>
    </dl>` : null}
    ${missing ? html`<p class="muted" data-testid="missing">${missing.deleted ? `Deleted (revision ${missing.revision}). Its history is kept below.` : 'No such key.'}</p>` : null}
    <div role="tablist" aria-label="Key views" class="tabs">
      ${(['value', 'history'] as const).map((t) => html`<button type="button" role="tab" id=${`tab-${t}`} aria-controls=${`panel-${t}`} aria-selected=${tab === t ? 'true' : 'false'} tabindex=${tab === t ? 0 : -1}
        onClick=${() => setTab(t)} onKeyDown=${(e: KeyboardEvent) => { if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') { const next = t === 'value' ? 'history' : 'value'; setTab(next); document.getElementById(`tab-${next}`)?.focus(); } }}>${t === 'value' ? 'Value' : 'History'}</button>`)}
    </div>
    <${Notice} note=${note} />
    ${tab === 'value' ? html`<div role="tabpanel" id="panel-value" aria-labelledby="tab-value">
      ${entry ? html`<form onSubmit=${save}>
        <label for="value-editor" class="field">Value (JSON)</label>
        <textarea id="value-editor" class="editor" spellcheck=${false} rows=${Math.min(24, Math.max(6, draft.split('\n').length + 1))} readOnly=${!p.canWrite || conflict !== null}
          aria-invalid=${parsed.ok ? 'false' : 'true'} aria-describedby="value-error"
          value=${draft} onInput=${(e: Event) => setDraft((e.target as HTMLTextAreaElement).value)}></textarea>
        <p id="value-error" class=${parsed.ok ? 'sr-only' : 'error'} role=${parsed.ok ? undefined : 'alert'} data-testid="json-error">${parsed.ok ? 'Valid JSON.' : `${parsed.title}${parsed.line !== undefined ? ` at line ${parsed.line}, column ${parsed.column}` : ''}: ${parsed.message}`}</p>
        ${p.canWrite && conflict === null ? html`<div class="actions">
          <label for="ttl" class="inline">TTL (seconds, optional)</label>
          <input id="ttl" class="ttl-input" inputmode="numeric" value=${ttl} aria-invalid=${ttlOk ? 'false' : 'true'} onInput=${(e: Event) => setTtl((e.target as HTMLInputElement).value)} />
          ${entry.expiresAt !== undefined && ttlMs === undefined ? html`<span class="hint">Saving without a TTL makes the key permanent.</span>` : null}
          <button type="button" onClick=${() => setDraft(original)} disabled=${!dirty}>Reset</button>
          <button type="button" onClick=${() => parsed.ok && setDraft(pretty(parsed.value))} disabled=${!parsed.ok}>Format</button>
          <button type="submit" class="primary" disabled=${busy || !parsed.ok || !ttlOk || (!dirty && ttlMs === undefined)}>Save (If-Match "${entry.revision}")</button>
          <button type="button" class="danger" onClick=${() => dialog.current?.showModal()} disabled=${busy}>Delete…</button>
        </div>` : null}
      </form>` : null}
      ${conflict ? html`<${ConflictView} key=${conflict.id} api=${p.api} keyName=${p.keyName} writer=${p.writer} base=${conflict.base} mine=${conflict.mine} ttlMs=${conflict.ttlMs}
        onSaved=${(text: string) => void saved(text)} onDiscard=${discard} />` : null}
      <dialog ref=${dialog} aria-labelledby="delete-title" class="confirm">
        <form method="dialog">
          <h3 id="delete-title">Delete ${p.keyName}?</h3>
          <p>Only if it is still at revision ${entry?.revision} (If-Match). Its history is kept.</p>
          <div class="actions">
            <button value="cancel" autofocus>Cancel</button>
            <button type="button" class="danger" onClick=${confirmDelete}>Delete</button>
          </div>
        </form>
      </dialog>
    </div>` : html`<div role="tabpanel" id="panel-history" aria-labelledby="tab-history">
      <${History} api=${p.api} keyName=${p.keyName} canWrite=${p.canWrite} writer=${p.writer} reload=${historyReload}
        onStale=${() => void load()} onReverted=${(rev: number) => { void load({ kind: 'ok', text: `Reverted: saved as revision ${rev}.` }); p.onChanged(); }} />
    </div>`}
  </section>`;
}
