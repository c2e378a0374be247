import type { FastifyPluginAsync } from 'fastify';
import { MAX_KEY_BYTES } from '../../core/index.js';
import { hasAnyAdmin, type Principal } from '../auth.js';
import type { ServerPluginOptions } from '../context.js';
import { openApiDocument } from '../openapi.js';
import { HttpProblem, problem } from '../problem.js';
import { sendJson, sendProblem } from '../reply.js';

/** Liveness, readiness, metrics, this server's description (GET /v1/info) and its OpenAPI document. */
export const operationsRoutes: FastifyPluginAsync<ServerPluginOptions> = async (app, { ctx }) => {
  const { store, auth, metrics, limits } = ctx;
  app.get('/healthz', { config: { public: true } }, async (_req, reply) => sendJson(reply, 200, { status: 'ok' }));

  app.get('/readyz', { config: { public: true } }, async (_req, reply) => {
    try {
      await store.get('__revkit/readyz');
      return sendJson(reply, 200, { status: 'ready', backend: store.backend });
    } catch {
      return sendProblem(reply, problem(503, 'ERR_UNAVAILABLE', `the ${store.backend} store is not reachable`), { 'retry-after': '1' });
    }
  });

  app.get('/metrics', async (req, reply) => {
    if (auth.enabled && !hasAnyAdmin(req.principal as Principal)) throw new HttpProblem(403, '/metrics needs a token with admin access', { access: 'admin', scope: 'admin on any prefix' });
    return reply.code(200).type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render());
  });

  app.get('/openapi.json', { config: { public: true } }, async (_req, reply) => sendJson(reply, 200, openApiDocument));

  app.get('/v1/info', async (req, reply) => sendJson(reply, 200, {
    backend: store.backend,
    capabilities: store.capabilities,
    requirePreconditions: ctx.requirePreconditions,
    limits: { ...limits, maxKeyBytes: MAX_KEY_BYTES },
    principal: { name: (req.principal as Principal).name, scopes: (req.principal as Principal).scopes },
  }));
};
