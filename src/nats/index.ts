/**
 * `revkit/nats`: the store over a NATS JetStream KV bucket.
 *
 * Layout: one bucket (stream `KV_<bucket>`, subjects `$KV.<bucket>.>`) per
 * store; a key is the subject `$KV.<bucket>.<encodeKey(key)>` (see keys.ts);
 * a revision is the stream sequence of the message (store-wide order).
 * Every write is a publish guarded by the key's last sequence (cas.ts); a
 * read (`getRecord`) is one round trip (reads.ts: a direct get on R1, the
 * leader's STREAM.MSG.GET on a replicated stream), which is what update()
 * pays per attempt, plus one publish.
 *
 * Where the rest is:
 * - connect.ts, bucket.ts   a `nats://` URL → connection; the bucket found or created;
 * - client.ts, errors.ts    every request to the server, and its errors as revkit errors;
 * - records.ts              a record as a NATS message (headers) and back;
 * - cas.ts                  puts and deletes (compare-and-swap);
 * - reads.ts                getRecord, list, history, headRevision;
 * - watch.ts, start.ts, reader.ts  watch(), where "from now" starts, the stream consumers;
 * - features.ts             what the server offers; TTL and atomic() refused, with the reason;
 * - url.ts                  a `nats://` URL with several seed servers (a cluster);
 * - replication.ts          replication(): the stream's leader and replicas, leader changes seen;
 * - serial.ts               the stream-wide guard a replicated stream needs on nats-server < 2.9.21;
 * - settings.ts, versions.ts the stream's config and the cluster's server versions, kept current.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import {
  BaseStore, DEFAULT_MAX_VALUE_BYTES, assertOptions, jsonCodec,
  type AtomicBatch, type Capabilities, type DeleteOptions, type Entry, type HistoryOptions, type ListOptions, type ListPage,
  type Mutation, type MutationOfDefaulted, type PutOptions, type StoredRecord, type UpdateOptions, type UpdateOptionsWithDefault,
  type ReplicationState, type WatchEvent, type WatchOptions,
} from '../core/index.js';
import { openBucket, type OpenedBucket } from './bucket.js';
import { CasWriter } from './cas.js';
import { BucketClient } from './client.js';
import { connectUrl } from './connect.js';
import { capabilitiesOf, needsSerialCas, explainRefusal, serverFeatures, versionAtLeast, versionBelow, type NatsServerFeatures } from './features.js';
import { DEFAULT_TIMEOUT_MS, type NatsStoreOptions } from './options.js';
import { BucketReads } from './reads.js';
import { BucketReplication } from './replication.js';
import { StreamTail } from './serial.js';
import { StreamSettings } from './settings.js';
import { ServerVersions } from './versions.js';
import { BucketWatches } from './watch.js';

export { encodeKey, decodeKey, filterForPrefix, MAX_ENCODED_KEY_CHARS } from './keys.js';
export { OWED_CLOCK_SLACK_MS, START_CLOCK_MARGIN_MS } from './start.js';
export type { NatsStoreOptions } from './options.js';
export type { NatsServerFeatures } from './features.js';

export class NatsStore extends BaseStore {
  readonly backend = 'nats';
  readonly capabilities: Capabilities;
  readonly features: NatsServerFeatures;
  readonly bucket: string;
  private readonly nc: NatsConnection;
  private readonly ownsConnection: boolean;
  private readonly client: BucketClient;
  private readonly reads: BucketReads;
  private readonly writes: CasWriter;
  private readonly watches: BucketWatches;
  private readonly replicationView: BucketReplication;
  private readonly settings: StreamSettings;
  private readonly versions: ServerVersions;

  private constructor(nc: NatsConnection, opened: OpenedBucket & { versions: ServerVersions }, options: NatsStoreOptions, owns: boolean) {
    super();
    const { bucket, js, jsm, info } = opened;
    const cfg = info.config;
    this.nc = nc;
    this.ownsConnection = owns;
    this.bucket = bucket;
    this.features = serverFeatures(nc, cfg);
    this.capabilities = capabilitiesOf(cfg, options.durability);
    this.client = new BucketClient({
      backend: this.backend, nc, js, jsm, bucket, stream: cfg.name,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS, features: this.features, isClosed: () => this.isClosed,
    });
    // Stored before open() returned, so before any watch() of this store: a watch "from now" owes
    // nothing up to it, also when the per-key limit has removed it by the time the watch starts.
    this.client.seen(info.state?.last_seq ?? 0);
    // The stream's replica count may be edited under a live store: capabilities follow it (settings.ts).
    this.settings = new StreamSettings(this.client, info, options.durability, () => {
      this.capabilities.durability = this.settings.durability;
    });
    this.versions = opened.versions;
    this.versions.onLowest((lowest) => {
      this.features.lowestVersion = lowest;
      this.features.replicatedCas = versionAtLeast(lowest, 2, 9, 21);
      this.features.filteredReads = versionAtLeast(lowest, 2, 9, 16);
    });
    const codec = options.codec ?? jsonCodec;
    const historyDepth = cfg.max_msgs_per_subject > 0 ? cfg.max_msgs_per_subject : 64;
    const streamHasLimits = (cfg.max_age ?? 0) > 0 || (cfg.max_bytes ?? -1) > 0 || (cfg.max_msgs ?? -1) > 0;
    this.reads = new BucketReads(this.client, codec, historyDepth, () => this.settings.replicas > 1, streamHasLimits);
    const maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.valueFormat = { codec, maxValueBytes };
    // A replicated stream on a cluster with a server older than 2.9.21 keeps the per-key guard only with the
    // stream-wide one (serial.ts); decided before every write, on the config and versions known then.
    const tail = new StreamTail(this.client);
    const guard = async (): Promise<StreamTail | undefined> => {
      const [fresh] = await Promise.all([this.settings.fresh(), this.versions.settled()]);
      return needsSerialCas(this.versions.lowest, fresh, options.unsafeReplicatedCas) ? tail : undefined;
    };
    this.writes = new CasWriter(this.client, codec, maxValueBytes, cfg.max_msg_size ?? -1, (key) => this.getRecord(key), guard);
    this.watches = new BucketWatches(this.client, codec, streamHasLimits, cfg.max_msgs_per_subject ?? -1);
    this.replicationView = new BucketReplication(nc, this.client, this.settings, info.cluster?.leader, () => {
      // L, the config and the versions may all have changed with the leader.
      tail.forget();
      this.settings.invalidate();
      void this.versions.probe();
    }, () => needsSerialCas(this.versions.lowest, this.settings.config, options.unsafeReplicatedCas));
  }

  /**
   * `nats://[user:pass@]host:port[,host2:port…]?bucket=name&replicas=1&storage=file&history=64&timeoutMs=5000`;
   * credentials also as `?token=…` or `?user=…&pass=…`. Any other option is refused (URL_OPTIONS).
   */
  static async fromUrl(url: string, options: NatsStoreOptions = {}): Promise<NatsStore> {
    const { nc, options: opts } = await connectUrl(url, options);
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
    const versions = new ServerVersions(nc, (a, b) => versionBelow(a, b));
    try {
      // The cluster's versions are known before the first write decides on its guard (versions.ts).
      const [opened] = await Promise.all([openBucket(nc, options), versions.probe()]);
      return new NatsStore(nc, { ...opened, versions }, options, owns);
    } catch (err) {
      versions.stop();
      throw err;
    }
  }

  /** The NATS subject of a key. */
  subjectOf(key: string): string {
    return this.client.subjectOf(key);
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
    return explainRefusal(err, this.features, this.backend);
  }

  getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    return this.reads.getRecord<T>(key);
  }

  override checkValue(value: unknown, key = ''): unknown {
    return this.writes.checkValue(value, key);
  }

  protected doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    return this.writes.put(key, value, options);
  }

  protected doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    return this.writes.delete(key, options);
  }

  list<T = unknown>(options: ListOptions = {}): Promise<ListPage<T>> {
    assertOptions(options, 'list()');
    return this.reads.list<T>(options);
  }

  /** JetStream numbers a message as it stores it: the stream's last sequence has committed. */
  headRevision(): Promise<number> {
    return this.reads.headRevision();
  }

  history<T = unknown>(key: string, options: HistoryOptions = {}): Promise<StoredRecord<T>[]> {
    assertOptions(options, 'history()');
    return this.reads.history<T>(key, options);
  }

  /** See BucketWatches.watch (watch.ts): how a watch "from now" starts, and what it owes. */
  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    return this.watches.watch<T>(options);
  }

  /** The connected server, the bucket stream's leader and replicas, what an acknowledgement means (replication.ts). */
  replication(): Promise<ReplicationState> {
    this.client.assertOpen();
    return this.replicationView.state();
  }

  /**
   * Nothing to accept: this backend never reports a loss (it raises no DataLostError). With replicas ≥ 3
   * JetStream does not lose an acknowledged write when one server dies; with replicas=1 a lost store
   * dir is not detected (docs/replication-nats.md).
   */
  async acceptLoss(): Promise<void> {
    this.client.assertOpen();
  }

  protected async doClose(): Promise<void> {
    this.versions.stop();
    this.replicationView.close();
    this.watches.closeAll();
    if (this.ownsConnection) await this.nc.close().catch(() => undefined);
  }
}

/** Opens a store over an existing NATS connection. */
export function natsStore(nc: NatsConnection, options?: NatsStoreOptions): Promise<NatsStore> {
  return NatsStore.open(nc, options);
}
