/**
 * Secrets in store and server URLs, shown as `****` wherever a URL is printed
 * (DESIGN §6: never in a banner, log line, error message, metric or response).
 *
 * Works on the text, not on `new URL()`: the URLs worth hiding are also the
 * ones it refuses (several hosts, `redis+sentinel://`, an unencoded `/` or `#`
 * in a password), and a URL that cannot be parsed still has to be printed.
 */
import { InvalidArgumentError } from './errors.js';

export const REDACTED = '****';

/** Query options whose value is a secret: token, pass, password, sslpassword, sentinelPassword, auth_token, … */
const SECRET_OPTION = /pass|pwd|token|secret|auth|cred|seed|jwt|nkey|apikey|api_key|sslkey|private/i;
/** Stores in local files: no userinfo, an `@` there is part of a path. */
const LOCAL_SCHEMES = new Set(['memory', 'sqlite', 'file']);
/** Where a userinfo without a colon is a user name; elsewhere (nats://TOKEN@host, https://TOKEN@host) it is the secret. */
const USER_ONLY_SCHEMES = new Set(['postgres', 'postgresql', 'redis', 'rediss', 'redis+sentinel']);

interface Part {
  text: string;
  secret?: true;
}

function split(url: string): Part[] {
  const parts: Part[] = [];
  const plain = (text: string) => text !== '' && parts.push({ text });
  const secret = (text: string) => (text === '' ? undefined : parts.push({ text, secret: true }));
  let rest = url;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme !== undefined && !LOCAL_SCHEMES.has(scheme)) {
    plain(url.slice(0, scheme.length + 3));
    rest = url.slice(scheme.length + 3);
    const at = userinfoEnd(rest);
    if (at !== -1) {
      const userinfo = rest.slice(0, at);
      const colon = userinfo.indexOf(':');
      if (colon !== -1) {
        plain(userinfo.slice(0, colon + 1));
        secret(userinfo.slice(colon + 1));
      } else if (USER_ONLY_SCHEMES.has(scheme)) plain(userinfo);
      else secret(userinfo);
      plain('@');
      rest = rest.slice(at + 1);
    }
  }
  const query = rest.indexOf('?');
  if (query === -1) {
    plain(rest);
    return parts;
  }
  plain(rest.slice(0, query + 1));
  // Split on '&' only: a value with an unencoded '#' is hidden to its end, not cut at a "fragment".
  rest.slice(query + 1).split('&').forEach((pair, i) => {
    if (i > 0) plain('&');
    const eq = pair.indexOf('=');
    if (eq > 0 && SECRET_OPTION.test(decode(pair.slice(0, eq)))) {
      plain(pair.slice(0, eq + 1));
      secret(pair.slice(eq + 1));
    } else plain(pair);
  });
  return parts;
}

