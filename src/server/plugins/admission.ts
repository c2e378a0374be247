import type { FastifyReply, FastifyRequest } from 'fastify';
import { fastifyPlugin } from 'fastify-plugin';
import type { ServerPluginOptions } from '../context.js';
import { HttpProblem } from '../problem.js';

/**
 * Who may make a request: nobody once the server is closing (503), and on a
 * route not marked `public`, only a bearer token the server knows (401,
 * auth.ts), whose principal is then `req.principal`. Scopes are checked by
 * each route (requireAccess), which knows the key or prefix asked for.
 */
export const admissionPlugin = fastifyPlugin<ServerPluginOptions>(async (app, { ctx }) => {
  app.decorateRequest('principal', null);
  const admit = (req: FastifyRequest, reply: FastifyReply, isPublic: boolean): void => {
    if (ctx.closing) {
      reply.header('connection', 'close');
      throw new HttpProblem(503, 'the server is shutting down', {}, { 'retry-after': '1' });
    }
    if (!isPublic) req.principal = ctx.auth.authenticateOn(req.raw.socket, req.headers.authorization);
  };
  const admitHook = (isPublic: boolean) => (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void => {
    try {
      admit(req, reply, isPublic);
    } catch (err) {
      return done(err as Error);
    }
    done();
  };
  // Each route gets its own hook, built once here with whether it is public in its closure:
  // req.routeOptions builds a fresh object on every read. Callback hooks, not async
  // ones: no promise per hook per request.
  app.addHook('onRoute', (r) => {
    // A new array: the HEAD route fastify derives from a GET route gets hooks of its own.
    r.onRequest = [admitHook(r.config?.public === true), ...[r.onRequest ?? []].flat()];
  });
  // Requests no route matched (the not-found handler) pass the same checks.
  const admitUnmatched = admitHook(false);
  app.addHook('onRequest', (req, reply, done) => (req.is404 ? admitUnmatched(req, reply, done) : done()));
}, { name: 'revkit-admission' });
