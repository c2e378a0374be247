/**
 * `revkit/nats`: the store over a NATS JetStream KV bucket.
 *
 * Layout: one bucket (stream `KV_<bucket>`, subjects `$KV.<bucket>.>`) per
 * store; a key is the subject `$KV.<bucket>.<encodeKey(key)>` (see keys.ts);
 * a revision is the stream sequence of the message (store-wide order).
 *
 * Every write is a JetStream publish guarded by
 * `Nats-Expected-Last-Subject-Sequence`, also the "unconditional" ones (they
 * read, then CAS, and retry on conflict), so every stored message names the
 * revision it replaced. Headers carry what the KV format has no room for:
 *
 * - `Revkit-Writer`  the writer token (update() recognises its own write after a lost ack);
 * - `Revkit-Created` the createdRevision when the write continues a live entry
 *                    (absent: the entry was created by this very message);
 * - `Revkit-Time`    updatedAt in ms (absent on foreign writes: the server's timestamp is used);
 * - `KV-Operation: DEL` for a delete, exactly as `@nats-io/kv` writes it, so
 *   the bucket stays readable by any NATS KV client. `PURGE` markers written
 *   by other clients are read as tombstones too, and guard writes the same way.
 *
 * A read (`getRecord`) is one direct-get round trip (`last_by_subj`), which is
 * what update() pays per attempt, plus one publish.
 */
import { connect, createInbox, headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type ConsumerConfig, type MsgRequest, type StoredMsg, type StreamConfig, type StreamInfo } from '@nats-io/jetstream';
import {
  AsyncQueue, BackendError, BaseStore, ClosedError, ConflictError, DEFAULT_MAX_VALUE_BYTES, HistoryGoneError, InvalidArgumentError, UnsupportedError,
  RevkitError, TooLargeError, assertKey, assertLimit, assertPrefix, assertValueSize, compareKeys, conditionFailure, isTombstone, jsonCodec, keyFilter,
  type Capabilities, type Codec, type DeleteOptions, type Durability, type Entry, type FailedCheck, type HistoryOptions, type ListOptions,
  type ListPage, type PutOptions, type StoreOptions, type StoredRecord, type Tombstone, type WatchEvent, type WatchOptions,
  type AtomicBatch, type Mutation, type MutationOfDefaulted, type UpdateOptions, type UpdateOptionsWithDefault,
} from '../core/index.js';
import { assertKnownUrlOptions, redactUrl, withoutUrlInput } from '../core/redact.js';
import { decodeKey, encodeKey, filterForPrefix } from './keys.js';
import { parseAckSubject, readOnce, ResumableReader, type ReaderContext } from './reader.js';
import { lastStoredBefore, OWED_CLOCK_SLACK_MS, START_CLOCK_MARGIN_MS } from './start.js';

export { encodeKey, decodeKey, filterForPrefix, MAX_ENCODED_KEY_CHARS } from './keys.js';
export { OWED_CLOCK_SLACK_MS, START_CLOCK_MARGIN_MS } from './start.js';

export interface NatsStoreOptions extends StoreOptions {
  /** Bucket name (`[A-Za-z0-9_-]+`); default `revkit`. */
  bucket?: string;
  /** Stream replicas when the bucket is created; default 1. */
  replicas?: number;
  /** Storage when the bucket is created; default `file`. */
  storage?: 'file' | 'memory';
  /** Revisions kept per key (1–64) when the bucket is created; default 64. */
  history?: number;
  /** Create the bucket when it does not exist; default true. */
  create?: boolean;
  /** Timeout of one request to the server; default 5000 ms. */
  timeoutMs?: number;
  /**
   * What to report as `capabilities.durability`. Detected from the bucket
   * (`memory`, `replicated` for R>1, else `os-buffered`); say `fsync` only when
   * the server runs with `jetstream { sync_interval: always }` (nats-server 2.10+).
   */
  durability?: Durability;
}

/** What the connected server can do, read from its INFO at open. */
export interface NatsServerFeatures {
  version: string;
  /** Per-message TTL (`Nats-TTL`, stream `allow_msg_ttl`): nats-server 2.11+. */
  perKeyTtl: boolean;
  /** Atomic batch publish (`Nats-Batch-*`, stream `allow_atomic`): nats-server 2.12+. */
  atomicBatch: boolean;
  /** Direct get on this bucket's stream (`allow_direct`). */
  directGet: boolean;
  /** Largest message the server accepts (INFO `max_payload`). */
  maxPayload: number;
}

const OP = 'KV-Operation';
const H_WRITER = 'Revkit-Writer';
const H_CREATED = 'Revkit-Created';
const H_TIME = 'Revkit-Time';
const H_EXPECTED = 'Nats-Expected-Last-Subject-Sequence';
const H_EXPECTED_SUBJECT = 'Nats-Expected-Last-Subject-Sequence-Subject';
const WRONG_LAST_SEQUENCE = 10071;
const WRONG_LAST_SEQUENCE_CONSTANT = 10164;
const STREAM_NOT_FOUND = 10059;
const BUCKET_RE = /^[-\w]+$/;
/** Internal read-then-CAS loops (unconditional writes, ifValue, ifAbsent over a tombstone). */
const MAX_INTERNAL_ATTEMPTS = 1000;

/** The revision a key was at and whether that revision is live; an immutable fact about (key, revision). */
interface Known {
  revision: number;
  /** createdRevision of the live entry at `revision`; null for a tombstone. */
  created: number | null;
}

/** Thrown inside the backend when the server refused a CAS; turned into ConflictError by the caller. */
class CasRejected extends Error {
  constructor(readonly actual: number | null | undefined, cause: unknown) {
    super('wrong last sequence', { cause });
  }
}

