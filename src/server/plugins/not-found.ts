import { fastifyPlugin } from 'fastify-plugin';
import { problem } from '../problem.js';
import { sendProblem } from '../reply.js';
import { KV, pathOf } from '../request.js';

/** A request no route matched: 405 with Allow on a path the server has (another method), else 404. */
export const notFoundPlugin = fastifyPlugin(async (app) => {
  app.setNotFoundHandler((req, reply) => {
    const path = pathOf(req.raw.url ?? '/');
    const allow = allowedMethods(path);
    if (allow) return sendProblem(reply, problem(405, 'ERR_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path.slice(0, 200)}; allowed: ${allow}`), { allow });
    return sendProblem(reply, problem(404, 'ERR_NOT_FOUND', 'no such route; see /openapi.json'), {});
  });
}, { name: 'revkit-not-found' });

function allowedMethods(path: string): string | undefined {
  if (path.startsWith(KV) && path.length > KV.length) return 'GET, HEAD, PUT, DELETE, PATCH';
  switch (path) {
    case '/v1/kv':
    case '/healthz':
    case '/readyz':
    case '/metrics':
    case '/openapi.json':
    case '/v1/info':
      return 'GET, HEAD';
    case '/v1/watch':
      return 'GET';
    case '/v1/txn':
      return 'POST';
    default:
      return undefined;
  }
}
