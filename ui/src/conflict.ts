// A save refused with 412: the three versions (what the user started from,
// what is stored now, what they typed) and the two changes between them, so a
// user sees whose change is whose before writing over anything. "Stored now"
// follows the key while the conflict is shown (a watch on the key, and a
// Refresh button), and a re-apply is guarded by the revision shown: if the key
// changed again by then, nothing is written and the newest version is shown.
import { html } from 'htm/preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, revisionOfEtag, type Api, type Entry, type WriteOptions } from './api';
import { pretty } from './json';
import { reapply } from './merge';
import { tail, type TailStatus } from './sse';
import { Diff, Notice, time, type Note } from './widgets';

/**
 * What is stored now: a value; none because it was deleted (the tombstone's
 * revision guards writing it back); or none without a trace (it expired):
 * then only If-None-Match: * guards a write.
 */
export type Stored =
  | { kind: 'value'; revision: number; entry: Entry }
  | { kind: 'deleted'; revision: number; writer?: string; updatedAt?: number }
  | { kind: 'absent'; revision: null };

export async function readStored(api: Api, key: string): Promise<Stored> {
  try {
    const entry = await api.get(key);
    return { kind: 'value', revision: entry.revision, entry };
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
    const revision = revisionOfEtag(err.problem.currentEtag as string | null);
    if (err.problem.deleted !== true || revision === null) return { kind: 'absent', revision: null };
    const s: Stored = { kind: 'deleted', revision };
    if (typeof err.problem.writer === 'string') s.writer = err.problem.writer;
    if (typeof err.problem.updatedAt === 'number') s.updatedAt = err.problem.updatedAt;
    return s;
  }
}

const by = (writer: string | undefined) => (writer ? `by ${writer}` : 'writer not recorded');

/** One line of metadata for a version: revision, writer, time. */
export function describeStored(s: Stored): string {
  switch (s.kind) {
    case 'value': return `Revision ${s.revision} · ${by(s.entry.writer)} · ${time(s.entry.updatedAt)}`;
    case 'deleted': return `Deleted at revision ${s.revision} · ${by(s.writer)}${s.updatedAt !== undefined ? ` · ${time(s.updatedAt)}` : ''}`;
    case 'absent': return 'No value now (it expired): nothing to merge into';
  }
}

const storedText = (s: Stored) => (s.kind === 'value' ? pretty(s.entry.value) : s.kind === 'deleted' ? `(deleted at revision ${s.revision})` : '(no value)');

function watchText(s: TailStatus | null): string {
  if (s === null || s.state === 'connecting') return 'Connecting to watch this key…';
  switch (s.state) {
    case 'live': return 'Watching this key: "What is stored now" refreshes by itself when it changes.';
    case 'reconnecting': return `Watching this key was interrupted (${s.reason}); reconnecting. Refresh meanwhile before you re-apply.`;
    case 'failed': return `Not watching this key (${s.reason}): refresh before you re-apply.`;
  }
}

export interface ConflictProps {
  api: Api;
  keyName: string;
  writer: string;
  /** The entry the user's edit started from. */
  base: Entry;
  /** What the user typed (parsed). */
  mine: unknown;
  ttlMs: number | undefined;
  /** Written: the key view reloads and says `text`. */
  onSaved(text: string): void;
  onDiscard(): void;
}