export class NatsStore extends BaseStore {
  readonly backend = 'nats';
  readonly capabilities: Capabilities;
  readonly features: NatsServerFeatures;
  readonly bucket: string;
  private readonly nc: NatsConnection;
  private readonly js: JetStreamClient;
  private readonly jsm: JetStreamManager;
  private readonly ownsConnection: boolean;
  private readonly codec: Codec;
  private readonly maxValueBytes: number;
  private readonly stream: string;
  private readonly prefix: string;
  private readonly historyDepth: number;
  private readonly timeoutMs: number;
  private readonly streamHasLimits: boolean;
  private readonly maxMsgSize: number;
  private readonly known = new Map<string, Known>();
  /** The highest stream sequence this store has seen (written, read): its message was stored already. */
  private knownRevision = 0;
  private readonly watchers = new Set<{ queue: AsyncQueue<WatchEvent>; stop: () => void }>();

  private constructor(init: {
    nc: NatsConnection; js: JetStreamClient; jsm: JetStreamManager; owns: boolean; bucket: string; info: StreamInfo; options: NatsStoreOptions;
  }) {
    super();
    const { nc, info, options } = init;
    this.nc = nc;
    this.js = init.js;
    this.jsm = init.jsm;
    this.ownsConnection = init.owns;
    this.bucket = init.bucket;
    this.stream = info.config.name;
    this.prefix = `$KV.${init.bucket}`;
    this.codec = options.codec ?? jsonCodec;
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.timeoutMs = options.timeoutMs ?? 5000;
    const cfg = info.config;
    this.historyDepth = cfg.max_msgs_per_subject > 0 ? cfg.max_msgs_per_subject : 64;
    this.streamHasLimits = (cfg.max_age ?? 0) > 0 || (cfg.max_bytes ?? -1) > 0 || (cfg.max_msgs ?? -1) > 0;
    this.maxMsgSize = cfg.max_msg_size ?? -1;
    const version = nc.info?.version ?? '0.0.0';
    // TTL and atomic() stay refused on every server version for now: the 2.11
    // per-message TTL (`Nats-TTL`) and 2.12 atomic batch publish paths are not
    // implemented, because they could not be tested against a real server
    // here (v2.9.10). `features` reports what the server offers; `capabilities`
    // reports what this backend does. See README.md in this folder.
    this.features = {
      version,
      perKeyTtl: versionAtLeast(version, 2, 11),
      atomicBatch: versionAtLeast(version, 2, 12),
      directGet: cfg.allow_direct === true,
      maxPayload: nc.info?.max_payload ?? 1024 * 1024,
    };
    const durability: Durability = options.durability
      ?? (cfg.storage === 'memory' ? 'memory' : (cfg.num_replicas ?? 1) > 1 ? 'replicated' : 'os-buffered');
    this.capabilities = { atomic: false, ttl: false, history: true, watch: true, crossProcess: true, durability };
  }

