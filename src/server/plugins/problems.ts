import type { Socket } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { fastifyPlugin } from 'fastify-plugin';
import type { ServerPluginOptions } from '../context.js';
import { problem, toProblem, type Problem } from '../problem.js';
import { PROBLEM_TYPE, sendProblem } from '../reply.js';
import { refuseBody } from './body.js';

/**
 * Every error answer is a problem document (problem.ts): what a route or hook
 * throws (the error handler), what fastify refuses before routing
 * (frameworkErrors), what node's HTTP parser refuses before fastify sees a
 * request (clientErrorHandler) and CONNECT, which never reaches a route.
 */
export const problemsPlugin = fastifyPlugin<ServerPluginOptions>(async (app, { ctx }) => {
  // CONNECT never reaches a route: node hands it to 'connect' listeners or drops the socket.
  app.server.on('connect', (_req, socket: Socket) => {
    writeRawResponse(socket, 405, 'Method Not Allowed', problem(405, 'ERR_METHOD_NOT_ALLOWED', 'CONNECT is not supported'), 'Allow: GET, HEAD, PUT, DELETE, PATCH, POST\r\n');
  });

  app.setErrorHandler((err, req, reply) => {
    const { problem: p, headers, internal } = toProblem(err, { conflictStatus: req.routeOptions.config?.conflictStatus ?? 412 });
    if (internal) ctx.onInternalError(err, { method: req.method, url: req.url });
    if (p.code === 'ERR_CONFLICT') ctx.metrics.conflicts.inc();
    if ((err as { code?: unknown }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') refuseBody(req, reply, p, ctx.limits.maxBodyBytes);
    return sendProblem(reply, p, headers);
  });
}, { name: 'revkit-problems' });

/** fastify's `frameworkErrors` option: errors it raises before routing (a malformed URL…). */
export function frameworkErrors(err: Error, _req: FastifyRequest, reply: FastifyReply): void {
  sendProblem(reply, toProblem(err).problem, {});
}

/** fastify's `clientErrorHandler` option: errors node's HTTP parser raises before fastify sees a request (malformed request line, huge headers, timeouts). */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, detail] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'ERR_REQUEST_TIMEOUT', 'the request took too long to arrive']
      : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'ERR_HEADERS_TOO_LARGE', 'the request headers are too large']
        : err.code === 'HPE_URI_TOO_LONG' ? [414, 'ERR_URI_TOO_LONG', 'the request URI is too long']
          : [400, 'ERR_BAD_REQUEST', 'the request is not valid HTTP/1.1'];
  const reason = status === 408 ? 'Request Timeout' : status === 431 ? 'Request Header Fields Too Large' : status === 414 ? 'URI Too Long' : 'Bad Request';
  writeRawResponse(socket, status, reason, problem(status, code, detail));
}

function writeRawResponse(socket: Socket, status: number, reason: string, p: Problem, extraHeaders = ''): void {
  const body = JSON.stringify(p);
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: ${PROBLEM_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}Connection: close\r\n\r\n${body}`);
  }
  socket.destroySoon?.();
  setTimeout(() => socket.destroy(), 1000).unref();
}
