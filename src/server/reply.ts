import type { FastifyReply } from 'fastify';
import type { Problem } from './problem.js';

export const JSON_TYPE = 'application/json; charset=utf-8';
export const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

export function sendJson(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).type(JSON_TYPE).send(JSON.stringify(body));
}

export function sendProblem(reply: FastifyReply, p: Problem, headers: Record<string, string>): FastifyReply {
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  return reply.code(p.status).type(PROBLEM_TYPE).send(JSON.stringify(p));
}
