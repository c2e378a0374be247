import type { ServerResponse } from 'node:http';
import type { WatchEvent } from '../core/index.js';

export interface WatchStreamOptions {
  /**
   * Bytes a stream may have queued for a reader that does not keep up. Past
   * it the stream is closed; the reader resumes with Last-Event-ID.
   */
  maxBufferBytes: number;
  heartbeatMs: number;
  /** Announced before any event (an `id:` with no data), so a reader cut before its first event resumes there. */
  startId: string | undefined;
  /** Events of this revision already delivered (a resume from `<revision>.<index>`). */
  skip: { revision: number; count: number } | undefined;
  /** Set on shutdown or when the client leaves. */
  signal: AbortSignal;
  /** Bytes queued after each write, for the metric of the largest queue. */
  onBuffered(bytes: number): void;
  /** What to tell the reader when the store's watch fails. */
  describeError(err: unknown): unknown;
}

export type WatchStreamEnd = 'done' | 'overflow' | 'error';

/** Time a reader that fell behind gets to read the rest before its connection is cut. */
const OVERFLOW_GRACE_MS = 1_000;

/**
 * Writes a store's watch to an SSE response. Events are taken from the store
 * as they come and written at once: waiting for a slow reader would let the
 * store's queue grow without bound instead. The response's own queue is
 * bounded by `maxBufferBytes` (plus one event): a reader past it is closed.
 */
export async function streamWatch(res: ServerResponse, events: AsyncIterator<WatchEvent>, options: WatchStreamOptions): Promise<WatchStreamEnd> {
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), options.heartbeatMs);
  heartbeat.unref();
  let lastId = options.startId;
  res.write(`retry: 1000\n${lastId !== undefined ? `id: ${lastId}\n` : ''}\n: watching\n\n`);
  // Stores deliver the events of one revision together, in the same order on every watch.
  let revision = -1;
  let index = 0;
  try {
    for (;;) {
      const r = await events.next();
      if (r.done || options.signal.aborted || res.destroyed) return 'done';
      const ev = r.value;
      index = ev.revision === revision ? index + 1 : 0;
      revision = ev.revision;
      if (options.skip && ev.revision === options.skip.revision && index < options.skip.count) continue;
      lastId = `${ev.revision}.${index}`;
      res.write(sseEvent(ev, lastId));
      options.onBuffered(res.writableLength);
      if (res.writableLength > options.maxBufferBytes) {
        const note = { reason: 'slow-reader', detail: `the reader fell more than ${options.maxBufferBytes} bytes behind; reconnect with Last-Event-ID`, lastEventId: lastId };
        res.end(`id: ${lastId}\nevent: overflow\ndata: ${JSON.stringify(note)}\n\n`);
        setTimeout(() => res.destroy(), OVERFLOW_GRACE_MS).unref();
        return 'overflow';
      }
    }
  } catch (err) {
    if (!res.destroyed) res.write(`event: error\ndata: ${JSON.stringify(options.describeError(err))}\n\n`);
    return 'error';
  } finally {
    clearInterval(heartbeat);
    void events.return?.()?.catch(() => undefined);
    if (!res.destroyed && !res.writableEnded) res.end();
  }
}

function sseEvent(ev: WatchEvent, id: string): string {
  const data = ev.type === 'put' ? { type: 'put', ...entryFields(ev) } : { type: 'delete', key: ev.key, revision: ev.revision };
  return `id: ${id}\nevent: ${ev.type}\ndata: ${JSON.stringify(data)}\n\n`;
}

function entryFields(ev: Extract<WatchEvent, { type: 'put' }>): Record<string, unknown> {
  const e = ev.entry;
  return {
    key: e.key, revision: e.revision, createdRevision: e.createdRevision, updatedAt: e.updatedAt,
    ...(e.expiresAt !== undefined ? { expiresAt: e.expiresAt } : {}),
    ...(e.writer !== undefined ? { writer: e.writer } : {}),
    value: e.value,
  };
}
