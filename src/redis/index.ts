/**
 * Redis backend (ioredis).
 *
 * URL: `redis://[user:password@]host:port/db?prefix=app` (`rediss://` for
 * TLS); further options in the query: `historyDepth`, `changeLogRevisions`,
 * `sweepIntervalMs`, `watchBlockMs`, `closeTimeoutMs`, and ioredis's `db`,
 * `family`, `username`, `password`, `connectionName`; any other is refused.
 * Or `RedisStore.fromClient(client, options)` with an application's own
 * ioredis client.
 *
 * All of one store's keys are `rk:{<prefix>}:…`: one hash tag, one cluster
 * slot. Writes are Lua scripts (scripts.ts); watch() reads the store's
 * change-log stream, and caught-up watches share one blocking reader
 * (waker.ts). The store writes an incarnation marker when it opens and every script checks it: a server
 * that lost the data (restarted without persistence, flushed) makes every
 * operation fail until the application opens the store again.
 */
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import {
  AsyncQueue, BackendError, BaseStore, ConflictError, DEFAULT_MAX_VALUE_BYTES, HistoryGoneError, InvalidArgumentError,
  assertKey, assertLimit, assertPrefix, assertValueSize, compareKeys, conditionFailure, jsonCodec, keyFilter, sleep,
  type AtomicOp, type Capabilities, type Codec, type Condition, type DeleteOptions, type Durability, type Entry, type FailedCheck,
  type HistoryOptions, type ListOptions, type ListPage, type PutOptions, type StoreOptions, type StoredRecord, type WatchEvent, type WatchOptions,
} from '../core/index.js';
import { assertKnownUrlOptions, redactUrl, withoutUrlInput } from '../core/redact.js';
import { ConnectionErrors, InFlight } from './connection.js';
import { mapRedisError, toRecord, unpack, type PackedRecord } from './records.js';
import { SCRIPTS, type Script } from './scripts.js';
import { StreamWaker } from './waker.js';

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
}

const URL_OPTIONS = ['prefix', 'historyDepth', 'changeLogRevisions', 'sweepIntervalMs', 'watchBlockMs', 'closeTimeoutMs'] as const;
/**
 * ioredis options a URL may carry, passed on to it. ioredis would take any
 * query option as a client option, as a string ("false" is true): only these,
 * whose string form ioredis reads right, are let through; anything else is
 * refused, never silently ignored nor handed to the client.
 */
const IOREDIS_URL_OPTIONS = ['db', 'family', 'username', 'password', 'connectionName'] as const;
/** The largest stream id sequence: `<rev>-MAX_SEQ` sorts after every entry of revision `rev`. */
const MAX_SEQ = '18446744073709551615';
const WATCH_PAGE = 1000;
/**
 * How far before the moment watch() was called a watch "from now" reaches
 * back, beyond the measured round trip of its start: the server clock's
 * rounding to ms and a step of the server's clock by up to this much between
 * watch() and its start cannot make it miss a write. The price: a write by
 * another process that began up to this long (plus the start's round trip)
 * before watch() was called may be delivered too.
 */
export const START_CLOCK_MARGIN_MS = 250;
/**
 * The tight bound of a watch "from now" (see startFromNow): what may be
 * trimmed from the change log is judged against the moment watch() was
 * called less this much, plus 1 ms per second of the start's round trip —
 * performance.now()'s resolution and the rates of the two clocks (an NTP
 * slew is at most 500 ppm), not a step of the server's clock.
 */
export const START_TRIM_SLACK_MS = 3;
/** ifValue is a compare on the revision read; a concurrent write of an equal value sends it round again, this often at most. */
const IF_VALUE_ROUNDS = 64;

/** A script's answer; the first element (a status) is turned into a string. */
type Reply = Array<Buffer | number | string | null | Reply>;

