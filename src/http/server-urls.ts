import { InvalidArgumentError } from '../core/index.js';
import { assertKnownUrlOptions, redactUrl, withoutUrlInput } from '../core/redact.js';

/**
 * Where a list of servers splits: a comma right before the next full URL.
 * A comma elsewhere (in a path, in a token) stays where it is.
 */
const NEXT_SERVER = /,(?=https?:\/\/)/i;

/** The servers of a store URL: `http://h1:8787,http://h2:8787?token=T` (docs/replication-http.md). */
export interface ServerList {
  /** Each server's base URL: origin and path prefix, no trailing slash, no query. */
  bases: string[];
  /** The token the URLs carry (`?token=`), when one does. */
  token: string | undefined;
}

/** Splits a comma-separated list of server URLs (a single URL is a list of one). */
export function splitServerUrls(url: string): string[] {
  return url.split(NEXT_SERVER);
}

/**
 * Checks and normalises the servers: each a full http: or https: URL whose
 * only query option is `token` (`checkQuery`; the constructor, as it always
 * did, reads no query). Tokens given on several URLs must agree (one token is
 * sent to every server). Errors name the URL, secrets redacted.
 */
export function parseServerList(urls: string | readonly string[], checkQuery: boolean): ServerList {
  const list = typeof urls === 'string' ? splitServerUrls(urls) : [...urls];
  if (list.length === 0) throw new InvalidArgumentError('give at least one revkit server URL');
  const bases: string[] = [];
  let token: string | undefined;
  for (const raw of list) {
    let parsed: URL;
    try {
      parsed = new URL(raw);
    } catch (cause) {
      throw new InvalidArgumentError(`malformed server URL ${JSON.stringify(redactUrl(raw))}`, { cause: withoutUrlInput(cause) });
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new InvalidArgumentError(`a server URL must be http: or https:, got ${parsed.protocol}`);
    // The server's base URL takes no query: a token is the only option (any other is refused, never dropped unread).
    if (checkQuery) assertKnownUrlOptions(raw, 'server', parsed.searchParams.keys(), ['token']);
    const given = checkQuery ? parsed.searchParams.get('token') : null;
    if (given !== null) {
      if (token !== undefined && token !== given) throw new InvalidArgumentError('the server URLs carry different tokens: give one token (on any of them, or once for all)');
      token = given;
    }
    const base = `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
    if (bases.includes(base)) throw new InvalidArgumentError(`the server ${JSON.stringify(redactUrl(base))} is listed twice`);
    bases.push(base);
  }
  return { bases, token };
}
