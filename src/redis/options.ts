import { InvalidArgumentError, type StoreOptions } from '../core/index.js';
import { assertKnownUrlOptions, redactUrl, withoutUrlInput } from '../core/redact.js';
import { DEFAULT_COMMAND_TIMEOUT_MS } from './connection.js';

export interface RedisStoreOptions extends StoreOptions {
  /** Names the store inside the Redis database and is its hash tag; default `revkit`. No `{` or `}`. */
  prefix?: string;
  /** Revisions kept per key for history() (the current one included); default 64. */
  historyDepth?: number;
  /** Revisions kept in the change log for watch({ fromRevision }); default 100,000. */
  changeLogRevisions?: number;
  /** How often expired keys are turned into tombstones (0: never, reads still see them expire); default 1000 ms. */
  sweepIntervalMs?: number;
  /** How long a caught-up watch waits on the change log (XREAD BLOCK) before it looks again; default 10,000 ms. */
  watchBlockMs?: number;
  /**
   * close(): how long commands in flight may still get their answers; default 1000 ms.
   * What is left then is answered with ClosedError (`ambiguous` for a write that was sent: it may still commit).
   */
  closeTimeoutMs?: number;
  /**
   * Acknowledge a write only once `WAIT wait waitTimeoutMs` confirms that many replicas have it
   * (replication.ts); default 0: as soon as the primary has it. With wait ≥ 1 reads also wait for
   * the replicas to hold everything they show, and capabilities.durability is `replicated`.
   */
  wait?: number;
  /**
   * How long a command may go unanswered (beyond WAIT's timeout, XREAD's block); default 5000 ms.
   * A command never sent for want of a ready connection then fails as transient; one that was sent
   * (a frozen or cut-off server) as "may have run", and an own connection is cut and made again
   * through the sentinels. open() waits at most twice this for its connection.
   */
  commandTimeoutMs?: number;
  /** How long a write waits for its replicas before it is answered "may or may not have committed"; default 2000 ms. */
  waitTimeoutMs?: number;
  /**
   * Detection of acknowledged writes lost in a failover (scripts.ts: lineage and gaps); default on
   * for a Sentinel URL or wait ≥ 1, off for a single server. `false` in replicated mode is unsafe:
   * revisions may be handed out twice after a failover. It exists for the tests' canary.
   */
  lossDetection?: boolean;
}

/** The options with their defaults, checked. */
export interface RedisSettings {
  historyDepth: number;
  changeLogRevisions: number;
  watchBlockMs: number;
  closeTimeoutMs: number;
  /** 0: no sweeper. */
  sweepIntervalMs: number;
  /** Replicas a write waits for (0: none). */
  wait: number;
  waitTimeoutMs: number;
  commandTimeoutMs: number;
}

export const URL_OPTIONS = ['prefix', 'historyDepth', 'changeLogRevisions', 'sweepIntervalMs', 'watchBlockMs', 'closeTimeoutMs', 'wait', 'waitTimeoutMs', 'commandTimeoutMs', 'lossDetection'] as const;
/**
 * ioredis options a URL may carry, passed on to it. ioredis would take any
 * query option as a client option, as a string ("false" is true): only these,
 * whose string form ioredis reads right, are let through; anything else is
 * refused, never silently ignored nor handed to the client.
 */
const IOREDIS_URL_OPTIONS = ['db', 'family', 'username', 'password', 'connectionName'] as const;

/**
 * Splits a redis URL into what goes to ioredis (`clientUrl`, revkit's options
 * taken out) and revkit's own options; an unknown or malformed option is refused.
 */