/** What may follow the userinfo's '@': a host list (`h1:5432,[::1]:6379`, empty for a socket) up to a path, a query, a fragment or the end. */
const AUTHORITY_REST = /^[A-Za-z0-9._~%[\]:,-]*(?:[/?#]|$)/;

/**
 * Where the userinfo ends: the last '@' that a host list follows. A password
 * may hold an unencoded '@', '/', '?' or '#' (`root:pw?x@db/test`), so neither
 * the first '/' nor the first '?' bounds it; a query value's '@'
 * (`?bucket=a@b&…`) is not followed by a host list up to a delimiter, and
 * where one could be (`?x=a@b` at the end), more is hidden, never less.
 */
function userinfoEnd(rest: string): number {
  for (let at = rest.lastIndexOf('@'); at !== -1; at = at === 0 ? -1 : rest.lastIndexOf('@', at - 1)) {
    if (AUTHORITY_REST.test(rest.slice(at + 1))) return at;
  }
  // No host list a parser would take (`h1:4222, bad host:4222`: the URL is refused for it, and the refusal
  // quotes it): still hide up to the last '@' that no query option follows.
  const at = rest.lastIndexOf('@');
  return at !== -1 && !/[=&]/.test(rest.slice(at + 1)) ? at : -1;
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/** The URL with every password, token and other secret replaced by `****`; the rest (scheme, user, hosts, options) stays readable. */
export function redactUrl(url: string): string {
  return split(url).map((p) => (p.secret ? REDACTED : p.text)).join('');
}

/** The secrets in a URL, as written and as a driver decodes them, for scrubbing them from text that quotes them some other way. */
export function urlSecrets(url: string): string[] {
  const found = new Set<string>();
  for (const p of split(url)) {
    if (!p.secret) continue;
    found.add(p.text);
    found.add(decode(p.text));
    try {
      found.add(decodeURIComponent(p.text));
    } catch {
      // kept as written
    }
  }
  return [...found];
}

// A URL inside a message: scheme://… or a local store URL, up to a space or a quote, and
// not the punctuation after it ("cannot open store <url>: …").
const URL_IN_TEXT = /\b(?:[a-z][a-z0-9+.-]*:\/\/|(?:memory|sqlite|file):)(?:[^\s"'<>`]*[^\s"'<>`.,:;)\]])?/gi;
// Shorter secrets would turn ordinary words into ****; a short secret is still hidden inside any URL.
const MIN_SCRUBBED = 4;

/**
 * A message with every URL in it redacted and every given secret (a token,
 * a URL's password as the driver decoded it) replaced by `****`.
 */
export function redactText(text: string, secrets: Iterable<string> = []): string {
  let out = text;
  // Messages are made one line before they are printed: a secret with a newline in it appears with a space instead.
  const variants = [...secrets].flatMap((s) => [s, s.replace(/\s*\n\s*/g, ' '), s.replace(/\s+/g, ' ')]);
  const longestFirst = [...new Set(variants)].filter((s) => s.length >= MIN_SCRUBBED).sort((a, b) => b.length - a.length);
  for (const s of longestFirst) out = out.split(s).join(REDACTED);
  return out.replace(URL_IN_TEXT, (url) => redactUrl(url));
}

/**
 * A URL parse error as the cause of a revkit error: node's TypeError carries
 * the whole URL as `input`, which any log of the error (console.error, util.inspect)
 * prints, secrets included. Returns the same error without it.
 */
export function withoutUrlInput(err: unknown): unknown {
  if (typeof err === 'object' && err !== null && 'input' in err) delete (err as { input?: unknown }).input;
  return err;
}

/** What an option name in a message may look like: anything else may be part of a password with an unencoded '?'. */
const PLAIN_OPTION_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

/**
 * Refuses a store URL whose query holds an option not in `accepted` (an
 * unknown option is never silently ignored): InvalidArgumentError naming each
 * unknown option, the accepted one it most likely meant, and every accepted
 * one (or `acceptedText`). The URL itself is not quoted, and an option name
 * is named only when it is a plain name that is no part of a secret of the
 * URL (after a password with an unencoded '?', what follows it parses as the
 * query).
 */
export function assertKnownUrlOptions(url: string, what: string, present: Iterable<string>, accepted: readonly string[], acceptedText?: string): void {
  const known = new Set(accepted);
  const unknown = [...new Set(present)].filter((name) => !known.has(name));
  if (unknown.length === 0) return;
  const secrets = urlSecrets(url);
  const named: string[] = [];
  let hidden = 0;
  for (const name of unknown) {
    if (!PLAIN_OPTION_NAME.test(name) || secrets.some((s) => s.includes(name))) {
      hidden++;
      continue;
    }
    const meant = closest(name, accepted);
    named.push(meant === undefined ? JSON.stringify(name) : `${JSON.stringify(name)} (did you mean ${JSON.stringify(meant)}?)`);
  }
  if (hidden > 0) named.push(`${hidden === 1 ? 'one whose name is' : `${hidden} whose names are`} not shown (a "?" in a user name or password must be written %3F)`);
  const list = acceptedText ?? (accepted.length === 0 ? 'it takes none' : accepted.join(', '));
  const these = named.length > 1 ? `${named.slice(0, -1).join(', ')} and ${named[named.length - 1]}` : named[0];
  throw new InvalidArgumentError(`the ${what} URL has ${unknown.length > 1 ? 'unknown options' : 'an unknown option'}: ${these}; accepted: ${list}`);
}

/** The accepted name a typo most likely meant: the same but for case, or within two edits. */
function closest(name: string, accepted: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const sameCase = accepted.find((a) => a.toLowerCase() === lower);
  if (sameCase !== undefined) return sameCase;
  let best: { name: string; distance: number } | undefined;
  for (const a of accepted) {
    const d = editDistance(lower, a.toLowerCase());
    if (d <= 2 && d < lower.length && (best === undefined || d < best.distance)) best = { name: a, distance: d };
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((previous[j] as number) + 1, (row[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length] as number;
}
