import type { FastifyPluginAsync } from 'fastify';
import { DataLostError, MAX_KEY_BYTES, type ReplicationState } from '../../core/index.js';
import { hasAnyAdmin, type Principal } from '../auth.js';
import type { ServerPluginOptions } from '../context.js';
import { openApiDocument } from '../openapi.js';
import { HttpProblem, problem, toProblem } from '../problem.js';
import { replicationState, unacceptedLoss } from '../replication.js';
import { sendJson, sendProblem } from '../reply.js';

/** Liveness, readiness, metrics, this server's description (GET /v1/info) and its OpenAPI document. */
export const operationsRoutes: FastifyPluginAsync<ServerPluginOptions> = async (app, { ctx }) => {
  const { store, auth, metrics, limits } = ctx;
  app.get('/healthz', { config: { public: true } }, async (_req, reply) => sendJson(reply, 200, { status: 'ok' }));

  // Ready: the store answers a read and reports no loss of acknowledged writes that an operator has not accepted
  // (a load balancer then sends nobody to a server that would only answer ERR_DATA_LOST). The body says which member
  // of a replicated store serves, and the state the store reports (null: a store without replication).
  app.get('/readyz', { config: { public: true } }, async (_req, reply) => {
    let replication: ReplicationState | null = null;
    try {
      await store.get('__revkit/readyz');
      replication = await replicationState(store);
    } catch (err) {
      if (!DataLostError.is(err)) return sendProblem(reply, problem(503, 'ERR_UNAVAILABLE', `the ${store.backend} store is not reachable`), { 'retry-after': '1' });
      const lost = toProblem(err).problem;
      return sendProblem(reply, { ...lost, replication: await replicationState(store).catch(() => null) }, {});
    }
    const loss = unacceptedLoss(store, replication);
    if (loss) return sendProblem(reply, { ...toProblem(loss).problem, replication }, {});
    return sendJson(reply, 200, { status: 'ready', backend: store.backend, serving: replication?.serving ?? null, replication });
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
    combinableUpdates: ctx.combinableUpdates,
    principal: { name: (req.principal as Principal).name, scopes: (req.principal as Principal).scopes },
    // Which member serves, the members' roles, what an acknowledgement means, a detected loss; null without replication.
    // A failure to ask is the store's error (a 503), as any other operation's.
    replication: await replicationState(store),
  }));
};
