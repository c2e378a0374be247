import { html } from 'htm/preact';
import { diffLines, type DiffLine } from './diff';

export type Note = { kind: 'ok' | 'error' | 'info'; text: string } | null;

/** A message read out by screen readers: errors interrupt (alert), the rest waits (status). */
export function Notice({ note }: { note: Note }) {
  if (!note) return html`<p class="notice" role="status" aria-live="polite"></p>`;
  return note.kind === 'error'
    ? html`<p class="notice error" role="alert">${note.text}</p>`
    : html`<p class="notice ${note.kind}" role="status" aria-live="polite">${note.text}</p>`;
}

const SIGN: Record<DiffLine['op'], string> = { ' ': ' ', '-': '−', '+': '+' };
const SPOKEN: Record<DiffLine['op'], string> = { ' ': 'unchanged', '-': 'removed', '+': 'added' };

/** Line diff of two texts; `labels` name the two sides (left = removed, right = added). */
export function Diff({ a, b, labels, id }: { a: string; b: string; labels: [string, string]; id?: string }) {
  const lines = diffLines(a, b);
  const n = lines.filter((l) => l.op !== ' ').length;
  return html`<figure class="diff" id=${id}>
    <figcaption><span class="del">− ${labels[0]}</span> <span class="ins">+ ${labels[1]}</span> <span class="muted">(${n === 0 ? 'identical' : `${n} line${n === 1 ? '' : 's'} differ`})</span></figcaption>
    <pre tabindex="0" aria-label=${`Differences: ${labels[0]} against ${labels[1]}`}>${lines.map((l) => html`<span class=${l.op === '-' ? 'del' : l.op === '+' ? 'ins' : 'same'}><span class="sr-only">${SPOKEN[l.op]}: </span><span aria-hidden="true">${SIGN[l.op]} </span>${l.text}</span>`)}</pre>
  </figure>`;
}

export const time = (ms: number | undefined): string => (ms === undefined ? '—' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'));

export function until(ms: number, now = Date.now()): string {
  const s = Math.round((ms - now) / 1000);
  if (s <= 0) return 'expired';
  if (s < 120) return `in ${s} s`;
  if (s < 7200) return `in ${Math.round(s / 60)} min`;
  return `in ${Math.round(s / 3600)} h`;
}

/** The writer header the console sends: the token's name, made header-safe. */
export const writerFor = (principal: string): string => `console-${principal.replace(/[^A-Za-z0-9_-]/g, '_')}`.slice(0, 64);
