/**
 * The DNS-rebinding guard: a web page on evil.example can make its own name
 * resolve to 127.0.0.1 and then talk to a server on loopback as a "same
 * origin" — but its requests still carry `Host: evil.example`. A server bound
 * to loopback therefore answers only to loopback names (and the hosts it was
 * told to allow); anything else gets 421 before authentication or routing.
 * A server bound to another address answers to every name unless told which
 * (`allowedHosts`): there a token, not the address, is what keeps pages out.
 * A request without a Host header comes from no browser and passes.
 */

/** Is `host` (an address or name, no port) one that always means this machine? */
export function isLoopbackHost(host: string): boolean {
  const h = normalize(host);
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (/^127(?:\.\d{1,3}){3}$/.test(h)) return true;
  const mapped = /^::ffff:(127(?:\.\d{1,3}){3})$/.exec(h);
  return mapped !== null;
}

/**
 * The check for a server bound to `bindHost`, or undefined when every Host is
 * accepted. `allowedHosts` are names (no port), compared case-insensitively.
 */
export function hostGuard(bindHost: string, allowedHosts: readonly string[] = []): ((hostHeader: string | undefined) => boolean) | undefined {
  const allowed = new Set(allowedHosts.map(normalize));
  if (!isLoopbackHost(bindHost) && allowed.size === 0) return undefined;
  return (hostHeader) => {
    if (hostHeader === undefined) return true;
    const name = hostName(hostHeader);
    if (name === undefined) return false;
    return isLoopbackHost(name) || allowed.has(name);
  };
}

/** The name part of a Host header (`name`, `name:port`, `[v6]:port`), or undefined when malformed. */
function hostName(header: string): string | undefined {
  const h = header.trim();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return undefined;
    const rest = h.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
    return normalize(h.slice(1, end));
  }
  const m = /^([^:]+)(?::\d{1,5})?$/.exec(h);
  return m?.[1] === undefined ? undefined : normalize(m[1]);
}

function normalize(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}
