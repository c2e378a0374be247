/**
 * Redis backend (ioredis).
 *
 * URL: `redis://[user:password@]host:port/db?prefix=app` (`rediss://` for
 * TLS); further options in the query: `historyDepth`, `changeLogRevisions`,
 * `sweepIntervalMs`, `watchBlockMs`, `closeTimeoutMs`, `wait`,
 * `waitTimeoutMs`, `commandTimeoutMs`, `lossDetection`, and ioredis's `db`, `family`,
 * `username`, `password`, `connectionName`; any other is refused. Or
 * `redis+sentinel://[user:password@]h1:26379,h2:26379/master-name?…`
 * (sentinel-url.ts; docs/replication-redis.md).
 * Or `RedisStore.fromClient(client, options)` with an application's own
 * ioredis client.
 *
 * All of one store's keys are `rk:{<prefix>}:…` (keys.ts): one hash tag, one cluster
 * slot. Writes are Lua scripts (scripts.ts); watch() reads the store's
 * change-log stream (watch.ts), and caught-up watches share one blocking reader
 * (waker.ts). The store writes an incarnation marker when it opens and every script checks it (runner.ts): a server
 * that lost the data (restarted without persistence, flushed) makes every
 * operation fail until the application opens the store again.
 */
import { Redis, type RedisOptions } from 'ioredis';
import {
  BackendError, BaseStore, DEFAULT_MAX_VALUE_BYTES, assertKey, assertLimit, assertAfter, assertOptions, assertPrefix, compareKeys, encodeForWrite, jsonCodec, noteWrittenBytes,
  type AsyncQueue, type AtomicOp, type Capabilities, type Codec, type DeleteOptions, type Entry,
  type HistoryOptions, type ListOptions, type ListPage, type PutOptions, type ReplicationState, type StoredRecord, type WatchEvent, type WatchOptions,
} from '../core/index.js';
import { atomicArgs, atomicConflict, conditionalWrite } from './conditions.js';
import { ConnectionErrors, DEFAULT_COMMAND_TIMEOUT_MS, InFlight, OWN_CONNECTION, cutConnection, redisAddress, watchHandshake, withinMs } from './connection.js';
import { detectDurability } from './durability.js';
import { StoreKeys, assertStorePrefix } from './keys.js';
import { parseRedisUrl, redisSettings, type RedisSettings, type RedisStoreOptions } from './options.js';
import { mapRedisError, toRecord, unpack, type PackedRecord } from './records.js';
import { ServingMember, replicationState } from './replication.js';
import { parseSentinelUrl } from './sentinel-url.js';
import { ScriptRunner, type Reply } from './runner.js';
import { SCRIPTS } from './scripts.js';
import { StreamWaker } from './waker.js';
import { followChangeLog, type ChangeLogAccess } from './watch.js';
import { findWriteInLog } from './find-write.js';

export type { RedisStoreOptions } from './options.js';
export { START_CLOCK_MARGIN_MS, START_TRIM_SLACK_MS } from './watch.js';
export { dropRedisStore } from './keys.js';

/**
 * A Sentinel-managed connection: a master that was demoted while this
 * client is connected answers READONLY — reconnect, asking the sentinels
 * again (the command is not resent: it failed, nothing ran).
 */
const SENTINEL_CONNECTION: RedisOptions = {
  reconnectOnError: (err) => (/^READONLY/.test(err.message) ? 1 : false),
  // While the sentinels still name the dead primary, attempts fail at once; ioredis' default backs off to
  // 2 s between them, which added up to 2 s to the takeover after the promotion. A failover takes seconds.
  retryStrategy: (times) => Math.min(times * 50, 500),
};

export class RedisStore extends BaseStore {
  readonly backend = 'redis';
  capabilities: Capabilities = { atomic: true, ttl: true, history: true, watch: true, crossProcess: true, durability: 'memory' };
  /** How `capabilities.durability` was found out. */
  durabilityNote = 'not checked yet';
  readonly prefix: string;
  private readonly k: StoreKeys;
  private readonly codec: Codec;
  private readonly maxValueBytes: number;
  private readonly settings: RedisSettings;
  private readonly inFlight: InFlight;
  private readonly scripts: ScriptRunner;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly watchers = new Set<AsyncQueue<unknown>>();
  private readonly waker: StreamWaker;
  private readonly changeLog: ChangeLogAccess;
  private readonly serving: ServingMember;
  private readonly handshakeWatch: (() => void) | undefined;

