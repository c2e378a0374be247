import { fastifyPlugin } from 'fastify-plugin';
import type { ServerPluginOptions } from '../context.js';

/** Every answer carries this server's clock: where an HttpStore's watch "from now" starts (revision-clock.ts). */
export const clockHeaderPlugin = fastifyPlugin<ServerPluginOptions>(async (app, { ctx: { clock } }) => {
  app.addHook('onSend', (_req, reply, payload, done) => {
    reply.header('revkit-clock', clock.reading());
    done(null, payload);
  });
}, { name: 'revkit-clock-header' });
