import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, isTombstone, type Api, type HistoryRecord } from './api';
import { pretty } from './json';
import { Diff, Notice, time, type Note } from './widgets';

const LIMIT = 200;

interface Props {
  api: Api;
  keyName: string;
  canWrite: boolean;
  writer: string;
  reload: number;
  onReverted(revision: number): void;
  /** The key changed under a revert: the key view reads it again (and this history with it). */
  onStale(): void;
}

const change = (r: HistoryRecord) => (isTombstone(r) ? 'deleted' : r.createdRevision === r.revision ? 'created' : 'updated');

const text = (r: HistoryRecord | undefined) => (r === undefined ? '' : isTombstone(r) ? '(deleted)' : pretty(r.value));

/** Revisions newest first, tombstones included; a diff between any two; revert as a guarded write. */
export function History(p: Props) {
  const [records, setRecords] = useState<HistoryRecord[] | null>(null);
  const [a, setA] = useState<number | null>(null);
  const [b, setB] = useState<number | null>(null);
  const [note, setNote] = useState<Note>(null);
  const [busy, setBusy] = useState(false);

  const load = async () => {
    try {
      const rs = await p.api.history(p.keyName, LIMIT);
      setRecords(rs);
      setB(rs[0]?.revision ?? null);
      setA(rs[1]?.revision ?? rs[0]?.revision ?? null);
    } catch (err) {
      setNote({ kind: 'error', text: `Could not read the history: ${(err as Error).message}` });
    }
  };
  useEffect(() => { void load(); }, [p.keyName, p.reload]);

  if (records === null) return html`<${Notice} note=${note ?? { kind: 'info', text: 'Loading history…' }} />`;
  const head = records[0];
  const find = (rev: number | null) => records.find((r) => r.revision === rev);

  const revert = async (r: HistoryRecord) => {
    if (!head || isTombstone(r)) return;
    setBusy(true);
    try {
      // Guarded by the newest revision shown (a deletion's revision matches too), so a change since is never overwritten.
      const meta = await p.api.put(p.keyName, JSON.stringify(r.value), { ifMatch: head.revision, writer: p.writer });
      setNote(null);
      p.onReverted(meta.revision);
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        p.onStale();
        setNote({ kind: 'error', text: 'Not reverted: the key changed meanwhile. The history is reloaded; check it and revert again if you still mean to.' });
      } else setNote({ kind: 'error', text: `Not reverted: ${(err as Error).message}` });
    } finally {
      setBusy(false);
    }
  };

  return html`<div class="history">
    <${Notice} note=${note} />
    <table data-testid="history">
      <caption>History of ${p.keyName}, newest first${records.length === LIMIT ? ` (the newest ${LIMIT})` : ''}. Pick two revisions to compare.</caption>
      <thead><tr><th scope="col">Revision</th><th scope="col">Change</th><th scope="col">Writer</th><th scope="col">Time</th><th scope="col">Compare</th>${p.canWrite ? html`<th scope="col"><span class="sr-only">Revert</span></th>` : null}</tr></thead>
      <tbody>${records.map((r) => html`<tr key=${r.revision} class=${isTombstone(r) ? 'tombstone' : ''} data-revision=${r.revision}>
        <th scope="row">${r.revision}</th>
        <td>${change(r)}</td>
        <td>${r.writer ?? '—'}</td>
        <td>${time(r.updatedAt)}</td>
        <td class="pick">
          <label><input type="radio" name="diff-a" checked=${a === r.revision} onChange=${() => setA(r.revision)} /><span class="sr-only">Compare from revision ${r.revision}</span><span aria-hidden="true">from</span></label>
          <label><input type="radio" name="diff-b" checked=${b === r.revision} onChange=${() => setB(r.revision)} /><span class="sr-only">Compare to revision ${r.revision}</span><span aria-hidden="true">to</span></label>
        </td>
        ${p.canWrite ? html`<td>${!isTombstone(r) && r !== head ? html`<button type="button" disabled=${busy} onClick=${() => revert(r)} aria-label=${`Revert to revision ${r.revision}`}>Revert to this</button>` : null}</td>` : null}
      </tr>`)}</tbody>
    </table>
    ${a !== null && b !== null ? html`<${Diff} id="history-diff" a=${text(find(a))} b=${text(find(b))} labels=${[`revision ${a}`, `revision ${b}`]} />` : null}
  </div>`;
}
