/**
 * Reversible mapping between revkit keys and NATS subject tokens.
 *
 * A revkit key is any non-empty unicode string (no control characters, at
 * most 1024 UTF-8 bytes) whose `/` separates levels; levels may be empty.
 * A JetStream KV subject is `$KV.<bucket>.<t1>.<t2>…` whose tokens must be
 * non-empty and may only use `[-/_=.a-zA-Z0-9]` (`.` separates tokens).
 *
 * Each level becomes exactly one token, so a prefix that ends at a level
 * boundary (`a/b/`) is the subject filter `$KV.<bucket>.a.b.>`:
 *
 * - a level made only of `[A-Za-z0-9_-]` (and not empty) is kept as it is;
 * - any other level (empty, or with any other character) becomes `=` followed
 *   by the unpadded base64url of its UTF-8 bytes (`=` alone for an empty
 *   level). Plain tokens never start with `=`, so decoding is unambiguous.
 *
 * Worst case (a key of 1024 one-byte levels such as `////…`) is about 2,050
 * characters of subject, under the server's 4 KiB protocol line limit with
 * room for the `$JS.API.DIRECT.GET.…` prefix (see MAX_ENCODED_KEY_CHARS).
 */

const PLAIN = /^[A-Za-z0-9_-]+$/;
const B64URL = /^[A-Za-z0-9_-]*$/;

/** Upper bound of encodeKey() output for any valid key (checked in tests). */
export const MAX_ENCODED_KEY_CHARS = 2 * 1025;

export function encodeLevel(level: string): string {
  if (PLAIN.test(level)) return level;
  return `=${Buffer.from(level, 'utf8').toString('base64url')}`;
}

export function decodeLevel(token: string): string | null {
  if (token.length === 0) return null;
  if (token[0] !== '=') return PLAIN.test(token) ? token : null;
  const body = token.slice(1);
  if (!B64URL.test(body)) return null;
  const bytes = Buffer.from(body, 'base64url');
  const text = bytes.toString('utf8');
  // Reject anything that would not encode back to the same token (foreign keys, bad padding, bad UTF-8).
  return encodeLevel(text) === token ? text : null;
}

export function encodeKey(key: string): string {
  return key.split('/').map(encodeLevel).join('.');
}

/** The revkit key for a subject suffix, or null when the suffix was not written by revkit's encoding. */
export function decodeKey(encoded: string): string | null {
  const levels: string[] = [];
  for (const token of encoded.split('.')) {
    const level = decodeLevel(token);
    if (level === null) return null;
    levels.push(level);
  }
  return levels.join('/');
}

/**
 * The narrowest subject filter (relative to the bucket prefix) that covers
 * every key starting with `prefix`: the complete levels of the prefix as
 * tokens, then `>`. A partial last level (`a/b` covers `a/bc`) cannot be
 * expressed as a subject filter, so it is filtered in the client.
 * `exact` is true when the filter alone decides (the prefix ends at a level
 * boundary), so callers can skip the client-side check.
 */
export function filterForPrefix(prefix: string): { filter: string; exact: boolean } {
  if (prefix === '') return { filter: '>', exact: true };
  const levels = prefix.split('/');
  const partial = levels.pop() as string;
  if (levels.length === 0) return { filter: '>', exact: false };
  return { filter: `${levels.map(encodeLevel).join('.')}.>`, exact: partial === '' };
}