  /**
   * `nats://[user:pass@]host:port[,host2:port]?bucket=name&replicas=1&storage=file&history=64&timeoutMs=5000`;
   * credentials also as `?token=…` or `?user=…&pass=…`. Any other option is refused (URL_OPTIONS).
   */
  static async fromUrl(url: string, options: NatsStoreOptions = {}): Promise<NatsStore> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (cause) {
      throw new InvalidArgumentError(`malformed NATS URL ${JSON.stringify(redactUrl(url))}`, { cause: withoutUrlInput(cause) });
    }
    const q = parsed.searchParams;
    assertKnownUrlOptions(url, 'nats', q.keys(), URL_OPTIONS);
    const opts: NatsStoreOptions = { ...options };
    if (q.has('bucket')) opts.bucket = q.get('bucket') as string;
    if (q.has('replicas')) opts.replicas = intParam(q, 'replicas');
    if (q.has('history')) opts.history = intParam(q, 'history');
    if (q.has('timeoutMs')) opts.timeoutMs = intParam(q, 'timeoutMs');
    if (q.has('storage')) {
      const s = q.get('storage');
      if (s !== 'file' && s !== 'memory') throw new InvalidArgumentError(`storage must be file or memory, got ${JSON.stringify(s)}`);
      opts.storage = s;
    }
    if (q.has('create')) {
      const c = q.get('create');
      if (c !== 'true' && c !== 'false') throw new InvalidArgumentError(`create must be true or false, got ${JSON.stringify(c)}`);
      opts.create = c === 'true';
    }
    const servers = parsed.host.split(',').filter(Boolean).map((h) => (h.includes(':') ? h : `${h}:4222`));
    if (servers.length === 0) servers.push('127.0.0.1:4222');
    const connectOptions: Record<string, unknown> = {
      servers,
      name: 'revkit',
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      timeout: opts.timeoutMs ?? 5000,
      // Every request would otherwise build an Error up front to keep the caller's async stack
      // for a possible timeout; that cost a fifth of the client's CPU per update(). revkit wraps
      // driver errors in BackendError with the driver error as `cause`, so nothing is lost.
      noAsyncTraces: true,
    };
    if (parsed.username) connectOptions.user = decodeURIComponent(parsed.username);
    if (parsed.password) connectOptions.pass = decodeURIComponent(parsed.password);
    if (q.has('user')) connectOptions.user = q.get('user');
    if (q.has('pass')) connectOptions.pass = q.get('pass');
    if (q.has('token')) connectOptions.token = q.get('token');
    let nc: NatsConnection;
    try {
      nc = await connect(connectOptions);
    } catch (cause) {
      throw toBackendError(cause, false, `cannot connect to NATS at ${servers.join(',')}`);
    }
    try {
      return await NatsStore.create(nc, opts, true);
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  /** A store over an existing connection (closing the store leaves the connection open). */
  static async open(nc: NatsConnection, options: NatsStoreOptions = {}): Promise<NatsStore> {
    return NatsStore.create(nc, options, false);
  }

  private static async create(nc: NatsConnection, options: NatsStoreOptions, owns: boolean): Promise<NatsStore> {
    const bucket = options.bucket ?? 'revkit';
    if (!BUCKET_RE.test(bucket) || bucket.length > 64) throw new InvalidArgumentError(`invalid bucket name ${JSON.stringify(bucket)}: use [A-Za-z0-9_-], at most 64 characters`);
    const history = options.history ?? 64;
    if (!Number.isInteger(history) || history < 1 || history > 64) throw new InvalidArgumentError('history must be an integer from 1 to 64');
    const replicas = options.replicas ?? 1;
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new InvalidArgumentError('replicas must be an integer from 1 to 5');
    if (nc.info && nc.info.headers === false) throw new BackendError('the NATS server does not support headers', { transient: false });
    const timeout = options.timeoutMs ?? 5000;
    const jsm = await jetstreamManager(nc, { timeout }).catch((cause) => {
      throw toBackendError(cause, false, 'JetStream is not available on this NATS server');
    });
    const js = jetstream(nc, { timeout });
    const stream = `KV_${bucket}`;
    let info: StreamInfo;
    try {
      info = await jsm.streams.info(stream);
    } catch (err) {
      if (jsCode(err) !== STREAM_NOT_FOUND) throw toBackendError(err, false);
      if (options.create === false) throw new BackendError(`the bucket ${bucket} does not exist`, { transient: false, cause: err });
      const cfg: Partial<StreamConfig> & { name: string } = {
        name: stream,
        subjects: [`$KV.${bucket}.>`],
        retention: 'limits' as StreamConfig['retention'],
        max_msgs_per_subject: history,
        max_msgs: -1,
        max_bytes: -1,
        max_age: 0,
        max_msg_size: -1,
        storage: (options.storage ?? 'file') as StreamConfig['storage'],
        num_replicas: replicas,
        discard: 'new' as StreamConfig['discard'],
        duplicate_window: 120_000_000_000,
        allow_direct: true,
        allow_rollup_hdrs: true,
        deny_delete: true,
      };
      try {
        info = await jsm.streams.add(cfg);
      } catch (addErr) {
        // Another process created it first (with another config): use what is there.
        try {
          info = await jsm.streams.info(stream);
        } catch {
          throw toBackendError(addErr, false);
        }
      }
    }
    return new NatsStore({ nc, js, jsm, owns, bucket, info, options });
  }

  /** The NATS subject of a key. */
  subjectOf(key: string): string {
    return `${this.prefix}.${encodeKey(key)}`;
  }

  // ttl and atomic() are refused with the reason; BaseStore validates first and only says "not supported".

  override async put<T = unknown>(key: string, value: T, options: PutOptions = {}): Promise<Entry<T>> {
    return super.put(key, value, options).catch((err) => Promise.reject(this.explain(err)));
  }

  override update<T = unknown>(key: string, fn: MutationOfDefaulted<T>, options: UpdateOptionsWithDefault<T>): Promise<Entry<T> | null>;
  override update<T = unknown>(key: string, fn: Mutation<T>, options?: UpdateOptions<T>): Promise<Entry<T> | null>;
  override update<T = unknown>(key: string, fn: Mutation<T>, options: UpdateOptions<T> = {}): Promise<Entry<T> | null> {
    return super.update(key, fn, options).catch((err) => Promise.reject(this.explain(err)));
  }

  override atomic(): AtomicBatch {
    const batch = super.atomic();
    const commit = batch.commit;
    batch.commit = () => commit().catch((err) => Promise.reject(this.explain(err)));
    return batch;
  }

  private explain(err: unknown): unknown {
    if (!UnsupportedError.is(err) || (err.operation !== 'ttl' && err.operation !== 'atomic')) return err;
    const [offered, needs] = err.operation === 'ttl' ? [this.features.perKeyTtl, '2.11'] : [this.features.atomicBatch, '2.12'];
    const version = this.features.version;
    return new UnsupportedError(err.operation, this.backend, offered
      ? `this server (${version}) offers it, but revkit's NATS backend does not use it yet`
      : `needs nats-server ${needs} or newer, this server is ${version}`);
  }

  async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.assertOpen();
    assertKey(key);
    const sm = await this.readLast(key);
    if (sm !== null) this.seen(sm.seq);
    return sm === null ? null : this.toRecord<T>(key, sm.seq, sm.header, sm.data, sm.timestamp, true);
  }