export function parseRedisUrl(url: string): { clientUrl: string; options: RedisStoreOptions } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new InvalidArgumentError(`malformed redis URL ${JSON.stringify(redactUrl(url))}`, { cause: withoutUrlInput(cause) });
  }
  assertKnownUrlOptions(url, 'redis', parsed.searchParams.keys(), [...URL_OPTIONS, ...IOREDIS_URL_OPTIONS], `revkit's ${URL_OPTIONS.join(', ')}; ioredis's ${IOREDIS_URL_OPTIONS.join(', ')}`);
  const db = parsed.searchParams.get('db');
  if (db !== null && (!/^\d+$/.test(db) || parsed.pathname.length > 1)) {
    throw new InvalidArgumentError(`redis URL option db must be a non-negative integer, and not given as the path as well, got ${JSON.stringify(db)}`);
  }
  const family = parsed.searchParams.get('family');
  if (family !== null && family !== '4' && family !== '6' && family !== '0') throw new InvalidArgumentError(`redis URL option family must be 4, 6 or 0 (either), got ${JSON.stringify(family)}`);
  const options = takeStoreOptions(parsed.searchParams);
  return { clientUrl: parsed.toString(), options };
}

/** Takes revkit's own options out of a URL's query (the rest is the client's), checked. */
export function takeStoreOptions(params: URLSearchParams): RedisStoreOptions {
  const fromUrl: Record<string, unknown> = {};
  for (const name of URL_OPTIONS) {
    const v = params.get(name);
    if (v === null) continue;
    if (name === 'lossDetection') {
      if (v !== 'on' && v !== 'off') throw new InvalidArgumentError(`redis URL option lossDetection must be on or off, got ${JSON.stringify(v)}`);
      fromUrl[name] = v === 'on';
    } else {
      fromUrl[name] = name === 'prefix' ? v : urlInteger(name, v);
    }
    params.delete(name);
  }
  return fromUrl as RedisStoreOptions;
}

export function redisSettings(options: RedisStoreOptions): RedisSettings {
  const historyDepth = positive(options.historyDepth, 64, 'historyDepth');
  const changeLogRevisions = positive(options.changeLogRevisions, 100_000, 'changeLogRevisions');
  const watchBlockMs = positive(options.watchBlockMs, 10_000, 'watchBlockMs');
  // Node's timers fire at once past 2^31 - 1 ms: a longer block would cut the waker's connection on every read.
  if (watchBlockMs > MAX_WATCH_BLOCK_MS) throw new InvalidArgumentError(`watchBlockMs must be at most ${MAX_WATCH_BLOCK_MS} (one hour), got ${watchBlockMs}`);
  const closeTimeoutMs = options.closeTimeoutMs ?? 1000;
  if (!Number.isSafeInteger(closeTimeoutMs) || closeTimeoutMs < 0) throw new InvalidArgumentError(`closeTimeoutMs must be a non-negative integer, got ${String(closeTimeoutMs)}`);
  const sweepIntervalMs = options.sweepIntervalMs ?? 1000;
  if (!Number.isSafeInteger(sweepIntervalMs) || sweepIntervalMs < 0) throw new InvalidArgumentError(`sweepIntervalMs must be a non-negative integer, got ${String(sweepIntervalMs)}`);
  const wait = options.wait ?? 0;
  if (!Number.isSafeInteger(wait) || wait < 0 || wait > 64) throw new InvalidArgumentError(`wait must be an integer from 0 to 64 (replicas a write waits for), got ${String(wait)}`);
  const waitTimeoutMs = positive(options.waitTimeoutMs, 2000, 'waitTimeoutMs');
  const commandTimeoutMs = positive(options.commandTimeoutMs, DEFAULT_COMMAND_TIMEOUT_MS, 'commandTimeoutMs');
  return { historyDepth, changeLogRevisions, watchBlockMs, closeTimeoutMs, sweepIntervalMs, wait, waitTimeoutMs, commandTimeoutMs };
}

/** A whole-number URL option; anything else (`10ms`, `1e3`, ``) is refused, not read as NaN or rounded. */
function urlInteger(name: string, text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`redis URL option ${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
  return n;
}

const MAX_WATCH_BLOCK_MS = 3_600_000;

function positive(v: unknown, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}