  private constructor(readonly client: Redis, private readonly ownsClient: boolean, options: RedisStoreOptions) {
    super();
    const prefix = options.prefix ?? 'revkit';
    assertStorePrefix(prefix);
    this.prefix = prefix;
    this.k = new StoreKeys(prefix);
    this.codec = options.codec ?? jsonCodec;
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.valueFormat = { codec: this.codec, maxValueBytes: this.maxValueBytes };
    this.settings = redisSettings(options);
    const { commandTimeoutMs } = this.settings;
    // A connection of the store's own that stopped answering is cut: ioredis makes it again, asking the
    // sentinels (a frozen or cut-off master never closes it). An application's client is left alone.
    this.inFlight = new InFlight(client, { commandTimeoutMs, ...(ownsClient ? { onSilent: () => cutConnection(client) } : {}) });
    if (ownsClient) this.handshakeWatch = watchHandshake(client, commandTimeoutMs);
    const sentinel = Array.isArray(client.options?.sentinels) && client.options.sentinels.length > 0;
    const { wait, waitTimeoutMs } = this.settings;
    this.scripts = new ScriptRunner(this.inFlight, {
      prefix, address: redisAddress(client), wait, waitTimeoutMs, barrier: `${this.k.meta.slice(0, -'meta'.length)}sync`,
      detectLoss: options.lossDetection ?? (sentinel || wait > 0),
    }, () => this.assertOpen());
    this.serving = new ServingMember(client);
    this.waker = new StreamWaker(client, this.k.log, this.settings.watchBlockMs, commandTimeoutMs, { ...OWN_CONNECTION, connectionName: `revkit-watch:${this.prefix}` });
    this.changeLog = {
      scripts: this.scripts, keys: this.k, waker: this.waker, watchers: this.watchers, pageReads: new Map(),
      run: (...call) => this.run(...call),
      toEvent: <T>(fields: Buffer[]) => this.toEvent<T>(fields),
      isClosed: () => this.isClosed,
    };
    if (this.settings.sweepIntervalMs > 0) {
      this.sweeper = setInterval(() => void this.sweepExpired().catch(() => undefined), this.settings.sweepIntervalMs);
      this.sweeper.unref();
    }
  }

  /** Opens a store on a connection of its own; `close()` ends it. */
  static async fromUrl(url: string, options: RedisStoreOptions = {}): Promise<RedisStore> {
    let client: Redis;
    let fromUrl: RedisStoreOptions;
    let opening = () => undefined as unknown;
    if (/^redis\+sentinel:/i.test(url)) {
      const parsed = parseSentinelUrl(url);
      fromUrl = parsed.options;
      // Opening: sentinels that none answers are a wrong URL or a down deployment, refused at once
      // (ioredis would retry forever); once open, they are retried through any outage.
      let opened = false;
      opening = () => (opened = true);
      client = new Redis({
        ...parsed.client, ...OWN_CONNECTION, ...SENTINEL_CONNECTION, lazyConnect: true,
        sentinelRetryStrategy: (times: number) => (opened ? Math.min(times * 10, 1000) : null),
      });
    } else {
      const parsed = parseRedisUrl(url);
      fromUrl = parsed.options;
      client = new Redis(parsed.clientUrl, { ...OWN_CONNECTION, lazyConnect: true });
    }
    client.on('error', () => undefined);
    const errors = new ConnectionErrors(client);
    const connectMs = 2 * (fromUrl.commandTimeoutMs ?? options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
    const stopWatch = watchHandshake(client, connectMs / 2);
    try {
      await withinMs(client.connect(), connectMs, () => errors.notReady(connectMs));
      opening();
      return await RedisStore.open(client, true, { ...fromUrl, ...options });
    } catch (err) {
      client.disconnect();
      throw mapRedisError(err instanceof Error ? errors.describe(err) : err, 'open', false);
    } finally {
      stopWatch();
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
      await store.scripts.open(store.k.meta);
      const { durability, note } = await detectDurability((...args) => store.command(args));
      const { wait, waitTimeoutMs } = store.settings;
      // Only when the server really waits for a replica before an acknowledgement (docs/replication-redis.md).
      store.durabilityNote = wait > 0 ? `acknowledged after WAIT ${wait} ${waitTimeoutMs} confirms ${wait} replica(s); on the master: ${note}` : note;
      store.capabilities = { ...store.capabilities, durability: wait > 0 ? 'replicated' : durability };
    } catch (err) {
      await store.close().catch(() => undefined);
      throw mapRedisError(err, 'open', false);
    }
    return store;
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
    assertOptions(options, 'list()');
    this.assertOpen();
    const prefix = options.prefix ?? '';
    assertPrefix(prefix);
    assertAfter(options.after);
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
    assertOptions(options, 'history()');
    this.assertOpen();
    assertKey(key);
    const depth = this.settings.historyDepth;
    const limit = assertLimit(options.limit, depth) ?? depth;
    const reply = await this.run(SCRIPTS.history, [this.k.meta, this.k.hist(key)], [limit], 'history', false);
    return (reply[1] as Buffer[]).map((p) => this.record<T>(key, unpack(p), Number.NEGATIVE_INFINITY));
  }

  async headRevision(): Promise<number> {
    this.assertOpen();
    const reply = await this.run(SCRIPTS.head, [this.k.meta], [], 'head', false);
    return this.scripts.saw(Number(reply[1]));
  }

  // ------------------------------------------------------------------ writes

  protected doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    return this.putWith(key, value, options, undefined);
  }