  protected async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    const bytes = this.codec.encode(value);
    assertValueSize(bytes, this.maxValueBytes);
    const writer = options.writer;
    if (options.ifRevision !== undefined) {
      const expected = options.ifRevision;
      let known = this.known.get(key);
      if (known?.revision !== expected || expected === 0) {
        const rec = await this.getRecord(key);
        // ifRevision 0: never written (no message on the subject); JetStream's expected last sequence 0 means just that.
        if ((rec?.revision ?? 0) !== expected) throw new ConflictError([{ key, expected, actual: rec?.revision ?? null }]);
        known = knownOf(rec);
      }
      try {
        return await this.publishPut<T>(key, bytes, known, writer);
      } catch (err) {
        if (err instanceof CasRejected) throw new ConflictError([{ key, expected, actual: await this.actualOf(key, err) }]);
        throw err;
      }
    }
    if (options.ifValue !== undefined) {
      for (let attempt = 0; ; attempt++) {
        const rec = await this.getRecord(key);
        const failure = conditionFailure(key, rec, { ifValue: options.ifValue });
        if (failure) throw new ConflictError([failure], rec ?? undefined);
        try {
          return await this.publishPut<T>(key, bytes, knownOf(rec), writer);
        } catch (err) {
          if (!(err instanceof CasRejected) || attempt >= MAX_INTERNAL_ATTEMPTS) throw this.rethrow(err, key, 'value');
        }
      }
    }
    if (options.ifAbsent) {
      // Fast path: never written (expected last subject sequence 0). Else it must be a tombstone, guarded by its revision.
      let known: Known = this.known.get(key)?.created === null ? (this.known.get(key) as Known) : { revision: 0, created: null };
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.publishPut<T>(key, bytes, known, writer);
        } catch (err) {
          if (!(err instanceof CasRejected) || attempt >= MAX_INTERNAL_ATTEMPTS) throw this.rethrow(err, key, 'absent');
        }
        const rec = await this.getRecord(key);
        if (rec !== null && !isTombstone(rec)) throw new ConflictError([{ key, expected: 'absent', actual: rec.revision }], rec);
        known = knownOf(rec);
      }
    }
    // Unconditional: CAS on the revision we believe current; on a conflict read and try again.
    let known: Known = this.known.get(key) ?? { revision: 0, created: null };
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.publishPut<T>(key, bytes, known, writer);
      } catch (err) {
        if (!(err instanceof CasRejected) || attempt >= MAX_INTERNAL_ATTEMPTS) throw this.rethrow(err, key, null);
      }
      if (attempt > 2) await jitter(attempt);
      known = knownOf(await this.getRecord(key));
    }
  }

  protected async doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    for (let attempt = 0; ; attempt++) {
      const rec = await this.getRecord(key);
      const failure = conditionFailure(key, rec, options);
      if (failure) throw new ConflictError([failure], rec ?? undefined);
      if (rec === null || isTombstone(rec)) return null;
      const h = natsHeaders();
      h.set(OP, 'DEL');
      h.set(H_EXPECTED, String(rec.revision));
      h.set(H_TIME, String(Date.now()));
      if (options.writer !== undefined) h.set(H_WRITER, options.writer);
      try {
        const seq = await this.publish(key, new Uint8Array(0), h);
        this.remember(key, { revision: seq, created: null });
        return seq;
      } catch (err) {
        if (!(err instanceof CasRejected)) throw err;
        if (options.ifRevision !== undefined) throw new ConflictError([{ key, expected: options.ifRevision, actual: await this.actualOf(key, err) }]);
        if (attempt >= MAX_INTERNAL_ATTEMPTS) throw this.rethrow(err, key, options.ifValue !== undefined ? 'value' : options.ifAbsent ? 'absent' : null);
        if (attempt > 2) await jitter(attempt);
      }
    }
  }

  async list<T = unknown>(options: ListOptions = {}): Promise<ListPage<T>> {
    this.assertOpen();
    const prefix = options.prefix ?? '';
    assertPrefix(prefix);
    if (options.after !== undefined && typeof options.after !== 'string') throw new InvalidArgumentError('after must be a key');
    const limit = assertLimit(options.limit, 10_000) ?? 1000;
    const { filter } = filterForPrefix(prefix);
    const msgs = await this.readSnapshot(`${this.prefix}.${filter}`, { policy: 'last_per_subject' });
    // The consumer also delivers writes made while it reads (pending counts
    // them), so a key written meanwhile arrives twice: keep its latest.
    const latest = new Map<string, { msg: Msg; seq: number }>();
    for (const m of msgs) {
      const seen = latest.get(m.msg.subject);
      if (!seen || m.seq > seen.seq) latest.set(m.msg.subject, m);
    }
    const live: Array<{ key: string; msg: Msg; seq: number }> = [];
    for (const { msg, seq } of latest.values()) {
      if (isDeleteOp(msg.headers)) continue;
      const key = this.keyOfSubject(msg.subject);
      if (key === null || !key.startsWith(prefix)) continue;
      if (options.after !== undefined && compareKeys(key, options.after) <= 0) continue;
      live.push({ key, msg, seq });
    }
    live.sort((a, b) => compareKeys(a.key, b.key));
    const page = live.slice(0, limit);
    const entries = page.map(({ key, msg, seq }) => this.toRecord<T>(key, seq, msg.headers, msg.data, undefined) as Entry<T>);
    return live.length > limit ? { entries, cursor: (page[page.length - 1] as { key: string }).key } : { entries };
  }

  /** JetStream numbers a message as it stores it: the stream's last sequence has committed. */
  async headRevision(): Promise<number> {
    this.assertOpen();
    const info = await this.call(() => this.jsm.streams.info(this.stream), false);
    this.seen(info.state.last_seq);
    return info.state.last_seq;
  }

  async history<T = unknown>(key: string, options: HistoryOptions = {}): Promise<StoredRecord<T>[]> {
    this.assertOpen();
    assertKey(key);
    const limit = assertLimit(options.limit, this.historyDepth) ?? this.historyDepth;
    const msgs = await this.readSnapshot(this.subjectOf(key), { policy: 'all' });
    const out: StoredRecord<T>[] = [];
    for (let i = msgs.length - 1; i >= 0 && out.length < limit; i--) {
      const { msg, seq } = msgs[i] as { msg: Msg; seq: number };
      // A write by another client carries no Revkit-Time: the server's store time stands in.
      const stored = parseAckSubject(msg.reply)?.storedAtMs;
      out.push(this.toRecord<T>(key, seq, msg.headers, msg.data, stored ? new Date(stored).toISOString() : undefined));
    }
    return out;
  }

  /**
   * A watch "from now" (no `fromRevision`) is fixed when watch() is called,
   * without a round trip: it delivers, in stream order, every message stored
   * by the stream's server at or after a threshold T — the server's clock
   * when watch() was called, at the latest, less START_CLOCK_MARGIN_MS — and
   * above the highest revision this store had seen (written or read) when
   * watch() was called. A write that starts after watch() was called,
   * whichever process or connection makes it, reaches the server later, so
   * it is stamped at or after T and numbered above that revision: it is
   * delivered, before anything newer. A write that began up to the margin
   * plus the start's round trip before watch() was called (and that this
   * store had not seen) may be delivered too.
   *
   * How T is found (see startFromNow): one reading S of the server's clock
   * taken by a request sent after watch() was called, whose answer arrived
   * `elapsed` ms (this process's monotonic clock) after the call; the
   * server's clock read S at some moment of that interval, so when watch()
   * was called it read at least S − elapsed. Then the start is the last
   * message stored before T, found by walking back from the stream's last
   * sequence (lastStoredBefore in start.ts).
   *
   * What it owes is less: the changes after the last message stored before
   * watch() was called, as bounded by that same reading without the margin
   * (`owed` in startFromNow). A change it owes that the stream no longer
   * keeps (the per-key history limit removed it before the watch read it)
   * is HistoryGoneError; a change from before the call is not owed, so one
   * that the per-key limit removed from the reach-back is passed over.
   */
  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    const calledAt = performance.now();
    const known = this.knownRevision;
    this.assertOpen();
    const matches = keyFilter(options);
    if (options.fromRevision !== undefined && (!Number.isSafeInteger(options.fromRevision) || options.fromRevision < 0)) {
      throw new InvalidArgumentError('fromRevision must be a non-negative safe integer');
    }
    const filter = options.key !== undefined ? this.subjectOf(options.key) : `${this.prefix}.${filterForPrefix(options.prefix ?? '').filter}`;
    const queue = new AsyncQueue<WatchEvent>(options.signal);
    let reader: ResumableReader | undefined;
    const watcher = { queue, stop: () => reader?.stop() };
    this.watchers.add(watcher);
    queue.onClose(() => {
      this.watchers.delete(watcher);
      reader?.stop();
    });
    const start = async () => {
      let from = options.fromRevision;
      // The revision the watch owes every change after: `from` itself for a watch from a revision; for a
      // watch "from now", a sequence at or above the delivery start below which everything was stored
      // before watch() was called (see startFromNow).
      let owed = from ?? 0;
      if (from === undefined) {
        ({ base: from, owed } = await this.startFromNow(calledAt, known));
      } else if (this.streamHasLimits) {
        const info = await this.call(() => this.jsm.streams.info(this.stream), false);
        const { first_seq: first, last_seq: last } = info.state;
        // Only stream-wide limits (age, bytes, count) remove whole keys; below the first kept sequence nothing can be vouched for.
        if (from + 1 < first && last > from) throw new HistoryGoneError(from, first);
      }
      if (queue.closed) return;
      const base = from;
      // Every revkit write names the revision it replaced (Nats-Expected-Last-Subject-Sequence),
      // so a missing link in a key's chain is a change the stream no longer keeps: HistoryGoneError
      // when the watch owes it, i.e. when it is above `owed`. A watch "from now" starts delivering
      // at `base`, up to START_CLOCK_MARGIN_MS before watch() was called, but owes nothing stored
      // before the call: a hot key's writes in that reach-back that the per-key history limit
      // removed are not missing from it; it delivers what is still there.
      const lastBySubject = new Map<string, number>();
      reader = new ResumableReader(this.readerContext(), {
        filter,
        startSeq: base + 1,
        onMessage: (msg, seq) => {
          const known = lastBySubject.get(msg.subject);
          lastBySubject.set(msg.subject, seq);
          const prev = previousOf(msg.headers);
          // A key's first message in this watch names a predecessor the watch did not deliver: owed only
          // when above `owed` (at or below it, it was stored before watch() was called). A later one must
          // name the key's message delivered before it; what lies between is owed when above `owed` (a
          // name below that message is never right).
          if (prev !== undefined && (known === undefined ? prev > owed : prev !== known && (prev > owed || prev < known))) {
            reader?.stop();
            queue.fail(new HistoryGoneError(known ?? owed, seq));
            return;
          }
          const key = this.keyOfSubject(msg.subject);
          if (key === null || !matches(key)) return;
          try {
            queue.push(isDeleteOp(msg.headers)
              ? { type: 'delete', key, revision: seq }
              : { type: 'put', key, revision: seq, entry: this.toRecord(key, seq, msg.headers, msg.data, undefined) as Entry });
          } catch (err) {
            reader?.stop();
            queue.fail(err);
          }
        },
        onError: (err) => queue.fail(toBackendError(err, false)),
      });
      if (queue.closed) reader.stop();
    };
    start().catch((err) => queue.fail(RevkitError.is(err) ? err : toBackendError(err, false)));
    return queue as AsyncIterable<WatchEvent<T>>;
  }

  /**
   * The start of a watch "from now" called at `calledAt` (performance.now())
   * when this store had seen revision `known`:
   *
   * - `base`, where delivery starts: the last sequence of a message stored
   *   before the threshold T (see watch()), and at least `known` — reaching
   *   back START_CLOCK_MARGIN_MS, so that nothing stored after the call is
   *   skipped even if the reading below is off by that much;
   * - `owed` (>= base), what the watch owes every change after: every
   *   sequence up to `owed` was stored before watch() was called. A key's
   *   predecessor that the stream no longer keeps (per-key history) is owed
   *   only when above it: on a hot key the reach-back window can hold more
   *   than `history` writes of one key, all made before the call.
   *
   * Why every sequence up to `owed` was stored before the call. `owed` is
   * `known` (this store had seen it, acknowledged or read, before the call),
   * or the sequence of a message whose store time, in ms, is below
   * Tᵒ = floor(S − elapsed) − OWED_CLOCK_SLACK_MS − elapsed/1000: S is the
   * server's clock read (truncated to ms) at some moment between the call and
   * `elapsed` ms (this process's monotonic clock) after it, so when watch()
   * was called the server's clock read at least S − elapsed; a message
   * stored at or after the call was stamped at least that, and its time
   * truncated to ms is at least floor(S − elapsed) > Tᵒ. The stream leader
   * numbers and stamps messages in one step, so every lower sequence was
   * stored earlier still. The slack covers only the rates of the two clocks
   * and timer resolution. The bound's cost: a write made within those few ms
   * (plus the time the reading's answer took to come back) before the call
   * cannot be told from one made after it, so if the per-key limit removes
   * it before the watch reads it (history 1: the key's next write), the
   * watch fails with HistoryGoneError.
   *
   * Clock steps. A step of the server's clock back between the call and the
   * reading only lowers Tᵒ (more is owed: a predecessor stored before the
   * call may then fail the watch with HistoryGoneError); a step before the
   * call changes nothing. A step forward by d between the call and the reading (or, on a
   * 2.9 cluster, the meta leader's clock ahead of the stream leader's by d),
   * or a step back by d after the reading stamping a message while the
   * search runs, can put messages stored in the first d ms after the call
   * at or below `owed`: if the per-key history limit removed one of those
   * before the watch read it, the watch passes over it without
   * HistoryGoneError (and delivers the key's next kept write). Which
   * messages are delivered, and their order, never depend on `owed`.
   *
   * The clock reading S must come from the clock that stamps the messages:
   * the stream leader's. nats-server 2.10+ puts its clock in the stream info
   * (`ts`), and the stream info is answered by the stream leader. 2.9 has no
   * such field (its StreamInfo has `created`, the stream's creation, and
   * `state.last_ts`, the last message's store time, which can be any time in
   * the past); there S is the `created` time of a probe consumer (deleted
   * at once), set by the server that creates it: on a single server the
   * very clock that stamps messages; in a 2.9 cluster the meta leader's, so
   * START_CLOCK_MARGIN_MS also stands for the offset between the meta
   * leader's and the stream leader's clocks (kept to milliseconds by NTP).
   * The search reads messages with STREAM.MSG.GET, answered by the stream
   * leader (a direct get may be answered by a replica that lags).
   */
  private async startFromNow(calledAt: number, known: number): Promise<{ base: number; owed: number }> {
    // On 2.9 the stream info carries no clock: ask for both at once.
    let probe = versionAtLeast(this.features.version, 2, 10) ? undefined : this.serverClock();
    probe?.catch(() => undefined);
    const info = await this.call(() => this.jsm.streams.info(this.stream), false);
    const infoAt = performance.now();
    const { first_seq: first, last_seq: last, last_ts: lastTs } = info.state;
    this.seen(last);
    // Every message up to `known` was stored before watch() was called; `last` is at least `known` unless
    // the stream was recreated meanwhile (then its old sequences mean nothing): start at its end.
    if (known >= last) return { base: last, owed: last };
    const infoTs = Date.parse(info.ts ?? '');
    let clock: { serverMs: number; receivedAt: number };
    if (Number.isFinite(infoTs)) {
      clock = { serverMs: infoTs, receivedAt: infoAt };
    } else {
      probe ??= this.serverClock();
      clock = await probe;
    }
    const elapsed = clock.receivedAt - calledAt;
    const atCall = Math.floor(clock.serverMs - elapsed); // the server's clock when watch() was called read at least this
    const owedBefore = atCall - OWED_CLOCK_SLACK_MS - Math.ceil(elapsed / 1000);
    const threshold = Math.min(atCall - START_CLOCK_MARGIN_MS, owedBefore);
    const lastStoredAt = Date.parse(lastTs);
    // The last message is older than the threshold (an idle stream): nothing to walk back over.
    if (lastStoredAt < threshold) return { base: last, owed: last };
    const firstFrom = async (seq: number) => {
      const sm = await this.call(() => this.jsm.streams.getMessage(this.stream, { seq, next_by_subj: '>' } as unknown as MsgRequest), false);
      if (sm === null) return null;
      const storedAtMs = Date.parse(sm.timestamp);
      if (!Number.isFinite(storedAtMs)) throw new BackendError(`message ${sm.seq} of ${this.stream} has no store time`, { transient: false });
      return { seq: sm.seq, storedAtMs };
    };
    // `owed` first, from `known` up (not from the first kept sequence: what stream limits removed
    // may have been stored after the call); then `base` below it, where everything before the
    // first kept sequence may be skipped (it is not there to deliver).
    const owed = lastStoredAt < owedBefore ? last : await lastStoredBefore(firstFrom, owedBefore, known, last);
    const floor = Math.max(known, first - 1, 0);
    const base = await lastStoredBefore(firstFrom, threshold, Math.min(floor, owed), owed + 1);
    return { base, owed };
  }

  /**
   * One reading of the server's clock (ms): the creation time of a probe consumer, with
   * the moment (performance.now()) its answer arrived. See startFromNow.
   */
  private async serverClock(): Promise<{ serverMs: number; receivedAt: number }> {
    const ci = await this.call(() => this.jsm.consumers.add(this.stream, {
      deliver_subject: createInbox(),
      deliver_policy: 'new' as ConsumerConfig['deliver_policy'],
      ack_policy: 'none' as ConsumerConfig['ack_policy'],
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: 5_000_000_000,
    }), false);
    const receivedAt = performance.now();
    if (!this.nc.isClosed()) this.jsm.consumers.delete(this.stream, ci.name).catch(() => undefined);
    const serverMs = Date.parse(ci.created);
    if (!Number.isFinite(serverMs)) throw new BackendError(`the server gave no creation time for a consumer (${JSON.stringify(ci.created)})`, { transient: false });
    return { serverMs, receivedAt };
  }

  protected async doClose(): Promise<void> {
    for (const w of this.watchers) {
      w.stop();
      w.queue.end();
    }
    this.watchers.clear();
    if (this.ownsConnection) await this.nc.close().catch(() => undefined);
  }

  // ---- internals ----

  private readerContext(): ReaderContext {
    return { nc: this.nc, jsm: this.jsm, stream: this.stream, timeoutMs: this.timeoutMs };
  }

  private async readSnapshot(filter: string, from: { policy: 'all' } | { policy: 'last_per_subject' }): Promise<Array<{ msg: Msg; seq: number }>> {
    const msgs = await this.call(() => readOnce(this.readerContext(), filter, from), false);
    const out = msgs.map((msg) => ({ msg, seq: seqOfDelivery(msg) }));
    for (const m of out) this.seen(m.seq);
    return out;
  }

  private async readLast(key: string): Promise<StoredMsg | null> {
    const subject = this.subjectOf(key);
    return this.call(() => (this.features.directGet
      ? this.jsm.direct.getMessage(this.stream, { last_by_subj: subject })
      : this.jsm.streams.getMessage(this.stream, { last_by_subj: subject }).catch((err) => {
        if (jsCode(err) === 10037) return null;
        throw err;
      })), false);
  }

  private async publishPut<T>(key: string, bytes: Uint8Array, known: Known, writer: string | undefined): Promise<Entry<T>> {
    const h = natsHeaders();
    h.set(H_EXPECTED, String(known.revision));
    if (known.created !== null) h.set(H_CREATED, String(known.created));
    const now = Date.now();
    h.set(H_TIME, String(now));
    if (writer !== undefined) h.set(H_WRITER, writer);
    const revision = await this.publish(key, bytes, h);
    const createdRevision = known.created ?? revision;
    this.remember(key, { revision, created: createdRevision });
    const entry: Entry<T> = { key, value: this.codec.decode(bytes) as T, revision, createdRevision, updatedAt: now };
    if (writer !== undefined) entry.writer = writer;
    return entry;
  }

  /** One guarded publish; resolves to the stream sequence, rejects with CasRejected on a wrong last sequence. */
  private async publish(key: string, data: Uint8Array, h: MsgHdrs): Promise<number> {
    this.assertOpen();
    const subject = this.subjectOf(key);
    const size = data.byteLength + headerBytes(h) + subject.length;
    const limit = this.maxMsgSize > 0 ? Math.min(this.maxMsgSize, this.features.maxPayload) : this.features.maxPayload;
    if (size > limit) throw new TooLargeError('the encoded value with its NATS headers', size, limit);
    try {
      const ack = await this.call(() => this.js.publish(subject, data, { headers: h, timeout: this.timeoutMs }), true);
      this.seen(ack.seq);
      return ack.seq;
    } catch (err) {
      const code = jsCode((err as BackendError).cause ?? err);
      if (code === WRONG_LAST_SEQUENCE || code === WRONG_LAST_SEQUENCE_CONSTANT) {
        const cause = (err as BackendError).cause ?? err;
        // The code decides; the number in the 10071 text only saves a read.
        const m = code === WRONG_LAST_SEQUENCE ? /wrong last sequence: (\d+)/.exec(String((cause as Error).message)) : null;
        const actual = m ? Number(m[1]) : undefined;
        throw new CasRejected(actual === 0 ? null : actual, cause);
      }
      throw err;
    }
  }

  /** The current revision after a refused CAS: from the error when the server said it, else one read. */
  private async actualOf(key: string, err: CasRejected): Promise<number | null> {
    if (err.actual !== undefined) return err.actual;
    const rec = await this.getRecord(key);
    return rec?.revision ?? null;
  }

  private rethrow(err: unknown, key: string, expected: FailedCheck['expected']): unknown {
    if (err instanceof CasRejected) return new ConflictError([{ key, expected, actual: err.actual ?? null }]);
    return err;
  }

  /**
   * Runs one server call and maps every driver error to a revkit error:
   * timeouts and connection trouble are transient (ambiguous for a publish,
   * whose message may have been stored), JetStream API errors are not
   * (unless the server says 503), and a closed store is ERR_CLOSED.
   */
  private async call<R>(fn: () => Promise<R>, write: boolean): Promise<R> {
    this.assertOpen();
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        // A publish may have reached the server before close() cut the connection.
        if (this.isClosed) throw new ClosedError(this.backend, { ambiguous: write, cause: err });
        // "No responders": nobody took the request (JetStream starting after a restart), so nothing was stored: wait and resend.
        if (isNoResponders(err) && Date.now() - started < this.timeoutMs) {
          await new Promise((r) => setTimeout(r, Math.min(250, 25 * 2 ** attempt)));
          continue;
        }
        throw toBackendError(err, write);
      }
    }
  }

  private seen(seq: number): void {
    if (seq > this.knownRevision) this.knownRevision = seq;
  }

  private remember(key: string, known: Known): void {
    this.known.delete(key);
    this.known.set(key, known);
    if (this.known.size > 10_000) this.known.delete(this.known.keys().next().value as string);
  }

  private keyOfSubject(subject: string): string | null {
    if (!subject.startsWith(`${this.prefix}.`)) return null;
    return decodeKey(subject.slice(this.prefix.length + 1));
  }

  private toRecord<T>(key: string, seq: number, h: MsgHdrs | undefined, data: Uint8Array, timestamp: string | undefined, latest = false): StoredRecord<T> {
    const writer = h?.get(H_WRITER) || undefined;
    const time = Number(h?.get(H_TIME) || NaN);
    const stamp = timestamp ?? h?.get('Nats-Time-Stamp') ?? '';
    const updatedAt = Number.isFinite(time) ? time : Date.parse(stamp) || 0;
    if (isDeleteOp(h)) {
      const t: Tombstone = { key, revision: seq, deleted: true };
      if (writer) t.writer = writer;
      if (updatedAt > 0) t.updatedAt = updatedAt;
      if (latest) this.remember(key, { revision: seq, created: null });
      return t as StoredRecord<T>;
    }
    let value: T;
    try {
      value = this.codec.decode(data) as T;
    } catch (cause) {
      throw new BackendError(`the stored value of ${JSON.stringify(key)} at revision ${seq} cannot be decoded by the ${this.codec.name} codec`, { transient: false, cause });
    }
    const created = Number(h?.get(H_CREATED) || seq);
    const entry: Entry<T> = {
      key, value, revision: seq,
      createdRevision: Number.isSafeInteger(created) && created > 0 ? created : seq,
      updatedAt,
    };
    if (writer) entry.writer = writer;
    if (latest) this.remember(key, { revision: seq, created: entry.createdRevision });
    return entry;
  }
}

