// A Server-Sent Events reader over fetch. EventSource cannot send the bearer
// token, so the stream is read by hand; it resumes after a dropped connection
// by sending the last event id it saw (Last-Event-ID), which the server
// continues from without a gap, across a server restart too.

export interface SseMessage { id: string | undefined; event: string; data: string }

/** Incremental parser (WHATWG "event stream interpretation"). */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;
  /** The last id the stream named, also by an id-only block (the server announces its start that way). */
  lastId: string | undefined;
  retryMs: number | undefined;

  feed(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const nl = /\r\n|\r|\n/.exec(this.buffer);
      if (!nl) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (nl[0] === '\r' && nl.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, nl.index);
      this.buffer = this.buffer.slice(nl.index + nl[0].length);
      if (line === '') {
        if (this.id !== undefined) this.lastId = this.id;
        if (this.data.length > 0) out.push({ id: this.lastId, event: this.event || 'message', data: this.data.join('\n') });
        this.data = [];
        this.event = '';
        this.id = undefined;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.data.push(value);
      else if (field === 'event') this.event = value;
      else if (field === 'id' && !value.includes('\0')) this.id = value;
      else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    return out;
  }
}

export type TailStatus =
  | { state: 'connecting' | 'live'; lastId: string | undefined; reconnects: number }
  | { state: 'reconnecting'; lastId: string | undefined; reconnects: number; reason: string }
  | { state: 'failed'; lastId: string | undefined; reconnects: number; reason: string };

export interface TailOptions {
  url: URL;
  headers: Headers;
  signal: AbortSignal;
  onMessage(m: SseMessage): void;
  onStatus(s: TailStatus): void;
}

const MAX_BACKOFF_MS = 5_000;

/** Reads the stream until `signal` aborts, reconnecting with Last-Event-ID; gives up only on a 4xx. */
export async function tail(o: TailOptions): Promise<void> {
  let lastId: string | undefined;
  let reconnects = 0;
  let delay = 1_000;
  while (!o.signal.aborted) {
    o.onStatus({ state: reconnects === 0 ? 'connecting' : 'reconnecting', lastId, reconnects, reason: 'connecting' } as TailStatus);
    let reason = 'the stream ended';
    try {
      const headers = new Headers(o.headers);
      headers.set('accept', 'text/event-stream');
      if (lastId !== undefined) headers.set('last-event-id', lastId);
      const res = await fetch(o.url, { headers, signal: o.signal, cache: 'no-store' });
      if (res.status >= 400 && res.status < 500) {
        let detail = `HTTP ${res.status}`;
        try { detail = String((await res.json()).detail ?? detail); } catch { /* not JSON */ }
        o.onStatus({ state: 'failed', lastId, reconnects, reason: detail });
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      const parser = new SseParser();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let announced = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const m of parser.feed(value)) {
          lastId = m.id ?? lastId;
          o.onMessage(m);
        }
        if (parser.lastId !== undefined) lastId = parser.lastId;
        if (!announced) {
          announced = true;
          delay = parser.retryMs ?? 1_000;
          o.onStatus({ state: 'live', lastId, reconnects });
        }
      }
    } catch (err) {
      if (o.signal.aborted) return;
      reason = (err as Error).message || 'network error';
    }
    if (o.signal.aborted) return;
    reconnects++;
    o.onStatus({ state: 'reconnecting', lastId, reconnects, reason });
    await sleep(delay, o.signal);
    delay = Math.min(delay * 2, MAX_BACKOFF_MS);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
