// What a request names: its key, writer, media type and query parameters, checked.
import type { FastifyRequest } from 'fastify';
import { InvalidArgumentError, InvalidKeyError, MAX_KEY_BYTES, assertKey, assertWriter } from '../core/index.js';
import { HttpProblem } from './problem.js';

export const KV = '/v1/kv/';
export const MERGE_PATCH = 'application/merge-patch+json';

export function pathOf(rawUrl: string): string {
  const q = rawUrl.indexOf('?');
  return q < 0 ? rawUrl : rawUrl.slice(0, q);
}

/**
 * The key is taken from the raw request target so that `%2F` (a slash inside
 * a level) and `/` (a level separator) both decode to `/` exactly once, and
 * `GET …/history` is recognised before decoding: a key whose last level is
 * literally `history` is read with that slash encoded (`a%2Fhistory`).
 * An empty path key (`/v1/kv/?key=…`, `/v1/kv//history?key=…`) takes the key
 * from the `key` query parameter: `.` and `..` cannot be path segments, as
 * fetch and proxies remove them even percent-encoded.
 */
export function keyOf(req: FastifyRequest): { key: string; history: boolean } {
  const path = pathOf(req.raw.url ?? '');
  if (!path.startsWith(KV)) throw new HttpProblem(400, `keys are addressed as ${KV}{percent-encoded key}`);
  let encoded = path.slice(KV.length);
  const queryKey = queryString(req.query as Record<string, unknown>, 'key');
  let history = false;
  const read = req.method === 'GET' || req.method === 'HEAD';
  if (read && encoded.endsWith('/history') && (encoded.length > '/history'.length || (encoded === '/history' && queryKey !== undefined))) {
    history = true;
    encoded = encoded.slice(0, -'/history'.length);
  }
  if (encoded !== '' && queryKey !== undefined) throw new HttpProblem(400, 'the key is given in the path and in ?key=: give it once (?key= goes with an empty path, /v1/kv/?key=…)');
  let key: string;
  if (encoded === '' && queryKey !== undefined) key = queryKey;
  else if (!encoded.includes('%')) key = encoded; // nothing to decode
  else {
    try {
      key = decodeURIComponent(encoded);
    } catch {
      throw new InvalidKeyError('the key is not validly percent-encoded UTF-8', MAX_KEY_BYTES);
    }
  }
  assertKey(key);
  return { key, history };
}

export function mediaType(req: FastifyRequest): string {
  return String(req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/**
 * The writer token of `Revkit-Writer`, percent-encoded UTF-8 (encodeURIComponent)
 * so that any token the core accepts — 1 to 200 characters without control
 * characters — crosses HTTP as given; a token of `[A-Za-z0-9_-]` reads as itself.
 */
export function writerOf(req: FastifyRequest): string | undefined {
  const w = req.headers['revkit-writer'];
  if (w === undefined) return undefined;
  const bad = () => new HttpProblem(400, 'Revkit-Writer must be a percent-encoded (UTF-8) token of 1 to 200 characters without control characters');
  // Only what encodeURIComponent writes: a raw UTF-8 token would be read as latin1, a repeated header joined with ", ".
  if (typeof w !== 'string' || !/^[A-Za-z0-9\-_.!~*'()%]+$/.test(w)) throw bad();
  let writer: string;
  try {
    writer = decodeURIComponent(w);
    assertWriter(writer);
  } catch (err) {
    if (err instanceof URIError || InvalidArgumentError.is(err)) throw bad();
    throw err;
  }
  return writer;
}

/** A writer token as `Revkit-Writer` carries it (see writerOf). */
export function writerHeader(writer: string): string {
  return encodeURIComponent(writer);
}

/** A query parameter the route does not take is refused, not ignored: a misspelt `ttlms` must not write without a TTL. */
export function onlyQuery(req: FastifyRequest, ...names: string[]): void {
  for (const name of Object.keys((req.query ?? {}) as object)) {
    if (!names.includes(name)) throw new HttpProblem(400, `unknown query parameter ${JSON.stringify(name.slice(0, 64))}: this route takes ${names.length > 0 ? names.join(', ') : 'none'}`);
  }
}

export function queryString(q: Record<string, unknown>, name: string): string | undefined {
  const v = q?.[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new HttpProblem(400, `query parameter ${name} must be given once`);
  return v;
}

export function queryInt(q: Record<string, unknown>, name: string, min = 1): number | undefined {
  const v = queryString(q, name);
  if (v === undefined) return undefined;
  if (!/^[0-9]{1,16}$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < min) {
    throw new HttpProblem(400, `query parameter ${name} must be an integer ≥ ${min}`);
  }
  return Number(v);
}