  /** update()'s write without a read (core/own-writes.ts): lands only on this store object's own last write of the key. */
  putOnOwnWrite(key: string, value: unknown, guard: PutOptions, ownWriter: string): Promise<Entry<unknown>> {
    this.assertOpen();
    return this.putWith(key, value, guard, ownWriter);
  }

  /** update()'s look for its own write beyond history() (core/own-write.ts): the change log (find-write.ts). */
  async findWrite(key: string, writer: string, base: number): Promise<StoredRecord<unknown> | 'absent' | undefined> {
    this.assertOpen();
    const found = await findWriteInLog((...call) => this.run(...call), this.k, key, writer, base);
    return found === undefined || found === 'absent' ? found : this.record(key, found, Number.NEGATIVE_INFINITY);
  }

  /** A put under its condition, or (`ownWriter`) guarded by the revision of options.ifRevision AND that writer token. */
  private async putWith<T>(key: string, value: T, options: PutOptions, ownWriter: string | undefined): Promise<Entry<T>> {
    const { bytes, value: copy } = this.encode(value);
    const { historyDepth, changeLogRevisions } = this.settings;
    const reply = await conditionalWrite(key, options, (mode, want) =>
      this.run(SCRIPTS.put, this.k.forWrite(key), [key, ownWriter === undefined ? mode : 'own', want, bytes, options.ttlMs ?? 0, options.writer ?? '', historyDepth, changeLogRevisions, ownWriter ?? ''], 'put', true),
    (k) => this.getRecord(k));
    const [, revision, createdRevision, updatedAt, expiresAt] = reply as number[];
    const entry: Entry<T> = { key, value: copy as T, revision: this.scripts.saw(revision as number), createdRevision: createdRevision as number, updatedAt: updatedAt as number };
    if (expiresAt) entry.expiresAt = expiresAt;
    if (options.writer !== undefined) entry.writer = options.writer;
    noteWrittenBytes(options, entry, bytes);
    return entry;
  }

