import type { FastifyPluginAsync } from 'fastify';
import { UnsupportedError } from '../../core/index.js';
import { requireAccess, type Principal } from '../auth.js';
import type { ServerPluginOptions } from '../context.js';
import { replicationState } from '../replication.js';
import { sendJson } from '../reply.js';

/**
 * POST /v1/admin/accept-loss: an operator accepts a loss of acknowledged
 * writes the store detected (a failover to a replica that missed them), so
 * that operations stop failing with ERR_DATA_LOST. It touches the whole
 * store, so it needs admin access to every key (the prefix ""). A store with
 * nothing to accept losses with answers 501 ERR_UNSUPPORTED.
 */
export const adminRoutes: FastifyPluginAsync<ServerPluginOptions> = async (app, { ctx }) => {
  const { store } = ctx;
  app.post('/v1/admin/accept-loss', async (req, reply) => {
    requireAccess(req.principal as Principal, 'admin', '', 'prefix');
    if (!store.acceptLoss) throw new UnsupportedError('acceptLoss', store.backend);
    // What was accepted, read before accepting (null: nothing was lost, and accepting changes nothing).
    const before = await replicationState(store).catch(() => null);
    await store.acceptLoss();
    const after = await replicationState(store).catch(() => null);
    return sendJson(reply, 200, { accepted: before?.lost ?? null, replication: after });
  });
};
