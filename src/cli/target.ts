import { InvalidArgumentError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import { storeUrl } from './default-store.js';

/**
 * The store a workload command (check, bench) runs against: `--server URL
 * --token T` is a revkit server over HTTP (as HttpStore), as for every other
 * command; else `--store`, else the default.
 */
export async function targetUrl(opts: { store?: string; server?: string; token?: string }, defaultStore: string): Promise<string> {
  if (!opts.server) return storeUrl(opts.store ?? defaultStore);
  let url: URL;
  try {
    url = new URL(opts.server);
  } catch {
    throw new InvalidArgumentError(`--server: not a URL: ${redactUrl(opts.server)}`);
  }
  if (opts.token !== undefined) {
    const { unusableToken } = await import('../server/auth.js');
    const problem = unusableToken(opts.token);
    if (problem !== undefined) throw new InvalidArgumentError(`--token (or REVKIT_TOKEN): the token ${problem}; a bearer token is visible ASCII (! to ~)`);
    url.searchParams.set('token', opts.token);
  }
  return url.href;
}
