// A Server-Sent Events reader over fetch. EventSource cannot send the bearer
// token, so the stream is read by hand; it resumes after a dropped connection
// by sending the last event id it saw (Last-Event-ID), which the server
// continues from without a gap, across a server restart too.

import { SseParser, type SseMessage } from '../../src/http/sse-parser.js';

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
