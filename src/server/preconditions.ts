// ETag handling: If-Match / If-None-Match read from a request and turned into
// store conditions, so that the check and the write are one compare-and-swap.
import type { FastifyRequest } from 'fastify';
import { ConflictError, isTombstone, type Condition, type PutOptions, type StoredRecord } from '../core/index.js';
import type { ServerContext } from './context.js';
import { parseTagList, revisionOfTag, strongMatch, weakMatch, type TagList } from './etag.js';
import { HttpProblem } from './problem.js';

export interface Preconditions {
  ifMatch: TagList | undefined;
  ifNoneMatch: TagList | undefined;
}

export function readPreconditions(req: FastifyRequest): Preconditions {
  return {
    ifMatch: tagListOf('If-Match', req.headers['if-match']),
    ifNoneMatch: tagListOf('If-None-Match', req.headers['if-none-match']),
  };
}

function tagListOf(name: string, raw: string | string[] | undefined): TagList | undefined {
  const parsed = parseTagList(name, raw);
  if ('malformed' in parsed) throw new HttpProblem(400, parsed.malformed);
  return parsed.tags;
}

/**
 * The store condition of the two common forms, read straight from the headers:
 * If-Match with one strong revkit ETag (`"12"`) and no If-None-Match, or
 * If-None-Match: * and no If-Match. Anything else (no precondition, lists,
 * weak or foreign tags, malformed fields): undefined, for guardedWrite().
 */
export function plainGuard(req: FastifyRequest): PutOptions | undefined {
  const { 'if-match': ifMatch, 'if-none-match': ifNoneMatch } = req.headers;
  if (ifNoneMatch === undefined) {
    const revision = typeof ifMatch === 'string' ? plainRevision(ifMatch) : null;
    return revision === null ? undefined : { ifRevision: revision };
  }
  return ifMatch === undefined && ifNoneMatch === '*' ? { ifAbsent: true } : undefined;
}

/**
 * The revision of `"N"` with N as revkit writes it (no leading zero, a safe integer),
 * read without a regular expression or a match array; null for anything else
 * (then the general path reads the field).
 */
function plainRevision(tag: string): number | null {
  const end = tag.length - 1;
  if (end < 2 || end > 17 || tag.charCodeAt(0) !== 34 || tag.charCodeAt(end) !== 34 || (tag.charCodeAt(1) === 48 && end > 2)) return null;
  let revision = 0;
  for (let i = 1; i < end; i++) {
    const digit = tag.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return null;
    revision = revision * 10 + digit;
  }
  return Number.isSafeInteger(revision) ? revision : null;
}

/** `guard` (a fresh object) with the writer and TTL of the request added. */
export function withWriteOptions(guard: PutOptions, writer: string | undefined, ttlMs: number | undefined): PutOptions {
  if (writer !== undefined) guard.writer = writer;
  if (ttlMs !== undefined) guard.ttlMs = ttlMs;
  return guard;
}

/**
 * Evaluates If-Match / If-None-Match and runs `write` guarded by a store
 * condition, so the check and the write are one compare-and-swap.
 * `write` gets the record it is guarded by when this function read it.
 */
export async function guardedWrite<R>(ctx: ServerContext, key: string, pre: Preconditions, write: (guard: Condition, read?: StoredRecord | null) => Promise<R>): Promise<R> {
  const { ifMatch, ifNoneMatch } = pre;
  if (ifMatch === undefined && ifNoneMatch === undefined) {
    if (ctx.requirePreconditions) {
      throw new HttpProblem(428, 'this server requires conditional writes: send If-Match: "<revision>" to change a key or If-None-Match: * to create one');
    }
    return write({});
  }
  if (ifNoneMatch === undefined && ifMatch !== undefined && ifMatch !== '*' && ifMatch.length === 1) {
    const tag = ifMatch[0] as { weak: boolean; opaque: string };
    const revision = tag.weak ? null : revisionOfTag(tag);
    if (revision !== null) return write({ ifRevision: revision });
  }
  if (ifMatch === undefined && ifNoneMatch === '*') return write({ ifAbsent: true });
  // Lists, `If-Match: *`, weak tags: read, evaluate, write guarded by the revision read.
  for (let attempt = 1; ; attempt++) {
    const read = await ctx.store.getRecord(key);
    const live = read !== null && !isTombstone(read);
    const actual = read?.revision ?? null;
    const matchOk = ifMatch === undefined || (ifMatch === '*' ? live : strongMatch(ifMatch, actual ?? 0));
    const noneOk = ifNoneMatch === undefined || (ifNoneMatch === '*' ? !live : !(live && weakMatch(ifNoneMatch, actual as number)));
    if (!matchOk || !noneOk) throw new ConflictError([{ key, expected: matchOk ? 'absent' : expectedOf(ifMatch as TagList), actual }]);
    try {
      return await write({ ifRevision: read?.revision ?? 0 }, read);
    } catch (err) {
      if (!ConflictError.is(err) || attempt >= 16) throw err;
      ctx.metrics.retries.inc();
    }
  }
}

function expectedOf(list: TagList): number | null | 'absent' | 'value' {
  if (list === '*') return 'value';
  for (const t of list) {
    const r = t.weak ? null : revisionOfTag(t);
    if (r !== null) return r;
  }
  return null;
}

/** The failed check when `current` does not satisfy a store condition (checked again, atomically, by the write). */
export function guardFailure(key: string, current: StoredRecord | null, guard: Condition): ConflictError | null {
  const live = current !== null && !isTombstone(current);
  const actual = current?.revision ?? null;
  if (guard.ifRevision !== undefined && actual !== guard.ifRevision) return new ConflictError([{ key, expected: guard.ifRevision, actual }]);
  if (guard.ifAbsent && live) return new ConflictError([{ key, expected: 'absent', actual }]);
  return null;
}
