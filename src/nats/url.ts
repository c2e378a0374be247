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
import { redactUrl } from '../core/redact.js';

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

export function parseNatsUrl(url: string): NatsUrlParts {
  const bad = (why: string) => new InvalidArgumentError(`malformed NATS URL ${JSON.stringify(redactUrl(url))}: ${why}`);
  const m = /^nats:\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(#.*)?$/i.exec(url);
  if (!m) throw bad('expected nats://host:port[,host:port…][?options]');
  const [, authority = '', path = '', search = '', fragment] = m;
  if (fragment !== undefined) throw bad('a fragment (#…) is not part of a store URL');
  if (path !== '' && path !== '/') throw bad(`a path (${JSON.stringify(path)}) names nothing for NATS: the bucket is ?bucket=name`);
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
  for (const seed of hostList.split(',')) {
    if (seed === '') {
      if (hostList === '') break;
      throw bad('an empty host in the server list');
    }
    const h = HOST_RE.exec(seed);
    if (!h) throw bad(`${JSON.stringify(seed)} is not host or host:port`);
    const port = h[2] === undefined ? DEFAULT_PORT : Number(h[2]);
    if (port < 1 || port > 65535) throw bad(`port ${h[2]} is out of range`);
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
