import type { RedisOptions } from 'ioredis';
import { InvalidArgumentError } from '../core/index.js';
import { assertKnownUrlOptions, redactUrl } from '../core/redact.js';
import { URL_OPTIONS, takeStoreOptions, type RedisStoreOptions } from './options.js';

/** ioredis options a Sentinel URL may carry (the master's user and password go in the userinfo). */
const IOREDIS_SENTINEL_OPTIONS = ['db', 'connectionName', 'sentinelUsername', 'sentinelPassword'] as const;
const DEFAULT_SENTINEL_PORT = 26379;

/**
 * `redis+sentinel://[user:pass@]h1:26379,h2:26379/master-name[?db=N&wait=N&…]`:
 * the sentinels to ask, the master's name, and the client options for
 * ioredis' Sentinel support. Parsed by hand: a host list is no WHATWG URL.
 * Malformed parts and unknown options are refused (InvalidArgumentError),
 * never guessed; no message quotes a password.
 */
export function parseSentinelUrl(url: string): { client: RedisOptions; options: RedisStoreOptions } {
  const shown = JSON.stringify(redactUrl(url));
  const m = /^redis\+sentinel:\/\/(?:([^@/?#]*)@)?([^/?#]+)\/([^/?#]+)(?:\?([^#]*))?$/i.exec(url);
  if (m === null) {
    throw new InvalidArgumentError(`malformed redis+sentinel URL ${shown}: expected redis+sentinel://[user:password@]host:port,host:port/master-name[?options]`);
  }
  const [, userinfo, hostList = '', rawName = '', query = ''] = m;
  const sentinels = hostList.split(',').map((part) => sentinelAddress(part, shown));
  const name = decode(rawName, 'master name', shown);
  const params = new URLSearchParams(query);
  assertKnownUrlOptions(url, 'redis+sentinel', params.keys(), [...URL_OPTIONS, ...IOREDIS_SENTINEL_OPTIONS], `revkit's ${URL_OPTIONS.join(', ')}; ioredis's ${IOREDIS_SENTINEL_OPTIONS.join(', ')}`);
  for (const option of new Set(params.keys())) {
    if (params.getAll(option).length > 1) throw new InvalidArgumentError(`redis+sentinel URL option ${option} is given more than once`);
  }
  const options = takeStoreOptions(params);
  const client: RedisOptions = { sentinels, name };
  if (userinfo !== undefined && userinfo !== '') {
    const colon = userinfo.indexOf(':');
    const user = decode(colon < 0 ? userinfo : userinfo.slice(0, colon), 'user name', shown);
    if (user !== '') client.username = user;
    if (colon >= 0) client.password = decode(userinfo.slice(colon + 1), 'password', shown);
  }
  const db = params.get('db');
  if (db !== null) {
    if (!/^\d+$/.test(db)) throw new InvalidArgumentError(`redis+sentinel URL option db must be a non-negative integer, got ${JSON.stringify(db)}`);
    client.db = Number(db);
  }
  const connectionName = params.get('connectionName');
  if (connectionName !== null) client.connectionName = connectionName;
  const sentinelUsername = params.get('sentinelUsername');
  if (sentinelUsername !== null) client.sentinelUsername = sentinelUsername;
  const sentinelPassword = params.get('sentinelPassword');
  if (sentinelPassword !== null) client.sentinelPassword = sentinelPassword;
  return { client, options };
}

function sentinelAddress(part: string, shown: string): { host: string; port: number } {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(part);
  const port = m?.[2] === undefined ? DEFAULT_SENTINEL_PORT : Number(m[2]);
  if (m === null || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`redis+sentinel URL ${shown}: ${JSON.stringify(part)} is not a host or host:port of a sentinel`);
  }
  const host = (m[1] as string).replace(/^\[(.*)\]$/, '$1');
  return { host, port };
}

function decode(text: string, what: string, shown: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new InvalidArgumentError(`redis+sentinel URL ${shown}: its ${what} is not valid percent-encoding`);
  }
}
