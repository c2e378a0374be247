/**
 * The parts of a `nats://` URL, read by hand: WHATWG `new URL()` refuses an
 * authority with several `host:port` seeds (`nats://h1:4222,h2:4222`), which
 * is how a cluster is named (any seed will do; the client learns the rest of
 * the cluster from the server it reaches).
 *
 * `nats://[user:pass@|token@]host[:port][,host[:port]…][/][?query]`; a host
 * may be an IPv6 literal in brackets; the port defaults to 4222.
 */
import { InvalidArgumentError } from '../core/index.js';

export interface NatsUrlParts {
  /** `host:port` of every seed, in the order given. */
  servers: string[];
  user?: string;
  pass?: string;
  /** `nats://TOKEN@host`: a userinfo without a colon is a token, as NATS clients read it. */
  token?: string;
  query: URLSearchParams;
}

const DEFAULT_PORT = 4222;
const HOST_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/;

/** Query options whose values are secrets. */
const SECRET_OPTIONS = /([?&](?:token|pass|password|user)=)[^&#]*/gi;

/**
 * The URL as an error message may show it: every credential replaced by `****`. Everything up
 * to the URL's LAST '@' is hidden (a password may hold '/', '?', '#' or '@', written raw or
 * not, so where the userinfo ends cannot be trusted in a URL that failed to parse), and so is
 * the value of every credential option (`token`, `pass`, `user`).
 */
export function maskNatsUrl(url: string): string {
  const masked = url.replace(SECRET_OPTIONS, '$1****');
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(masked)?.[0] ?? '';
  const at = masked.lastIndexOf('@');
  return at < scheme.length ? masked : `${scheme}****${masked.slice(at)}`;
}

export function parseNatsUrl(url: string): NatsUrlParts {
  const bad = (why: string) => new InvalidArgumentError(`malformed NATS URL ${JSON.stringify(maskNatsUrl(url))}: ${why}`);
  // A part of the URL may be quoted only when it lies after the URL's last '@' and before its query (see maskNatsUrl).
  const safeFrom = url.lastIndexOf('@') + 1;
  const quote = (text: string, at: number) => (at >= safeFrom && !/[?&=]/.test(text) ? JSON.stringify(text) : '(not shown: it may hold a credential)');
  const m = /^nats:\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(#.*)?$/i.exec(url);
  if (!m) throw bad('expected nats://host:port[,host:port…][?options]');
  const [, authority = '', path = '', search = '', fragment] = m;
  const authorityAt = 'nats://'.length;
  if (fragment !== undefined) throw bad('a fragment (#…) is not part of a store URL (a "#" in a password must be written %23)');
  if (path !== '' && path !== '/') {
    throw bad(`a path ${quote(path, authorityAt + authority.length)} names nothing for NATS: the bucket is ?bucket=name (a "/" in a password must be written %2F)`);
  }
  // The userinfo ends at the last '@' (a password may hold one, percent-encoded or not).
  const at = authority.lastIndexOf('@');
  const userinfo = at === -1 ? undefined : authority.slice(0, at);
  const hostList = at === -1 ? authority : authority.slice(at + 1);
  const parts: NatsUrlParts = { servers: [], query: new URLSearchParams(search) };
  if (userinfo !== undefined && userinfo !== '') {
    const colon = userinfo.indexOf(':');
    if (colon === -1) parts.token = decode(userinfo, bad);
    else {
      parts.user = decode(userinfo.slice(0, colon), bad);
      parts.pass = decode(userinfo.slice(colon + 1), bad);
    }
  }
  let seedAt = authorityAt + at + 1;
  for (const seed of hostList.split(',')) {
    const thisAt = seedAt;
    seedAt += seed.length + 1;
    if (seed === '') {
      if (hostList === '') break;
      throw bad('an empty host in the server list');
    }
    const h = HOST_RE.exec(seed);
    if (!h) throw bad(`${quote(seed, thisAt)} is not host or host:port`);
    const port = h[2] === undefined ? DEFAULT_PORT : Number(h[2]);
    if (port < 1 || port > 65535) throw bad(`the port of ${quote(seed, thisAt)} is out of range`);
    parts.servers.push(`${h[1]}:${port}`);
  }
  if (parts.servers.length === 0) parts.servers.push(`127.0.0.1:${DEFAULT_PORT}`);
  return parts;
}

function decode(text: string, bad: (why: string) => Error): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw bad('bad percent-encoding in the credentials');
  }
}
