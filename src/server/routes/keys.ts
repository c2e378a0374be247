import type { FastifyPluginAsync } from 'fastify';
import { ConflictError, SKIP, deepEqual, isTombstone, type Entry, type UpdateOptions } from '../../core/index.js';
import { requireAccess, type Principal } from '../auth.js';
import { validateValue, type ServerPluginOptions } from '../context.js';
import { entryJson, metaJson, notFound, setEntryHeaders } from '../entries.js';
import { etagOf, strongMatch, weakMatch } from '../etag.js';
import { applyMergePatch } from '../merge-patch.js';
import { guardFailure, guardedWrite, plainGuard, readPreconditions, withWriteOptions } from '../preconditions.js';
import { HttpProblem } from '../problem.js';
import { JSON_TYPE, sendJson } from '../reply.js';
import { MERGE_PATCH, keyOf, mediaType, onlyQuery, queryInt, queryString, writerOf } from '../request.js';
import { sendHistory } from './history.js';

/** Keys: list (GET /v1/kv), and read, write, patch and delete one (/v1/kv/{key}); a key's history is routes/history.ts. */
export const keysRoutes: FastifyPluginAsync<ServerPluginOptions> = async (app, { ctx }) => {
  const { store, limits, metrics } = ctx;

  app.get('/v1/kv', async (req, reply) => {
    onlyQuery(req, 'prefix', 'after', 'limit');
    const q = req.query as Record<string, unknown>;
    const prefix = queryString(q, 'prefix') ?? '';
    const after = queryString(q, 'after');
    const limit = queryInt(q, 'limit');
    requireAccess(req.principal as Principal, 'read', prefix, 'prefix');
    const page = await store.list({ prefix, ...(after !== undefined ? { after } : {}), limit: Math.min(limit ?? limits.maxPageSize, limits.maxPageSize) });
    return sendJson(reply, 200, { entries: page.entries.map(entryJson), ...(page.cursor !== undefined ? { cursor: page.cursor } : {}) });
  });

  app.get('/v1/kv/*', async (req, reply) => {
    const { key, history } = keyOf(req);
    if (history) onlyQuery(req, 'key', 'limit');
    else onlyQuery(req, 'key');
    requireAccess(req.principal as Principal, 'read', key);
    if (history) return sendHistory(ctx, req, reply, key);
    const record = await store.getRecord(key);
    const pre = readPreconditions(req);
    const live = record !== null && !isTombstone(record);
    if (pre.ifMatch !== undefined && !(pre.ifMatch === '*' ? live : live && strongMatch(pre.ifMatch, (record as Entry).revision))) {
      throw new ConflictError([{ key, expected: 'value', actual: record?.revision ?? null }]);
    }
    if (!live) throw notFound(key, record);
    const entry = record as Entry;
    setEntryHeaders(reply, entry);
    if (pre.ifNoneMatch !== undefined && (pre.ifNoneMatch === '*' || weakMatch(pre.ifNoneMatch, entry.revision))) return reply.code(304).send();
    return reply.code(200).type(JSON_TYPE).send(JSON.stringify(entry.value));
  });

  app.put('/v1/kv/*', async (req, reply) => {
    const { key } = keyOf(req);
    onlyQuery(req, 'key', 'ttlMs');
    requireAccess(req.principal as Principal, 'write', key);
    const value = req.body;
    if (value === undefined) throw new HttpProblem(400, 'PUT needs a JSON body: the value to store');
    const writer = writerOf(req);
    const ttlMs = queryInt(req.query as Record<string, unknown>, 'ttlMs');
    if (ctx.validate) await validateValue(ctx, key, value);
    const guard = plainGuard(req);
    const entry = guard !== undefined
      ? await store.put(key, value, withWriteOptions(guard, writer, ttlMs))
      : await guardedWrite(ctx, key, readPreconditions(req), (g) => store.put(key, value, withWriteOptions({ ...g }, writer, ttlMs)));
    setEntryHeaders(reply, entry);
    return sendJson(reply, entry.createdRevision === entry.revision ? 201 : 200, metaJson(entry));
  });

  app.delete('/v1/kv/*', async (req, reply) => {
    const { key } = keyOf(req);
    onlyQuery(req, 'key');
    requireAccess(req.principal as Principal, 'write', key);
    const writer = writerOf(req);
    const guard = plainGuard(req);
    const revision = guard !== undefined
      ? await store.delete(key, withWriteOptions(guard, writer, undefined))
      : await guardedWrite(ctx, key, readPreconditions(req), (g) => store.delete(key, withWriteOptions({ ...g }, writer, undefined)));
    if (revision === null) throw notFound(key, null);
    reply.header('etag', etagOf(revision));
    return sendJson(reply, 200, { key, revision, deleted: true });
  });

  // PATCH takes only a JSON Merge Patch: a body of any other type (application/json included — a JSON
  // document is not a patch) is 415 naming the one it takes, checked before the body is parsed, so
  // a malformed or missing one gets the same answer.
  app.patch('/v1/kv/*', {
    preParsing: (req, _reply, payload, done) => {
      const type = mediaType(req);
      if (type === MERGE_PATCH) return done(null, payload);
      done(new HttpProblem(415, `PATCH takes a JSON Merge Patch (RFC 7396): send it with Content-Type: ${MERGE_PATCH}${type ? `, not ${type.slice(0, 100)}` : ''}`, {}, { 'accept-patch': MERGE_PATCH }));
    },
  }, async (req, reply) => {
    const { key } = keyOf(req);
    onlyQuery(req, 'key');
    requireAccess(req.principal as Principal, 'write', key);
    const patch = req.body;
    if (patch === undefined) throw new HttpProblem(400, 'PATCH needs a JSON Merge Patch body');
    const pre = readPreconditions(req);
    let entry: Entry | null;
    if (pre.ifMatch === undefined && pre.ifNoneMatch === undefined) {
      // Without preconditions: the server-side update loop (no lost update).
      const opts: UpdateOptions<unknown> = { onRetry: () => metrics.retries.inc() };
      const validate = ctx.validate;
      if (validate) opts.validate = (v) => validate(key, v);
      entry = await store.update<unknown>(key, (current) => {
        const next = applyMergePatch(current, patch);
        return current !== undefined && deepEqual(next, current) ? SKIP : next;
      }, opts);
    } else {
      entry = await guardedWrite(ctx, key, pre, async (guard, read) => {
        const current = read !== undefined ? read : await store.getRecord(key);
        const failed = guardFailure(key, current, guard);
        if (failed) throw failed;
        const live = current !== null && !isTombstone(current);
        const base = live ? (current as Entry).value : undefined;
        const next = applyMergePatch(base, patch);
        if (live && deepEqual(next, base)) return current as Entry; // a no-op writes nothing
        await validateValue(ctx, key, next);
        const writer = writerOf(req);
        return store.put(key, next, { ...guard, ...(writer ? { writer } : {}) });
      });
    }
    if (entry === null) throw notFound(key, null);
    setEntryHeaders(reply, entry);
    return reply.code(200).type(JSON_TYPE).send(JSON.stringify(entry.value));
  });
};