export class RedisStore extends BaseStore {
  readonly backend = 'redis';
  capabilities: Capabilities = { atomic: true, ttl: true, history: true, watch: true, crossProcess: true, durability: 'memory' };
  /** How `capabilities.durability` was found out. */
  durabilityNote = 'not checked yet';
  readonly prefix: string;
  private readonly k: { meta: string; rec: string; keys: string; ttl: string; log: string };
  private readonly codec: Codec;
  private readonly maxValueBytes: number;
  private readonly historyDepth: number;
  private readonly changeLogRevisions: number;
  private readonly watchBlockMs: number;
  private readonly closeTimeoutMs: number;
  private readonly inFlight: InFlight;
  private incarnation = '';
  /** The highest revision this store has seen: the server's counter below it means it lost writes. */
  private seen = 0;
  private lost: BackendError | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly watchers = new Set<AsyncQueue<unknown>>();
  private readonly waker: StreamWaker;

  private constructor(readonly client: Redis, private readonly ownsClient: boolean, options: RedisStoreOptions) {
    super();
    const prefix = options.prefix ?? 'revkit';
    assertStorePrefix(prefix);
    this.prefix = prefix;
    const base = `rk:{${this.prefix}}:`;
    this.k = { meta: `${base}meta`, rec: `${base}rec`, keys: `${base}keys`, ttl: `${base}ttl`, log: `${base}log` };
    this.codec = options.codec ?? jsonCodec;
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.historyDepth = positive(options.historyDepth, 64, 'historyDepth');
    this.changeLogRevisions = positive(options.changeLogRevisions, 100_000, 'changeLogRevisions');
    this.watchBlockMs = positive(options.watchBlockMs, 10_000, 'watchBlockMs');
    const closeMs = options.closeTimeoutMs ?? 1000;
    if (!Number.isSafeInteger(closeMs) || closeMs < 0) throw new InvalidArgumentError(`closeTimeoutMs must be a non-negative integer, got ${String(closeMs)}`);
    this.closeTimeoutMs = closeMs;
    this.inFlight = new InFlight(client);
    this.waker = new StreamWaker(client, this.k.log, this.watchBlockMs, { ...OWN_CONNECTION, connectionName: `revkit-watch:${this.prefix}` });
    const sweepMs = options.sweepIntervalMs ?? 1000;
    if (!Number.isSafeInteger(sweepMs) || sweepMs < 0) throw new InvalidArgumentError(`sweepIntervalMs must be a non-negative integer, got ${String(sweepMs)}`);
    if (sweepMs > 0) {
      this.sweeper = setInterval(() => void this.sweepExpired().catch(() => undefined), sweepMs);
      this.sweeper.unref();
    }
  }

  /** Opens a store on a connection of its own; `close()` ends it. */
  static async fromUrl(url: string, options: RedisStoreOptions = {}): Promise<RedisStore> {
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
    const fromUrl: Record<string, unknown> = {};
    for (const name of URL_OPTIONS) {
      const v = parsed.searchParams.get(name);
      if (v === null) continue;
      fromUrl[name] = name === 'prefix' ? v : urlInteger(name, v);
      parsed.searchParams.delete(name);
    }
    const client = new Redis(parsed.toString(), { ...OWN_CONNECTION, lazyConnect: true });
    client.on('error', () => undefined);
    const errors = new ConnectionErrors(client);
    try {
      await client.connect();
      return await RedisStore.open(client, true, { ...fromUrl, ...options });
    } catch (err) {
      client.disconnect();
      throw mapRedisError(err instanceof Error ? errors.describe(err) : err, 'open', false);
    } finally {
      errors.detach();
    }
  }

  /** A store on an application's ioredis client (not ended by `close()`). */
  static async fromClient(client: Redis, options: RedisStoreOptions = {}): Promise<RedisStore> {
    return RedisStore.open(client, false, options);
  }

  private static async open(client: Redis, owns: boolean, options: RedisStoreOptions): Promise<RedisStore> {
    const store = new RedisStore(client, owns, options);
    try {
      const marker = `${Date.now().toString(36)}-${randomBytes(8).toString('hex')}`;
      store.incarnation = String(await store.inFlight.evalsha(SCRIPTS.open, [store.k.meta], [marker]));
      await store.detectDurability();
    } catch (err) {
      await store.close().catch(() => undefined);
      throw mapRedisError(err, 'open', false);
    }
    return store;
  }