/** Opens a store over an existing NATS connection. */
export function natsStore(nc: NatsConnection, options?: NatsStoreOptions): Promise<NatsStore> {
  return NatsStore.open(nc, options);
}

function knownOf(rec: StoredRecord | null): Known {
  if (rec === null) return { revision: 0, created: null };
  return { revision: rec.revision, created: isTombstone(rec) ? null : (rec as Entry).createdRevision };
}

function isDeleteOp(h: MsgHdrs | undefined): boolean {
  const op = h?.get(OP);
  return op === 'DEL' || op === 'PURGE';
}

/** The revision a message replaced, when it was written with a subject-sequence guard on its own subject. */
function previousOf(h: MsgHdrs | undefined): number | undefined {
  if (!h || h.get(H_EXPECTED_SUBJECT)) return undefined;
  const v = h.get(H_EXPECTED);
  if (!v) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function seqOfDelivery(msg: Msg): number {
  return parseAckSubject(msg.reply)?.streamSeq ?? 0;
}

function headerBytes(h: MsgHdrs): number {
  let n = 'NATS/1.0\r\n\r\n'.length;
  for (const k of h.keys()) for (const v of h.values(k)) n += k.length + 2 + Buffer.byteLength(v) + 2;
  return n;
}

function jsCode(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { name?: string; code?: unknown; apiError?: unknown };
  if (typeof e.apiError === 'function' && typeof e.code === 'number') return e.code;
  return undefined;
}

function jsStatus(err: unknown): number | undefined {
  const s = (err as { status?: unknown } | null)?.status;
  return typeof s === 'number' ? s : undefined;
}

function isNoResponders(err: unknown): boolean {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const x = e as { name?: string; isNoResponders?: () => boolean; cause?: unknown };
    if (x.name === 'NoRespondersError' || x.name === 'JetStreamNotEnabled') return true;
    if (typeof x.isNoResponders === 'function' && x.isNoResponders()) return true;
    e = x.cause;
  }
  return false;
}

