import { fastifyPlugin } from 'fastify-plugin';
import type { ServerPluginOptions } from '../context.js';
import { HttpProblem } from '../problem.js';

/**
 * The DNS-rebinding guard (host-check.ts) as the first onRequest hook of every
 * request: a page that rebound its own name to this address is refused (421)
 * before authentication or routing. The check depends on the address bound,
 * so listen() sets it; until then every Host passes.
 */
export const hostGuardPlugin = fastifyPlugin<ServerPluginOptions>(async (app, { ctx }) => {
  app.addHook('onRequest', (req, _reply, done) => {
    const hostAllowed = ctx.hostAllowed;
    if (hostAllowed === undefined || hostAllowed(req.headers.host)) return done();
    done(new HttpProblem(421, 'this server does not answer for that Host; start it with --allowed-host to add a name'));
  });
}, { name: 'revkit-host-guard' });