  protected async doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    const { historyDepth, changeLogRevisions } = this.settings;
    const reply = await conditionalWrite(key, options, (mode, want) =>
      this.run(SCRIPTS.delete, this.k.forWrite(key), [key, mode, want, options.writer ?? '', historyDepth, changeLogRevisions], 'delete', true),
    (k) => this.getRecord(k));
    return reply[0] === 'NOOP' ? null : this.scripts.saw(reply[1] as number);
  }

  protected override async commitAtomic(ops: AtomicOp[]): Promise<{ revision: number }> {
    const args = [this.settings.historyDepth, this.settings.changeLogRevisions, ...atomicArgs(ops, (value) => this.encode(value).bytes)];
    const keys = [this.k.meta, this.k.rec, this.k.keys, this.k.ttl, this.k.log, ...ops.map((op) => this.k.hist(op.key))];
    const reply = await this.run(SCRIPTS.atomic, keys, args, 'atomic commit', true);
    if (reply[0] === 'CONFLICT') throw atomicConflict(reply[1] as Array<Buffer | number>);
    return { revision: this.scripts.saw(reply[1] as number) };
  }

  /**
   * Turns expired keys into tombstones with a new revision, so that watchers
   * see a delete. Which keys are due is judged by the server's clock, as the
   * expiry itself is (a client clock behind the server's would hold back the
   * delete events that lock waiters wait for).
   */
  async sweepExpired(): Promise<number> {
    if (this.isClosed || this.scripts.lost) return 0;
    // A background call: the loss it may meet is not "told" to this process (ScriptRunner.run).
    const [seconds, micros] = (await this.inFlight.track(() => this.client.call('TIME'))) as [string, string];
    const serverNow = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const due = (await this.inFlight.track(() => this.client.call('ZRANGE', this.k.ttl, '-inf', String(serverNow), 'BYSCORE', 'LIMIT', '0', '200'))) as string[];
    let swept = 0;
    for (const key of due) {
      if (this.isClosed) break;
      const reply = await this.run(SCRIPTS.expire, this.k.forWrite(key), [key, this.settings.historyDepth, this.settings.changeLogRevisions], 'expiry sweep', true, true);
      if (reply[0] === 'OK') swept++;
    }
    return swept;
  }

  // ------------------------------------------------------------------ replication

  /** The serving master, its replicas (INFO replication), the sentinels, what an acknowledgement means, a detected loss. */
  async replication(): Promise<ReplicationState> {
    this.assertOpen();
    // The head script answers the store's loss latch (DATALOST), which another process may have set.
    // In the background: it reports the latch, it does not count as this process having been told.
    await this.run(SCRIPTS.head, [this.k.meta], [], 'replication state', false, true).catch(() => undefined);
    return replicationState((...args) => this.command(args), this.client, this.serving, this.capabilities.durability, this.durabilityNote, this.scripts.lost);
  }

  /**
   * An operator accepts a detected loss (DataLostError): every process's
   * operations go on, revisions above every one handed out before (the
   * counter jumped past the lost range when the loss was found).
   */
  async acceptLoss(): Promise<void> {
    await this.scripts.acceptLoss(this.k.meta);
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
    const known = this.scripts.seen;
    this.assertOpen();
    return followChangeLog<T>(this.changeLog, options, startedAt, known);
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
    this.handshakeWatch?.();
    this.serving.detach();
    for (const queue of [...this.watchers]) queue.end();
    this.waker.close();
    await this.inFlight.drain(this.settings.closeTimeoutMs);
    const left = this.inFlight.detach(this.backend);
    if (!this.ownsClient) return;
    // Commands still unanswered are not waited for any longer: QUIT would wait behind them.
    if (left > 0) this.client.disconnect();
    else await this.client.quit().catch(() => this.client.disconnect());
  }

  // ------------------------------------------------------------------ plumbing

  /** A plain command (not a script), with the command timeout. */
  private command(args: string[]): Promise<unknown> {
    const [name = '', ...rest] = args;
    return this.inFlight.track(() => this.client.call(name, ...rest));
  }

  /** Every script of this store goes through here, its watches' too (ScriptRunner.run: the lost-data latch). */
  private run(...call: Parameters<ScriptRunner['run']>): Promise<Reply> {
    return this.scripts.run(...call);
  }

  private encode(value: unknown): { bytes: Buffer; value: unknown } {
    const { bytes, value: copy } = encodeForWrite(this.codec, value, this.maxValueBytes);
    return { bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), value: copy };
  }

  private record<T>(key: string, r: PackedRecord, now: number): StoredRecord<T> {
    this.scripts.saw(r.revision);
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
    // A copy: watches at one position share the page read (watch.ts readPage), and a codec may
    // hand back the very bytes it decodes (rawCodec) — one watcher's event must not be another's.
    const r = unpack(Buffer.from(fields[3] as Buffer));
    if (r.deleted) return { type: 'delete', key, revision: r.revision };
    return { type: 'put', key, revision: r.revision, entry: this.record<T>(key, r, Number.NEGATIVE_INFINITY) as Entry<T> };
  }
}

export async function redisStore(client: Redis, options?: RedisStoreOptions): Promise<RedisStore> {
  return RedisStore.fromClient(client, options);
}