  /** appendonly + appendfsync say what an acknowledged write survives (README: "Redis"). */
  private async detectDurability(): Promise<void> {
    let durability: Durability;
    try {
      // Sent together: one round trip.
      const [aof, fsync, maxmemory, policy] = (await Promise.all(['appendonly', 'appendfsync', 'maxmemory', 'maxmemory-policy']
        .map((name) => this.client.config('GET', name)))).map((pair) => (pair as string[])[1]);
      durability = aof !== 'yes' ? 'memory' : fsync === 'always' ? 'fsync' : 'os-buffered';
      this.durabilityNote = `appendonly ${aof ?? '?'}, appendfsync ${fsync ?? '?'}`;
      // An evicting server may drop a record or its history at any time: no better than memory.
      if (maxmemory !== '0' && policy !== 'noeviction') {
        durability = 'memory';
        this.durabilityNote += `; maxmemory ${maxmemory} with maxmemory-policy ${policy ?? '?'} may evict this store's keys (use noeviction)`;
      }
    } catch (err) {
      durability = 'memory';
      this.durabilityNote = `CONFIG GET was refused (${(err as Error).message}): assumed memory, as an acknowledged write may live in memory only`;
    }
    this.capabilities = { ...this.capabilities, durability };
  }

  // ------------------------------------------------------------------ reads

