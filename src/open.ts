import { InvalidArgumentError, UnsupportedError, type Store } from './core/index.js';
import { redactUrl, withoutUrlInput } from './core/redact.js';

export interface OpenOptions {
  maxValueBytes?: number;
  [option: string]: unknown;
}

type Opener = (url: URL | undefined, raw: string, options: OpenOptions) => Promise<Store>;

/**
 * Backends load lazily so that an application pays only for the driver it
 * uses, and a missing optional driver is a clear error, not a crash at import.
 */
const openers: Record<string, Opener> = {
  'memory:': async (_url, raw, options) => (await import('./memory/index.js')).MemoryStore.fromUrl(raw, options),
  'sqlite:': async (url, raw, options) => {
    const { SqliteStore } = await loadBackend('sqlite', 'better-sqlite3', () => import('./sqlite/index.js'));
    return SqliteStore.fromUrl(raw, options);
  },
  'file:': async (_url, raw, options) => (await import('./file/index.js')).FileStore.fromUrl(raw, options),
  'postgres:': async (_url, raw, options) => {
    const { PostgresStore } = await loadBackend('postgres', 'pg', () => import('./postgres/index.js'));
    return PostgresStore.fromUrl(raw, options);
  },
  'nats:': async (_url, raw, options) => {
    const { NatsStore } = await loadBackend('nats', '@nats-io/transport-node @nats-io/jetstream @nats-io/kv', () => import('./nats/index.js'));
    return NatsStore.fromUrl(raw, options);
  },
  'redis:': async (_url, raw, options) => {
    const { RedisStore } = await loadBackend('redis', 'ioredis', () => import('./redis/index.js'));
    return RedisStore.fromUrl(raw, options);
  },
};
openers['rediss:'] = openers['redis:'] as Opener;
openers['redis+sentinel:'] = openers['redis:'] as Opener;
openers['postgresql:'] = openers['postgres:'] as Opener;
// A revkit server is a store too: http://host:port?token=T (update() runs as GET + PUT If-Match loops);
// several servers over one store: http://h1:8787,http://h2:8787?token=T (it fails over between them).
openers['http:'] = async (_url, raw) => (await import('./http/index.js')).HttpStore.fromUrl(raw);
openers['https:'] = openers['http:'] as Opener;

const PARSE_THEMSELVES = new Set(['http:', 'https:', 'postgres:', 'postgresql:', 'nats:', 'redis+sentinel:']);

async function loadBackend<M>(backend: string, driver: string, load: () => Promise<M>): Promise<M> {
  try {
    return await load();
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new UnsupportedError('open', backend, `its driver is not installed; run: npm install ${driver}`);
    }
    throw err;
  }
}

/** Opens any backend by URL: memory:, sqlite:./path.db, postgres://…, nats://…, redis://…, http://revkit-server */
export async function open(url: string, options: OpenOptions = {}): Promise<Store> {
  if (typeof url !== 'string' || url.length === 0) throw new InvalidArgumentError('open() needs a store URL such as sqlite:./data/revkit.db');
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0].toLowerCase();
  const opener = scheme === undefined ? undefined : openers[scheme];
  if (!opener) {
    throw new InvalidArgumentError(`unknown store URL ${JSON.stringify(redactUrl(url))}: use one of ${Object.keys(openers).map((s) => `${s}…`).join(', ')}`);
  }
  // A host list (http://h1:8787,http://h2:8787, postgres://h1:5432,h2:5433/db, nats://h1:4222,h2:4222,
  // redis+sentinel://s1:26379,s2:26379/name) is no WHATWG URL: these backends parse and check the text themselves.
  if (PARSE_THEMSELVES.has(scheme as string)) return opener(undefined, url, options);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new InvalidArgumentError(`malformed store URL ${JSON.stringify(redactUrl(url))}`, { cause: withoutUrlInput(cause) });
  }
  return opener(parsed, url, options);
}

export const supportedSchemes = (): string[] => Object.keys(openers);