export function ConflictView(p: ConflictProps) {
  const [stored, setStored] = useState<Stored | null>(null);
  const [watch, setWatch] = useState<TailStatus | null>(null);
  const [note, setNote] = useState<Note>(null);
  const [announce, setAnnounce] = useState('');
  const [busy, setBusy] = useState(false);
  // Reads may finish out of order: the one started last that has finished is what is shown.
  const reads = useRef({ started: 0, shown: 0 });
  const shownRevision = useRef<number | null | undefined>(undefined);
  const mounted = useRef(true);
  useEffect(() => () => { mounted.current = false; }, []);

  /** Reads what is stored now and shows it (unless a read started later has already been shown). */
  const refresh = async (): Promise<Stored | null> => {
    const n = ++reads.current.started;
    try {
      const s = await readStored(p.api, p.keyName);
      if (mounted.current && n > reads.current.shown) {
        reads.current.shown = n;
        if (shownRevision.current !== undefined && shownRevision.current !== s.revision) {
          setAnnounce(`Refreshed: what is stored now is ${s.kind === 'value' ? `revision ${s.revision}, ${by(s.entry.writer)}` : s.kind === 'deleted' ? `deleted at revision ${s.revision}` : 'no value'}.`);
        }
        shownRevision.current = s.revision;
        setStored(s);
      }
      return s;
    } catch (err) {
      if (mounted.current) setNote({ kind: 'error', text: `Could not read what is stored now: ${(err as Error).message}` });
      return null;
    }
  };

  // Follow the key while the conflict is shown. Every change refreshes "stored now"; so does each
  // (re)connection, which covers a change made before the watch started or while it was down.
  useEffect(() => {
    void refresh();
    const controller = new AbortController();
    const url = p.api.url('v1/watch');
    url.searchParams.set('key', p.keyName);
    void tail({
      url,
      headers: p.api.headers(),
      signal: controller.signal,
      onStatus: (s) => {
        setWatch(s);
        if (s.state === 'live') void refresh();
      },
      onMessage: (m) => { if (m.event === 'put' || m.event === 'delete') void refresh(); },
    });
    return () => controller.abort();
  }, [p.api, p.keyName]);

  const manualRefresh = async () => {
    const before = stored?.revision;
    const s = await refresh();
    if (s !== null && s.revision === before) setAnnounce(`Checked: still ${s.kind === 'value' ? `revision ${s.revision}` : s.kind === 'deleted' ? `deleted at revision ${s.revision}` : 'no value'}.`);
  };

  // What a re-apply would write over what is shown.
  const result = useMemo(() => (stored === null ? undefined : stored.kind === 'value' ? reapply(p.base.value, p.mine, stored.entry.value) : p.mine), [stored, p.base, p.mine]);
  const baseText = useMemo(() => pretty(p.base.value), [p.base]);
  const mineText = useMemo(() => pretty(p.mine), [p.mine]);
  const nowText = useMemo(() => (stored === null ? '' : storedText(stored)), [stored]);
  const resultText = useMemo(() => (result === undefined ? '' : pretty(result)), [result]);

  /** Writes over exactly the version shown as stored now (If-Match of its revision). */
  const reapplyOnTop = async () => {
    const shown = stored;
    if (shown === null || result === undefined) return;
    const guard: WriteOptions = shown.revision === null ? { ifNoneMatch: '*' } : { ifMatch: shown.revision };
    setBusy(true);
    try {
      const meta = await p.api.put(p.keyName, JSON.stringify(result), { ...guard, writer: p.writer, ...(p.ttlMs !== undefined ? { ttlMs: p.ttlMs } : {}) });
      p.onSaved(`${shown.kind === 'value' ? 'Re-applied your edit on top; saved as' : 'Wrote your value again; saved as'} revision ${meta.revision}.`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        const now = await refresh();
        if (mounted.current) {
          setNote({ kind: 'error', text: `Not saved: the key changed again before your write arrived${now ? ` (now ${now.kind === 'value' ? `revision ${now.revision}, ${by(now.entry.writer)}` : now.kind === 'deleted' ? `deleted at revision ${now.revision}` : 'no value'})` : ''}. Nothing was overwritten. The newest version is shown below: check it, then re-apply again or discard your edit.` });
        }
      } else if (mounted.current) setNote({ kind: 'error', text: `Not saved: ${(err as Error).message}` });
    } finally {
      if (mounted.current) setBusy(false);
    }
  };

  const nowLabel = stored === null ? 'stored now' : stored.kind === 'value' ? `revision ${stored.revision} (stored now, ${by(stored.entry.writer)})` : stored.kind === 'deleted' ? `deleted at revision ${stored.revision}` : 'no value now';
  const baseLabel = `revision ${p.base.revision} (you started from)`;
  const action = stored === null ? 'Re-apply my edit on top'
    : stored.kind === 'value' ? `Re-apply my edit on top of revision ${stored.revision}`
      : stored.kind === 'deleted' ? `Write my value again (deleted at revision ${stored.revision})`
        : 'Write my value again (If-None-Match: *)';

  return html`<section class="conflict" aria-labelledby="conflict-heading" data-testid="conflict">
    <h3 id="conflict-heading">Conflict: the key changed while you edited it</h3>
    <${Notice} note=${note} />
    <div class="versions">
      <section class="version" aria-labelledby="version-base-heading" data-testid="version-base">
        <h4 id="version-base-heading">What you started from</h4>
        <p class="vmeta" data-testid="version-base-meta">${describeStored({ kind: 'value', revision: p.base.revision, entry: p.base })}</p>
        <pre tabindex="0" aria-labelledby="version-base-heading">${baseText}</pre>
      </section>
      <section class="version now" aria-labelledby="version-now-heading" data-testid="version-now" aria-busy=${stored === null ? 'true' : 'false'}>
        <h4 id="version-now-heading">What is stored now</h4>
        <p class="vmeta" data-testid="version-now-meta">${stored === null ? 'Reading…' : describeStored(stored)}</p>
        <pre tabindex="0" aria-labelledby="version-now-heading">${nowText}</pre>
      </section>
      <section class="version mine" aria-labelledby="version-mine-heading" data-testid="version-mine">
        <h4 id="version-mine-heading">What you typed</h4>
        <p class="vmeta" data-testid="version-mine-meta">Not saved · would be written ${by(p.writer)}</p>
        <pre tabindex="0" aria-labelledby="version-mine-heading">${mineText}</pre>
      </section>
    </div>
    ${stored !== null ? html`
      <section class="change" aria-labelledby="diff-theirs-heading" data-testid="diff-theirs">
        <h4 id="diff-theirs-heading">What the other writer changed (${stored.kind === 'value' ? `revision ${p.base.revision} → ${stored.revision}` : stored.kind === 'deleted' ? `deleted it at revision ${stored.revision}` : 'it expired'})</h4>
        <${Diff} a=${baseText} b=${nowText} labels=${[baseLabel, nowLabel]} />
      </section>
      <section class="change" aria-labelledby="diff-mine-heading" data-testid="diff-mine">
        <h4 id="diff-mine-heading">What you changed (revision ${p.base.revision} → your edit)</h4>
        <${Diff} a=${baseText} b=${mineText} labels=${[baseLabel, 'what you typed']} />
      </section>
      <section class="change" aria-labelledby="diff-result-heading" data-testid="diff-result">
        <h4 id="diff-result-heading">${stored.kind === 'value' ? `What re-applying would save (on top of revision ${stored.revision})` : 'What writing your value again would save'}</h4>
        <${Diff} a=${nowText} b=${resultText} labels=${[nowLabel, 'the result']} />
      </section>` : null}
    <div class="actions">
      <button type="button" class="primary" onClick=${reapplyOnTop} disabled=${busy || stored === null}>${action}</button>
      <button type="button" onClick=${manualRefresh} disabled=${busy}>Refresh what is stored now</button>
      <button type="button" onClick=${p.onDiscard} disabled=${busy}>Discard my edit</button>
    </div>
    <p class="hint" role="status" aria-live="polite" data-testid="conflict-status">${watchText(watch)}${announce ? ` ${announce}` : ''}</p>
    <p class="hint">Re-applying takes the members you changed, added or removed (against the value you started from) onto the value stored now, and saves that with If-Match of the revision shown as stored now: if the key has changed again by then, nothing is written and the newest version is shown here.</p>
  </section>`;
}