  async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.assertOpen();
    assertKey(key);
    const reply = await this.run(SCRIPTS.read, [this.k.meta, this.k.rec], [key], 'read', false);
    const packed = reply[1] as Buffer | null;
    return packed === null ? null : this.record<T>(key, unpack(packed), Number(reply[2]));
  }

  async list<T = unknown>(options: ListOptions = {}): Promise<ListPage<T>> {
    this.assertOpen();
    const prefix = options.prefix ?? '';
    assertPrefix(prefix);
    const limit = assertLimit(options.limit, 10_000) ?? 1000;
    // The key set sorts by bytes (memcmp), like compareKeys; keys are UTF-8 and never hold 0xff.
    const after = options.after;
    const min = after !== undefined && compareKeys(after, prefix) >= 0 ? `(${after}` : prefix === '' ? '-' : `[${prefix}`;
    const max = prefix === '' ? '+' : Buffer.concat([Buffer.from(`[${prefix}`), Buffer.from([0xff])]);
    const reply = await this.run(SCRIPTS.list, [this.k.meta, this.k.rec, this.k.keys], [min, max, limit], 'list', false);
    const flat = reply[1] as Buffer[];
    const entries: Entry<T>[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const key = (flat[i] as Buffer).toString('utf8');
      entries.push(this.record<T>(key, unpack(flat[i + 1] as Buffer), Number.NEGATIVE_INFINITY) as Entry<T>);
    }
    return reply[2] === 1 ? { entries, cursor: entries[entries.length - 1]?.key as string } : { entries };
  }

  async history<T = unknown>(key: string, options: HistoryOptions = {}): Promise<StoredRecord<T>[]> {
    this.assertOpen();
    assertKey(key);
    const limit = assertLimit(options.limit, this.historyDepth) ?? this.historyDepth;
    const reply = await this.run(SCRIPTS.history, [this.k.meta, this.hist(key)], [limit], 'history', false);
    return (reply[1] as Buffer[]).map((p) => this.record<T>(key, unpack(p), Number.NEGATIVE_INFINITY));
  }

  async headRevision(): Promise<number> {
    this.assertOpen();
    const reply = await this.run(SCRIPTS.head, [this.k.meta], [], 'head', false);
    return this.saw(Number(reply[1]));
  }

  // ------------------------------------------------------------------ writes

  protected async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    const bytes = this.encode(value);
    const reply = await this.conditional(key, options, (mode, want) =>
      this.run(SCRIPTS.put, this.writeKeys(key), [key, mode, want, bytes, options.ttlMs ?? 0, options.writer ?? '', this.historyDepth, this.changeLogRevisions], 'put', true));
    const [, revision, createdRevision, updatedAt, expiresAt] = reply as number[];
    const entry: Entry<T> = { key, value: this.codec.decode(bytes) as T, revision: this.saw(revision as number), createdRevision: createdRevision as number, updatedAt: updatedAt as number };
    if (expiresAt) entry.expiresAt = expiresAt;
    if (options.writer !== undefined) entry.writer = options.writer;
    return entry;
  }

  protected async doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    const reply = await this.conditional(key, options, (mode, want) =>
      this.run(SCRIPTS.delete, this.writeKeys(key), [key, mode, want, options.writer ?? '', this.historyDepth, this.changeLogRevisions], 'delete', true));
    return reply[0] === 'NOOP' ? null : this.saw(reply[1] as number);
  }

  /**
   * Runs a single-key write under its condition. ifValue compares decoded
   * values, which Lua cannot: the value is compared here and the write is
   * guarded by the live revision it was read at; a conflict there means the
   * key moved, so it is compared again.
   */
  private async conditional(key: string, cond: Condition, write: (mode: string, want: number | '') => Promise<Reply>): Promise<Reply> {
    const attempt = async (mode: string, want: number | '') => {
      const reply = await write(mode, want);
      if (reply[0] !== 'CONFLICT') return reply;
      const actual = reply[1] as number;
      throw new ConflictError([{ key, expected: mode === 'absent' ? 'absent' : (want as number), actual: actual < 0 ? null : actual }]);
    };
    if (cond.ifValue === undefined) {
      if (cond.ifAbsent) return attempt('absent', '');
      if (cond.ifRevision !== undefined) return attempt('rev', cond.ifRevision);
      return attempt('', '');
    }
    for (let round = 1; ; round++) {
      const current = await this.getRecord(key);
      const failure = conditionFailure(key, current, { ifValue: cond.ifValue });
      if (failure) throw new ConflictError([failure]);
      try {
        return await attempt('liverev', (current as Entry).revision);
      } catch (err) {
        if (!ConflictError.is(err)) throw err;
        if (round >= IF_VALUE_ROUNDS) throw new ConflictError([{ key, expected: 'value', actual: err.actual }]);
      }
    }
  }

  protected override async commitAtomic(ops: AtomicOp[]): Promise<{ revision: number }> {
    const args: Array<string | number | Buffer> = [this.historyDepth, this.changeLogRevisions, ops.length];
    for (const op of ops) {
      if (op.type === 'check') args.push('c', op.key, op.revision === null ? '' : op.revision, 0);
      else if (op.type === 'set') args.push('s', op.key, this.encode(op.value), op.ttlMs ?? 0);
      else args.push('d', op.key, '', 0);
    }
    const keys = [this.k.meta, this.k.rec, this.k.keys, this.k.ttl, this.k.log, ...ops.map((op) => this.hist(op.key))];
    const reply = await this.run(SCRIPTS.atomic, keys, args, 'atomic commit', true);
    if (reply[0] === 'CONFLICT') {
      const flat = reply[1] as Array<Buffer | number>;
      const failed: FailedCheck[] = [];
      for (let i = 0; i < flat.length; i += 3) {
        const want = String(flat[i + 1]);
        const actual = Number(flat[i + 2]);
        failed.push({ key: String(flat[i]), expected: want === '' ? 'absent' : Number(want), actual: actual < 0 ? null : actual });
      }
      throw new ConflictError(failed);
    }
    return { revision: this.saw(reply[1] as number) };
  }

  /** Turns expired keys into tombstones with a new revision, so that watchers see a delete. */
  async sweepExpired(): Promise<number> {
    if (this.isClosed || this.lost) return 0;
    const due = (await this.inFlight.track(() => this.client.call('ZRANGE', this.k.ttl, '-inf', String(Date.now()), 'BYSCORE', 'LIMIT', '0', '200'))) as string[];
    let swept = 0;
    for (const key of due) {
      if (this.isClosed) break;
      const reply = await this.run(SCRIPTS.expire, this.writeKeys(key), [key, this.historyDepth, this.changeLogRevisions], 'expiry sweep', true);
      if (reply[0] === 'OK') swept++;
    }
    return swept;
  }

  // ------------------------------------------------------------------ watch

  /**
   * A watch "from now" is fixed when watch() is called, without a round
   * trip: it delivers every change with a revision above the highest one
   * this store had seen (`seen`) that was written by a script the server ran
   * at or after that moment — by the server's clock (`TIME`, the time every
   * change-log entry carries), measured against this process's monotonic
   * clock over the round trip of the start's first script,
   * START_CLOCK_MARGIN_MS earlier — plus everything after the head that
   * script read, whichever process or connection wrote it, however late the
   * start runs. A write by another process that began up to the margin (plus
   * that round trip) before watch() was called may be delivered too.
   */
  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    const startedAt = performance.now();
    const known = this.seen;
    this.assertOpen();
    const matches = keyFilter(options);
    const queue = new AsyncQueue<WatchEvent<T>>(options.signal);
    const closing = new AbortController();
    this.watchers.add(queue as AsyncQueue<unknown>);
    queue.onClose(() => {
      this.watchers.delete(queue as AsyncQueue<unknown>);
      closing.abort();
    });
    // The events of the newest revision of a full page wait for the rest of their commit: a commit's
    // writes are pushed together, and none of them if its rest was trimmed before it was read.
    let held: WatchEvent<T>[] = [];
    let heldRevision = -1;
    const release = () => {
      for (const event of held) queue.push(event);
      held = [];
    };
    const follow = async () => {
      // undefined: "from now", until startFromNow has fixed the start (and read the first page).
      let after = options.fromRevision === undefined ? undefined : `${options.fromRevision}-${MAX_SEQ}`;
      let backoff = 0;
      while (!queue.closed && !this.isClosed) {
        try {
          let reply: Reply;
          if (after === undefined) {
            reply = await this.startFromNow(startedAt, known);
            after = `${reply[4] as number}-${MAX_SEQ}`;
          } else {
            reply = await this.run(SCRIPTS.changes, [this.k.meta, this.k.log], [after, WATCH_PAGE], 'watch', false);
          }
          const [revision, seq] = after.split('-') as [string, string];
          // Revisions at or below `trimmed` may be gone from the log; the page and the floor were read in one step.
          const needed = seq === MAX_SEQ ? Number(revision) + 1 : Number(revision);
          if ((reply[1] as number) >= needed) throw new HistoryGoneError(needed - 1, (reply[1] as number) + 1);
          const page = reply[3] as Array<[Buffer, Buffer[]]>;
          for (const [id, fields] of page) {
            after = id.toString();
            // The id is `<revision>-<n>`; only the changes this watch delivers are unpacked and decoded.
            const entryRevision = this.saw(Number(after.slice(0, after.indexOf('-'))));
            if (entryRevision !== heldRevision) {
              release();
              heldRevision = entryRevision;
            }
            if (matches((fields[1] as Buffer).toString('utf8'))) held.push(this.toEvent<T>(fields));
          }
          backoff = 0;
          if (page.length === WATCH_PAGE) continue;
          // A short page holds every change up to the head, and a script commits whole: its last commit is complete.
          release();
          if (page.length > 0) after = `${heldRevision}-${MAX_SEQ}`;
          await this.waker.wait(after, closing.signal);
        } catch (err) {
          if (queue.closed || this.isClosed) break;
          const mapped = mapRedisError(err, 'watch', false);
          if (!(BackendError.is(mapped) && mapped.transient)) throw mapped;
          backoff = Math.min(Math.max(backoff * 2, 50), 2000);
          await sleep(backoff);
        }
      }
      queue.end();
    };
    follow().catch((err) => queue.fail(err));
    return queue;
  }

  /**
   * Fixes the start of a watch "from now" called at `startedAt`
   * (performance.now()) when this store had seen revision `known`; answers
   * the start script's reply (the first page after the start, and the start
   * at [4]). Called again after a transient error, it still reaches back to
   * `startedAt`.
   *
   * The head script runs between `startedAt` and its answer, at server time
   * Ts (ms, rounded down): a write that begins after `startedAt` runs before
   * it by at most the round trip (or after it, above the head), so its entry
   * is stamped `at` = floor(Ts − round trip) or later — rounding down both
   * stamps keeps that exact. The start is the highest revision up to that head
   * written before `at` less START_CLOCK_MARGIN_MS, or `known` if higher; every
   * change after it is delivered. The margin is a courtesy: it covers a step of
   * the server's clock of up to 250 ms, at the price of delivering some writes
   * from just before watch().
   *
   * When that reach-back runs into trimmed history (more revisions than the
   * log keeps were written in the window), the watch starts at the floor — it
   * owes nothing from before watch() — if every trimmed revision was written
   * before watch() was called by the tight bound: the floor is at or below
   * `known` (no clock involved: this store had been told of it), or the
   * newest trimmed entry is stamped before `at` − START_TRIM_SLACK_MS − 1 ms
   * per second of round trip (revisions are drawn in commit order, so the
   * older trimmed ones were written earlier still). Otherwise the log was
   * trimmed past the moment watch() was called: HistoryGoneError.
   *
   * Server clock steps (TIME is the wall clock): a step back between the
   * newest trimmed write and the head script makes the bound lower, so a
   * trimmed write from before watch() may look later — a HistoryGoneError
   * that a steady clock would not have given, never a missed write. A step
   * forward by more than the slack, between a write begun after watch() and
   * the head script, makes that write's stamp look older than it is: were it
   * also trimmed before the start ran (more revisions than the log keeps
   * written within the start's round trip), the start at the floor would skip
   * it. Only that coincidence — a forward step and a log overrun inside the
   * start's round trip — escapes the bound; the margin keeps covering steps
   * wherever the window still lies in the log.
   */
  private async startFromNow(startedAt: number, known: number): Promise<Reply> {
    const head = await this.run(SCRIPTS.head, [this.k.meta], [], 'watch start', false);
    const roundTrip = performance.now() - startedAt;
    const headRevision = this.saw(Number(head[1]));
    const at = Math.floor(Number(head[2]) - roundTrip);
    const slack = START_TRIM_SLACK_MS + Math.ceil(roundTrip / 1000);
    const since = at - START_CLOCK_MARGIN_MS;
    const before = at - slack;
    const reply = await this.run(SCRIPTS.start, [this.k.meta, this.k.log], [headRevision, known, since, before, WATCH_PAGE], 'watch start', false);
    if (reply[0] === 'GONE') {
      const trimmed = Number(reply[1]);
      const trimmedAt = Number(reply[2]);
      const err = new HistoryGoneError(trimmed, trimmed + 1);
      const when = trimmedAt < 0
        ? `it carries no time (it was trimmed by an older version) and is above revision ${known}, the newest this store had seen then`
        : trimmedAt >= at
          ? `it was written ${trimmedAt - at} ms after that moment by the server's clock`
          : `it was written ${at - trimmedAt} ms before that moment by the server's clock, within the ${slack} ms allowed for clock rates and rounding: it may have been written after`;
      err.message = `a watch "from now" cannot fix its start: the change log was trimmed past the moment watch() was called — `
        + `its newest trimmed revision is ${trimmed} and ${when}; more revisions than the log keeps were written between watch() and `
        + `the start, ${Math.round(roundTrip)} ms later. The oldest kept revision is ${trimmed + 1}`;
      throw err;
    }
    return reply;
  }

  /**
   * Ends every watch, lets commands in flight get their answers for
   * closeTimeoutMs (a write that was sent commits on the server whatever the
   * client does: its caller is told so), then answers what is left with
   * ClosedError — `ambiguous` for a write that was sent — and ends the
   * connection if it is the store's.
   */
  protected async doClose(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    for (const queue of [...this.watchers]) queue.end();
    this.waker.close();
    await this.inFlight.drain(this.closeTimeoutMs);
    const left = this.inFlight.detach(this.backend);
    if (!this.ownsClient) return;
    // Commands still unanswered are not waited for any longer: QUIT would wait behind them.
    if (left > 0) this.client.disconnect();
    else await this.client.quit().catch(() => this.client.disconnect());
  }

  // ------------------------------------------------------------------ plumbing

  /**
   * Runs a script; its first reply element is a status. LOST and ROLLBACK
   * mean the server lost data under this store: that is latched, and every
   * later call fails the same way until the store is opened again.
   */
  private async run(script: Script, keys: string[], args: Array<string | number | Buffer>, what: string, write: boolean): Promise<Reply> {
    this.assertOpen();
    if (this.lost) throw this.lost;
    let reply: Reply;
    try {
      reply = (await this.inFlight.evalsha(script, keys, [this.incarnation, this.seen, ...args], write)) as Reply;
    } catch (err) {
      throw mapRedisError(err, what, write);
    }
    const status = String(reply[0]);
    reply[0] = status;
    if (status === 'LOST' || status === 'ROLLBACK') throw this.loseData(status, String(reply[1]));
    return reply;
  }

  private loseData(status: string, found: string): BackendError {
    const why = status === 'LOST'
      ? `its incarnation marker ${this.incarnation} is ${found === '' ? 'gone' : `replaced by ${found}`} (the server restarted without persistence, or the data was flushed)`
      : `its revision counter went back from at least ${this.seen} to ${found} (the server restarted and lost acknowledged writes)`;
    this.lost ??= new BackendError(
      `the redis store "${this.prefix}" lost data: ${why}. Revisions would start again and an old revision could match new data, so every operation fails until the application opens the store again`,
      { transient: false },
    );
    return this.lost;
  }

  private writeKeys(key: string): string[] {
    return [this.k.meta, this.k.rec, this.k.keys, this.k.ttl, this.k.log, this.hist(key)];
  }

  private hist(key: string): string {
    return `${this.k.meta.slice(0, -'meta'.length)}h:${key}`;
  }

  private saw(revision: number): number {
    if (revision > this.seen) this.seen = revision;
    return revision;
  }

  private encode(value: unknown): Buffer {
    const bytes = this.codec.encode(value);
    assertValueSize(bytes, this.maxValueBytes);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private record<T>(key: string, r: PackedRecord, now: number): StoredRecord<T> {
    this.saw(r.revision);
    return toRecord<T>(key, r, now, (k, rec) => this.decode(k, rec) as T);
  }

  /** A value this codec cannot read (another codec wrote it, or the bytes are damaged) is a typed error. */
  private decode(key: string, r: PackedRecord): unknown {
    try {
      return this.codec.decode(r.value);
    } catch (cause) {
      throw new BackendError(`the value of ${JSON.stringify(key)} at revision ${r.revision} cannot be decoded with the ${this.codec.name} codec`, { transient: false, cause });
    }
  }

  private toEvent<T>(fields: Buffer[]): WatchEvent<T> {
    const key = (fields[1] as Buffer).toString('utf8');
    const r = unpack(fields[3] as Buffer);
    if (r.deleted) return { type: 'delete', key, revision: r.revision };
    return { type: 'put', key, revision: r.revision, entry: this.record<T>(key, r, Number.NEGATIVE_INFINITY) as Entry<T> };
  }
}

