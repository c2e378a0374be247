import type { FastifyReply, FastifyRequest } from 'fastify';
import { fastifyPlugin } from 'fastify-plugin';
import { assertFaithfulText } from '../../core/faithful.js';
import { nestingDepth } from '../../core/json-numbers.js';
import type { ServerPluginOptions } from '../context.js';
import { HttpProblem, type Problem } from '../problem.js';
import { MERGE_PATCH } from '../request.js';

/**
 * Request bodies: JSON and JSON Merge Patch only, parsed as plain JSON (a
 * `__proto__` member stays an ordinary own property), with a depth limit.
 * A number literal JSON.parse cannot carry faithfully (12345678901234567891
 * would be stored as 12345678901234567000, 1e400 as null) is refused with a
 * 422 ERR_VALIDATION naming its path in the body, before any route runs:
 * PUT values, PATCH merge patches and POST /v1/txn alike. (The size limit is
 * fastify's bodyLimit; refuseBody() answers a body over it.)
 */
export const bodyPlugin = fastifyPlugin<ServerPluginOptions>(async (app, { ctx: { limits } }) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(['application/json', MERGE_PATCH], { parseAs: 'string' }, (_req, body, done) => {
    const text = body as string;
    if (text.length === 0) return done(null, undefined);
    // Nesting n levels takes n brackets: a body this short cannot be too deep.
    if (text.length > limits.maxJsonDepth && nestingDepth(text) > limits.maxJsonDepth) return done(new HttpProblem(400, `the JSON body nests deeper than ${limits.maxJsonDepth} levels`, { limit: limits.maxJsonDepth }));
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return done(new HttpProblem(400, `the body is not valid JSON: ${err instanceof Error ? err.message.slice(0, 200) : 'parse error'}`));
    }
    try {
      assertFaithfulText(text);
    } catch (err) {
      return done(err as Error);
    }
    done(null, value);
  });
}, { name: 'revkit-body' });

/** What a connection may still send of a body refused for its size (read and dropped) before it is closed. */
const REFUSED_BODY_DRAIN = { bytes: 64 * 1024 * 1024, ms: 10_000 };

/**
 * A body over the limit: the 413 names the limit (and the announced size),
 * and the rest of the body is read and dropped, up to REFUSED_BODY_DRAIN.
 * Closing at once (fastify's way) closes a socket with unread data, which the
 * kernel answers with a reset: a client still sending gets EPIPE and may never
 * read the 413. The connection stays open for the next request, or — when the
 * client asked to close it — is closed in stages (RFC 9112 §9.6): the write
 * side once the 413 is out, the rest once the client has stopped sending.
 */
export function refuseBody(req: FastifyRequest, reply: FastifyReply, p: Problem, limit: number): void {
  p.limit = limit;
  const announced = Number(req.headers['content-length']);
  if (Number.isSafeInteger(announced) && announced > limit) p.size = announced;
  const raw = req.raw;
  const socket = raw.socket;
  if (raw.complete || raw.destroyed || !socket) return;
  if (reply.raw.shouldKeepAlive) reply.removeHeader('connection');
  else {
    // node ends the write side when the answer is out, then destroys the socket once that is done:
    // not while the body is still coming, but once it has all been read or the client hung up.
    reply.raw.once('finish', () => {
      if (raw.complete) return;
      socket.removeListener('finish', socket.destroy);
      raw.once('end', () => socket.destroy());
      socket.once('end', () => socket.destroy());
    });
  }
  let dropped = 0;
  const cut = () => socket.destroy();
  const timer = setTimeout(cut, REFUSED_BODY_DRAIN.ms);
  timer.unref();
  raw.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > REFUSED_BODY_DRAIN.bytes) cut();
  });
  raw.once('end', () => clearTimeout(timer));
  raw.once('close', () => clearTimeout(timer));
  raw.resume();
}
