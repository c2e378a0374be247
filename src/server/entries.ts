// How entries and records are answered: their JSON, their headers, and the 404 of a key with no value.
import type { FastifyReply } from 'fastify';
import { isTombstone, type Entry, type StoredRecord } from '../core/index.js';
import { etagOf } from './etag.js';
import { HttpProblem } from './problem.js';
import { writerHeader } from './request.js';

export function notFound(key: string, record: StoredRecord | null): HttpProblem {
  if (record !== null && isTombstone(record)) {
    return new HttpProblem(404, `no value at ${JSON.stringify(key)}: it was deleted`, {
      key, deleted: true, revision: record.revision, currentEtag: etagOf(record.revision), ...(record.writer ? { writer: record.writer } : {}), ...(record.updatedAt !== undefined ? { updatedAt: record.updatedAt } : {}),
    });
  }
  return new HttpProblem(404, `no value at ${JSON.stringify(key)}`, { key, currentEtag: null });
}

export function setEntryHeaders(reply: FastifyReply, e: Entry): void {
  reply.header('etag', etagOf(e.revision));
  reply.header('revkit-created-revision', String(e.createdRevision));
  reply.header('revkit-updated-at', String(e.updatedAt));
  reply.header('last-modified', httpDate(e.updatedAt));
  reply.header('cache-control', 'no-cache');
  if (e.expiresAt !== undefined) reply.header('revkit-expires-at', String(e.expiresAt));
  if (e.writer !== undefined) reply.header('revkit-writer', writerHeader(e.writer));
}

// Last-Modified has a resolution of one second, and most writes share their second with the previous one.
let lastDate = { second: Number.NaN, text: '' };

function httpDate(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== lastDate.second) lastDate = { second, text: new Date(ms).toUTCString() };
  return lastDate.text;
}

export function metaJson(e: Entry): Record<string, unknown> {
  const meta: Record<string, unknown> = { key: e.key, revision: e.revision, createdRevision: e.createdRevision, updatedAt: e.updatedAt };
  if (e.expiresAt !== undefined) meta.expiresAt = e.expiresAt;
  if (e.writer !== undefined) meta.writer = e.writer;
  return meta;
}

export function entryJson(e: Entry): Record<string, unknown> {
  return { ...metaJson(e), value: e.value };
}

export function recordJson(r: StoredRecord): Record<string, unknown> {
  if (!isTombstone(r)) return entryJson(r);
  return { key: r.key, revision: r.revision, deleted: true, ...(r.writer !== undefined ? { writer: r.writer } : {}), ...(r.updatedAt !== undefined ? { updatedAt: r.updatedAt } : {}) };
}