/**
 * A connection revkit owns: a command that was sent when the connection
 * closed is not sent again (InFlight reports it as "may have run" and the
 * caller re-reads), commands wait in the offline queue during a restart.
 */
const OWN_CONNECTION: RedisOptions = { autoResendUnfulfilledCommands: false, enableOfflineQueue: true };

/** A whole-number URL option; anything else (`10ms`, `1e3`, ``) is refused, not read as NaN or rounded. */
function urlInteger(name: string, text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`redis URL option ${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
  return n;
}

function positive(v: unknown, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/**
 * Deletes every key of the store `prefix` (`rk:{prefix}:*`): its data, history,
 * change log and incarnation marker. Stores open on it then fail as having
 * lost their data. Returns how many Redis keys were deleted.
 *
 * Only that store's keys: the prefix is matched literally — the glob
 * characters a prefix may hold (`*`, `?`, `[`, `]`, `\`) are escaped in the
 * SCAN pattern, and every key found is checked to start with `rk:{prefix}:`
 * — so dropping `a*` leaves the store `ab` alone. A prefix that no store can
 * have (empty, or with `{` or `}`) is an `InvalidArgumentError`.
 */
export async function dropRedisStore(client: Redis, options: { prefix: string }): Promise<number> {
  const prefix = options?.prefix;
  assertStorePrefix(prefix);
  const base = `rk:{${prefix}}:`;
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, found] = await client.scan(cursor, 'MATCH', `${escapeGlob(base)}*`, 'COUNT', 1000);
    const keys = found.filter((k) => k.startsWith(base));
    if (keys.length > 0) deleted += await client.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
  return deleted;
}

/** A SCAN / KEYS pattern that matches `text` literally: Redis glob-matching escapes with a backslash. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

function assertStorePrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string' || prefix === '' || /[{}]/.test(prefix)) {
    throw new InvalidArgumentError(`a redis store prefix must be a non-empty string, without { or }: got ${JSON.stringify(prefix)}`);
  }
}

export async function redisStore(client: Redis, options?: RedisStoreOptions): Promise<RedisStore> {
  return RedisStore.fromClient(client, options);
}
