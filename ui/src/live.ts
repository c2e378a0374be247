import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { allows, type Api, type Scope } from './api';
import { tail, type TailStatus } from './sse';
import { Notice } from './widgets';

/** Events kept on screen; older ones drop off the end. */
const KEEP = 1000;

interface LiveEvent { id: string; type: string; key: string; revision: number; writer?: string; value?: unknown }

interface Props { api: Api; scopes: Scope[]; initialPrefix: string }

/** A tail of changes under a prefix, resuming after a dropped connection from the last event id. */
export function LiveTail(p: Props) {
  const [prefix, setPrefix] = useState(p.initialPrefix);
  const [watching, setWatching] = useState<string | null>(null);
  const [status, setStatus] = useState<TailStatus | null>(null);
  const [events, setEvents] = useState<LiveEvent[]>([]);
  const [paused, setPaused] = useState(false);
  const [held, setHeld] = useState<LiveEvent[]>([]);
  // Counted apart from `held`, which keeps only the newest KEEP.
  const [heldCount, setHeldCount] = useState(0);
  const [filter, setFilter] = useState('');
  const [received, setReceived] = useState(0);
  const pausedRef = useRef(false);
  pausedRef.current = paused;

  useEffect(() => {
    if (watching === null) return;
    const controller = new AbortController();
    const url = p.api.url('v1/watch');
    url.searchParams.set('prefix', watching);
    void tail({
      url,
      headers: p.api.headers(),
      signal: controller.signal,
      onStatus: setStatus,
      onMessage: (m) => {
        if (m.event !== 'put' && m.event !== 'delete') return;
        const ev = { ...JSON.parse(m.data), id: m.id ?? '' } as LiveEvent;
        setReceived((n) => n + 1);
        if (pausedRef.current) {
          setHeld((h) => [ev, ...h].slice(0, KEEP));
          setHeldCount((n) => n + 1);
        }
        else setEvents((es) => [ev, ...es].slice(0, KEEP));
      },
    });
    return () => controller.abort();
  }, [watching, p.api]);

  const start = (e: Event) => {
    e.preventDefault();
    setEvents([]);
    setHeld([]);
    setHeldCount(0);
    setReceived(0);
    setWatching(prefix);
  };
  const resume = () => {
    setEvents((es) => [...held, ...es].slice(0, KEEP));
    setHeld([]);
    setHeldCount(0);
    setPaused(false);
  };
  const needle = filter.trim().toLowerCase();
  const shown = needle === '' ? events : events.filter((ev) => ev.key.toLowerCase().includes(needle) || ev.type === needle);
  const readable = allows(p.scopes, 'read', prefix);

  return html`<section class="live" aria-labelledby="live-heading">
    <h2 id="live-heading">Live changes</h2>
    <form class="live-controls" onSubmit=${start}>
      <label for="live-prefix">Prefix</label>
      <input id="live-prefix" value=${prefix} spellcheck=${false} autocomplete="off" onInput=${(e: Event) => setPrefix((e.target as HTMLInputElement).value)} />
      <button type="submit" class="primary" disabled=${!readable}>${watching === null ? 'Start' : 'Restart'}</button>
      ${watching !== null ? html`<button type="button" onClick=${() => { setWatching(null); setStatus(null); }}>Stop</button>` : null}
      ${watching !== null ? (paused
        ? html`<button type="button" onClick=${resume} aria-describedby="held-count">Resume</button>`
        : html`<button type="button" onClick=${() => setPaused(true)}>Pause</button>`) : null}
    </form>
    ${!readable ? html`<${Notice} note=${{ kind: 'info', text: 'This token cannot read that prefix.' }} />` : null}
    <div class="live-status">
      <p role="status" aria-live="polite" data-testid="live-status">${statusText(status, watching)}</p>
      ${paused ? html`<p id="held-count" class="held" role="status" aria-live="polite" data-testid="held-count">Paused: ${heldCount} new change${heldCount === 1 ? '' : 's'} waiting.</p>` : null}
    </div>
    <label for="live-filter">Filter shown changes (key contains, or put / delete)</label>
    <input id="live-filter" type="search" value=${filter} onInput=${(e: Event) => setFilter((e.target as HTMLInputElement).value)} />
    <p class="muted">${shown.length} shown of ${events.length} kept, ${received} received since start.</p>
    <ol class="events" aria-label="Changes, newest first" data-testid="events">
      ${shown.map((ev) => html`<li key=${ev.id} data-id=${ev.id} data-key=${ev.key} class=${ev.type}>
        <span class="rev">r${ev.revision}</span> <span class="type">${ev.type}</span> <span class="key">${ev.key}</span>
        ${ev.writer ? html` <span class="muted">by ${ev.writer}</span>` : null}
        ${ev.type === 'put' ? html` <code>${preview(ev.value)}</code>` : null}
      </li>`)}
    </ol>
  </section>`;
}

function statusText(s: TailStatus | null, watching: string | null): string {
  if (watching === null || s === null) return 'Not watching.';
  const where = `under ${JSON.stringify(watching)}`;
  const from = s.lastId !== undefined ? ` from event id ${s.lastId}` : '';
  switch (s.state) {
    case 'connecting': return `Connecting ${where}…`;
    case 'live': return `Live ${where}${s.reconnects > 0 ? `; resumed after ${s.reconnects} reconnect${s.reconnects === 1 ? '' : 's'}${from}` : ''}.`;
    case 'reconnecting': return `Connection lost (${s.reason}); reconnecting ${where} to resume${from}.`;
    case 'failed': return `Stopped: ${s.reason}`;
  }
}

function preview(v: unknown): string {
  const t = JSON.stringify(v) ?? '';
  return t.length > 120 ? `${t.slice(0, 117)}…` : t;
}
