import { InvalidArgumentError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import { storeUrl } from './default-store.js';

/**
 * The store a workload command (check, bench) runs against: `--server URL
 * --token T` is a revkit server over HTTP (as HttpStore; several: full URLs,
 * comma-separated), as for every other command; else `--store`, else the default.
 */
export async function targetUrl(opts: { store?: string; server?: string; token?: string }, defaultStore: string): Promise<string> {
  if (!opts.server) return storeUrl(opts.store ?? defaultStore);
  // Several servers (replicas over one store): full URLs, comma-separated; the token goes on one of them, for all.
  const { splitServerUrls } = await import('../http/server-urls.js');
  const urls: URL[] = [];
  for (const server of splitServerUrls(opts.server)) {
    try {
      urls.push(new URL(server));
    } catch {
      throw new InvalidArgumentError(`--server: not a URL: ${redactUrl(server)}`);
    }
  }
  const last = urls.at(-1) as URL;
  if (opts.token !== undefined) {
    const { unusableToken } = await import('../server/auth.js');
    const problem = unusableToken(opts.token);
    if (problem !== undefined) throw new InvalidArgumentError(`--token (or REVKIT_TOKEN): the token ${problem}; a bearer token is visible ASCII (! to ~)`);
    last.searchParams.set('token', opts.token);
  }
  return urls.map((u) => u.href).join(',');
}