function toBackendError(err: unknown, write: boolean, context?: string): RevkitError {
  if (RevkitError.is(err)) return err;
  const e = err as { name?: string; message?: string } | null;
  const name = e?.name ?? 'Error';
  const message = `${context ? `${context}: ` : ''}NATS ${name}: ${e?.message ?? String(err)}`;
  if (jsCode(err) !== undefined) {
    // The server answered: the request was refused, not lost.
    return new BackendError(message, { transient: jsStatus(err) === 503, ambiguous: false, cause: err });
  }
  if (isNoResponders(err)) return new BackendError(message, { transient: true, ambiguous: false, cause: err });
  if (name === 'ClosedConnectionError' || name === 'AuthorizationError' || name === 'PermissionViolationError' || name === 'UserAuthenticationExpiredError' || name === 'InvalidArgumentError' || name === 'InvalidSubjectError') {
    return new BackendError(message, { transient: false, ambiguous: false, cause: err });
  }
  // Timeouts, disconnects, a reader that lost its consumer: worth retrying; a publish may have landed.
  return new BackendError(message, { transient: true, ambiguous: write, cause: err });
}

function versionAtLeast(version: string, major: number, minor: number): boolean {
  const m = /^v?(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const [ma, mi] = [Number(m[1]), Number(m[2])];
  return ma > major || (ma === major && mi >= minor);
}

/** Options a nats:// URL may carry. */
const URL_OPTIONS = ['bucket', 'replicas', 'storage', 'history', 'timeoutMs', 'create', 'token', 'user', 'pass'] as const;

function intParam(q: URLSearchParams, name: string): number {
  const n = Number(q.get(name));
  if (!/^-?\d+$/.test(q.get(name) ?? '') || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got ${JSON.stringify(q.get(name))}`);
  return n;
}

function jitter(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.random() * Math.min(64, 2 ** Math.min(attempt, 6))));
}

