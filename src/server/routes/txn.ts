import type { FastifyPluginAsync } from 'fastify';
import { assertKey } from '../../core/index.js';
import { requireAccess, type Principal } from '../auth.js';
import { validateValue, type ServerPluginOptions } from '../context.js';
import { etagOf } from '../etag.js';
import { HttpProblem } from '../problem.js';
import { sendJson } from '../reply.js';

/** POST /v1/txn: an atomic batch of checks and writes over many keys, committed with one revision. */
export const txnRoutes: FastifyPluginAsync<ServerPluginOptions> = async (app, { ctx }) => {
  const { store, limits } = ctx;
  app.post('/v1/txn', { config: { conflictStatus: 409 } }, async (req, reply) => {
    const ops = parseTxn(req.body, limits.maxTxnOps);
    const principal = req.principal as Principal;
    const checked = new Set<string>();
    for (const op of ops) {
      assertKey(op.key);
      requireAccess(principal, op.type === 'check' ? 'read' : 'write', op.key);
      if (op.type === 'check') checked.add(op.key);
    }
    if (ctx.requirePreconditions) {
      const unguarded = ops.filter((op) => op.type !== 'check' && !checked.has(op.key)).map((op) => op.key);
      if (unguarded.length > 0) {
        throw new HttpProblem(428, `this server requires conditional writes: add a check for ${unguarded.map((k) => JSON.stringify(k)).join(', ')}`, { keys: unguarded });
      }
    }
    for (const op of ops) if (op.type === 'set') await validateValue(ctx, op.key, op.value);
    const batch = store.atomic();
    for (const op of ops) {
      if (op.type === 'check') batch.check(op.key, op.revision);
      else if (op.type === 'set') batch.set(op.key, op.value, op.ttlMs !== undefined ? { ttlMs: op.ttlMs } : undefined);
      else batch.delete(op.key);
    }
    const { revision } = await batch.commit();
    reply.header('etag', etagOf(revision));
    return sendJson(reply, 200, { revision });
  });
};

type TxnOp =
  | { type: 'check'; key: string; revision: number | null }
  | { type: 'set'; key: string; value: unknown; ttlMs?: number }
  | { type: 'delete'; key: string };

function parseTxn(body: unknown, maxOps: number): TxnOp[] {
  const shape = 'the body must be { "ops": [ { "op": "check", "key", "revision": n | null } | { "op": "set", "key", "value", "ttlMs"? } | { "op": "delete", "key" } ] }';
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpProblem(400, shape);
  const ops = (body as { ops?: unknown }).ops;
  // No ops is a commit that writes nothing, as atomic().commit() is on every store: it answers a committed revision.
  if (!Array.isArray(ops)) throw new HttpProblem(400, shape);
  if (ops.length > maxOps) throw new HttpProblem(413, `a transaction has at most ${maxOps} operations`, { limit: maxOps });
  return ops.map((raw, i): TxnOp => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new HttpProblem(400, `ops[${i}]: ${shape}`);
    const op = raw as Record<string, unknown>;
    const kind = Object.hasOwn(op, 'op') ? op.op : op.type;
    if (typeof op.key !== 'string') throw new HttpProblem(400, `ops[${i}].key must be a string`);
    const key = op.key;
    if (kind === 'check') {
      const r = op.revision;
      if (r !== null && !(typeof r === 'number' && Number.isSafeInteger(r) && r >= 0)) throw new HttpProblem(400, `ops[${i}].revision must be a revision or null (must not exist)`);
      return { type: 'check', key, revision: r as number | null };
    }
    if (kind === 'set') {
      if (!Object.hasOwn(op, 'value')) throw new HttpProblem(400, `ops[${i}].value is missing`);
      const ttl = op.ttlMs;
      if (ttl !== undefined && !(typeof ttl === 'number' && Number.isSafeInteger(ttl) && ttl > 0)) throw new HttpProblem(400, `ops[${i}].ttlMs must be a positive integer`);
      return ttl === undefined ? { type: 'set', key, value: op.value } : { type: 'set', key, value: op.value, ttlMs: ttl as number };
    }
    if (kind === 'delete') return { type: 'delete', key };
    throw new HttpProblem(400, `ops[${i}].op must be "check", "set" or "delete"`);
  });
}
