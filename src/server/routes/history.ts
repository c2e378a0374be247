import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerContext } from '../context.js';
import { recordJson } from '../entries.js';
import { queryInt } from '../request.js';
import { sendJson } from '../reply.js';

/**
 * GET /v1/kv/{key}/history: past revisions of a key, newest first. Not a route
 * of its own: a key may hold any character, so `/history` can only be told
 * from a key's last level on the raw path (request.ts, keyOf), and the keys
 * plugin's one GET /v1/kv/* route hands such a request here once it has
 * checked read access.
 */
export async function sendHistory(ctx: ServerContext, req: FastifyRequest, reply: FastifyReply, key: string): Promise<FastifyReply> {
  const limit = queryInt(req.query as Record<string, unknown>, 'limit');
  const records = await ctx.store.history(key, limit !== undefined ? { limit } : {});
  return sendJson(reply, 200, { key, records: records.map(recordJson) });
}
