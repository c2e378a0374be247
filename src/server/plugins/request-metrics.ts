import type { FastifyReply, FastifyRequest } from 'fastify';
import { fastifyPlugin } from 'fastify-plugin';
import type { ServerPluginOptions } from '../context.js';

/**
 * Counts and times every answered request by route, method and status
 * (metrics.ts); requests no route matched count as route `unmatched`. A watch
 * stream counts itself as it starts (routes/watch.ts).
 */
export const requestMetricsPlugin = fastifyPlugin<ServerPluginOptions>(async (app, { ctx: { metrics } }) => {
  // Each route gets its own hook, with its series looked up once (callback hooks: no promise per request).
  app.addHook('onRoute', (r) => {
    const count = metrics.forRoute(r.url);
    const onResponse = (req: FastifyRequest, reply: FastifyReply, done: () => void): void => {
      count(req.method, reply.statusCode, reply.elapsedTime / 1000);
      done();
    };
    // A new array: the HEAD route fastify derives from a GET route gets hooks of its own.
    r.onResponse = [onResponse, ...[r.onResponse ?? []].flat()];
  });
  const countUnmatched = metrics.forRoute('unmatched');
  app.addHook('onResponse', (req, reply, done) => {
    if (req.is404) countUnmatched(req.method, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
}, { name: 'revkit-request-metrics' });
