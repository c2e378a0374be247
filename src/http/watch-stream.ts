import { BackendError, RevkitError, roomIn, type AsyncQueue, type Entry, type WatchEvent, type WatchOptions } from '../core/index.js';
import { errorFromProblem, safeJson, type ProblemBody } from './problems.js';
import type { ReplicaPool } from './replica-pool.js';
import { SseParser } from './sse-parser.js';
import { replicaUnusable, transportError } from './transport-errors.js';

/** `<revision>.<index>` of an event, or a bare revision (the start of a stream). */
const EVENT_ID = /^\d+(\.\d+)?$/;

/**
 * Follows the server's watch stream (GET /v1/watch, SSE) into `queue` until
 * `signal` aborts or the queue closes, reconnecting after a dropped connection
 * with Last-Event-ID — to the next server of the pool at once when the one it
 * followed cannot serve (no answer, or an answer saying so): the servers share one store, so an event id means
 * the same on each, and the stream resumes there with no gap and no repeat.
 *
 * `calledAt`: when watch() was called. A watch "from now" asks the server
 * to start from what had committed by then on its clock (ServerClock): its
 * request reaches the server later, and a write made meanwhile, by any
 * process, is still delivered — a write made up to ~250 ms (plus the
 * network's delay) before watch() may be too. Until the stream announced
 * its start, a reconnect asks for the same moment again.
 */
export async function followWatchStream<T>(
  pool: ReplicaPool, options: WatchOptions, queue: AsyncQueue<WatchEvent<T>>, signal: AbortSignal, calledAt: number,
): Promise<void> {
  const q = new URLSearchParams();
  if (options.key !== undefined) q.set('key', options.key);
  else q.set('prefix', options.prefix ?? '');
  if (options.fromRevision !== undefined) q.set('fromRevision', String(options.fromRevision));
  // Resume point: the id of the last event that arrived (`<revision>.<index>`), or the starting revision.
  let lastId: string | undefined = options.fromRevision === undefined ? undefined : String(options.fromRevision);
  let failures = 0;
  while (!signal.aborted && !queue.closed) {
    const index = pool.pick();
    const transport = pool.transports[index] as (typeof pool.transports)[number];
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (lastId !== undefined) headers['last-event-id'] = lastId;
      else if (options.fromRevision === undefined) {
        let since = transport.clock.since(calledAt);
        if (since === undefined) {
          await transport.request('GET', '/healthz', { signal });
          since = transport.clock.since(calledAt);
        }
        if (since !== undefined) q.set('since', since); // undefined: a server that sends no clock (an older revkit)
      }
      const res = await transport.openStream(`/v1/watch?${q.toString()}`, { headers, signal, noTimeout: true });
      failures = 0;
      if (!res.body) throw new BackendError(`the revkit server at ${transport.server} sent a watch stream without a body`, { transient: true });
      try {
        // An event cut in the middle (a dropped connection) is never yielded: the parser yields complete events only,
        // and the stream resumes after the last one that arrived.
        // Every complete block with an id moves the resume point: an event, the start of the stream (an id with no data)
        // and `overflow` (we fell behind; the stream ends).
        const parser = new SseParser((id) => {
          if (EVENT_ID.test(id)) lastId = id;
        });
        const decoder = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          for (const msg of parser.feed(decoder.decode(chunk, { stream: true }))) {
            if (msg.event === 'error') {
              queue.fail(errorFromProblem(503, safeJson(msg.data) as ProblemBody));
              return;
            }
            if (msg.event !== 'put' && msg.event !== 'delete') continue;
            queue.push(watchEventOf<T>(msg.data));
          }
          // A consumer that does not read: the stream is not read either, so TCP holds the rest back and the
          // server's own bound applies (it ends a stream that far behind with `overflow`; we resume after the last event).
          const room = roomIn(queue);
          if (room) await room;
        }
      } catch (err) {
        if (signal.aborted || queue.closed) return;
        throw err instanceof SyntaxError
          ? new BackendError(`the revkit server at ${transport.server} sent a watch event that is not JSON`, { transient: false, cause: err })
          : transportError(transport.server, err, 'GET', false, res.status);
      }
      // The server ended the stream (shutdown): reconnect.
    } catch (err) {
      if (signal.aborted || queue.closed) return;
      if (RevkitError.is(err) && !(BackendError.is(err) && err.transient)) {
        queue.fail(err);
        return;
      }
      if (++failures > 20) {
        queue.fail(RevkitError.is(err) ? err : transportError(transport.server, err, 'GET', false, undefined));
        return;
      }
      if (replicaUnusable(err)) pool.leave(index);
    }
    if (signal.aborted || queue.closed) return;
    // Another server to go to: at once. The same one again: after a pause that grows.
    if (pool.pick() === index) await abortableDelay(Math.min(2000, 50 * 2 ** failures), signal);
  }
}

/** The watch event a `put` or `delete` message carries (SyntaxError when its data is not JSON). */
function watchEventOf<T>(data: string): WatchEvent<T> {
  const event = JSON.parse(data) as { type: 'put' | 'delete'; key: string; revision: number; value?: unknown } & Record<string, unknown>;
  if (event.type === 'put') {
    const { type: _type, ...entry } = event;
    return { type: 'put', key: event.key, revision: event.revision, entry: entry as unknown as Entry<T> };
  }
  return { type: 'delete', key: event.key, revision: event.revision };
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
