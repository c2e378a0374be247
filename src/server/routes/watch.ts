import type { FastifyPluginAsync } from 'fastify';
import { HistoryGoneError, type Store } from '../../core/index.js';
import { requireAccess, type Principal } from '../auth.js';
import type { ServerPluginOptions } from '../context.js';
import { HttpProblem, toProblem } from '../problem.js';
import { queryInt, queryString } from '../request.js';
import { parseSince } from '../revision-clock.js';
import { streamWatch } from '../sse.js';

/** GET /v1/watch: a store's watch as Server-Sent Events (sse.ts writes the stream), resumable with Last-Event-ID. */
export const watchRoutes: FastifyPluginAsync<ServerPluginOptions> = async (app, { ctx }) => {
  const { store, clock, metrics, limits, timeouts, watches } = ctx;
  const countWatch = metrics.forRoute('/v1/watch'); // counted as it starts: a stream its reader closes never finishes
  app.get('/v1/watch', { exposeHeadRoute: false }, async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    const key = queryString(q, 'key');
    const prefix = queryString(q, 'prefix');
    if (key !== undefined && prefix !== undefined) throw new HttpProblem(400, 'give key or prefix, not both');
    let fromRevision = queryInt(q, 'fromRevision', 0);
    // Event ids are `<revision>.<index of the event within that revision>`: a commit's events
    // share a revision, so resuming after the middle of one needs the index too. A plain
    // revision means "everything up to and including this revision".
    let skip: { revision: number; count: number } | undefined;
    const lastEventId = req.headers['last-event-id'];
    if (typeof lastEventId === 'string' && lastEventId.trim() !== '') {
      const m = /^(0|[1-9][0-9]{0,15})(?:\.(0|[1-9][0-9]{0,8}))?$/.exec(lastEventId.trim());
      if (!m) throw new HttpProblem(400, 'Last-Event-ID must be an event id (<revision>.<index>) or a revision');
      const revision = Number(m[1]);
      if (m[2] === undefined) fromRevision = revision;
      else {
        fromRevision = Math.max(0, revision - 1);
        skip = { revision, count: Number(m[2]) + 1 };
      }
    }
    if (key !== undefined) requireAccess(req.principal as Principal, 'read', key);
    else requireAccess(req.principal as Principal, 'read', prefix ?? '', 'prefix');
    let startId = typeof lastEventId === 'string' && lastEventId.trim() !== '' ? lastEventId.trim() : fromRevision?.toString();
    const since = queryString(q, 'since');
    if (since !== undefined && fromRevision === undefined) {
      // From the moment the client's watch() was called, on this server's clock: what had committed by then.
      const moment = parseSince(since);
      if (!moment) throw new HttpProblem(400, 'since must be <instance>;<milliseconds>, from a Revkit-Clock header');
      if (moment.instance !== clock.instance) {
        throw new HttpProblem(503, 'since names another run of this server (it restarted): read Revkit-Clock again', {}, { 'retry-after': '0' });
      }
      const at = clock.revisionAt(moment.at, moment.strict);
      if (at === undefined) {
        const gone = new HistoryGoneError(0, 0);
        gone.message = 'a watch "from now" cannot start where it was asked to: watch() was called before this run of the server began keeping time (it restarted), or too long ago; what was written meanwhile cannot be told apart — watch again, or from a revision';
        throw gone;
      }
      startId = String((fromRevision = at));
    }
    if (fromRevision === undefined) {
      // "From now" is pinned to a revision when the store can name its head, so that the
      // stream can announce it and a reader cut before its first event resumes with no gap.
      const head = await headRevision(store);
      if (head !== undefined) startId = String((fromRevision = head));
    }
    const controller = new AbortController();
    const iterable = store.watch({
      ...(key !== undefined ? { key } : { prefix: prefix ?? '' }),
      ...(fromRevision !== undefined ? { fromRevision } : {}),
      signal: controller.signal,
    });
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
      connection: 'close',
      'revkit-clock': clock.reading(),
    });
    countWatch('GET', 200);
    metrics.watchOpened();
    watches.add(controller);
    res.on('close', () => controller.abort());
    try {
      const end = await streamWatch(res, iterable[Symbol.asyncIterator](), {
        maxBufferBytes: limits.maxWatchBufferBytes,
        heartbeatMs: timeouts.heartbeatMs,
        startId,
        skip,
        signal: controller.signal,
        onBuffered: (bytes) => metrics.watchBuffered(bytes),
        describeError: (err) => {
          const { problem: p, internal } = toProblem(err);
          if (internal) ctx.onInternalError(err, { method: req.method, url: req.url });
          return p;
        },
      });
      if (end === 'overflow') metrics.watchOverflows.inc();
    } finally {
      watches.delete(controller);
      controller.abort();
      metrics.watchClosed();
    }
  });
};

/** Stores may name the revision a watch "from now" would start after; none of the interface requires it. */
async function headRevision(store: Store): Promise<number | undefined> {
  const source = store as Store & { headRevision?: () => Promise<number> };
  return typeof source.headRevision === 'function' ? source.headRevision() : undefined;
}
