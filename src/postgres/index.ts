/**
 * revkit/postgres — the multi-machine backend: PostgresStore ties the parts
 * below together. Each file answers one question:
 *
 *   options.ts       what a store can be told (options, the URL form, defaults)
 *   connection.ts    how connections are made, used, and given up at close()
 *   errors.ts        what a pg error becomes (mapPgError)
 *   schema.ts        the tables, and how they are created and migrated
 *   rows.ts          how rows become entries and tombstones (the value codec)
 *   reads.ts         how a key, a page of keys, a key's history are read
 *   cas.ts           how one conditional put or delete is done
 *   batch.ts         group commit: requests that arrive together share a statement
 *   atomic.ts        how an atomic() commit is done
 *   revisions.ts     where revisions stand: seen, settled, the head
 *   watch.ts         how watch() polls (WatchHub); watch-source.ts, what it asks
 *   notify.ts        how watchers are woken (LISTEN/NOTIFY)
 *   sweep.ts         TTL expiry, history pruning, tombstone purge
 *   sql/             the statements, by what they are for
 *
 * How it works (details next to each statement in sql/):
 * - Every conditional put/delete is ONE statement: lock the key's row, check
 *   the condition on the locked (latest committed) version, write, append the
 *   change, and report the current revision on conflict — all inside one
 *   INSERT/UPDATE … RETURNING with CTEs (an ifRevision put: a plain UPDATE …
 *   WHERE revision = $n, see putRevisionSql).
 * - Group commit (batch.ts): puts and deletes that arrive while earlier ones
 *   are in flight share one statement over arrays and one transaction, each
 *   row with its own condition and outcome; reads likewise share a SELECT.
 * - Revisions come from one sequence, drawn after the row lock is granted:
 *   per key strictly increasing, never reused (not after delete, not after
 *   purge); store-wide they are unique but commit order may differ from
 *   revision order under concurrency — watch() handles that (see watch.ts).
 * - Watch reads the change-log table (the truth) up to a revision below
 *   which no transaction can still commit: every transaction that drew a
 *   revision holds a lock on the store's revision sequence until it ends,
 *   so the watch waits for those transactions only (watch.ts, sql/watch.ts
 *   holdersOf) — an idle transaction elsewhere on the cluster does not hold
 *   it back. One that drew a revision of this store and stays open does (it
 *   may still commit a lower revision than one already committed): revkit's
 *   own transactions that span round trips (atomic()) are ended by the
 *   server after ATOMIC_IDLE_TIMEOUT_MS idle; another application's
 *   transaction that writes this store's tables is bounded by nothing revkit
 *   sets. LISTEN/NOTIFY is only a wake-up.
 * - close() lets calls in flight finish for closeTimeoutMs, then answers the
 *   rest with ClosedError (`ambiguous: true` where a write was sent: it may
 *   still commit), asks the server to cancel their statements and discards
 *   their connections: every call settles.
 */
import type { Pool, PoolClient } from 'pg';
import {
  AsyncQueue, BaseStore, DEFAULT_MAX_VALUE_BYTES, assertKey, assertOptions, jsonCodec, keyFilter,
  type AtomicOp, type Capabilities, type DeleteOptions, type Entry, type HistoryOptions, type ListOptions, type ListPage, type Mutation,
  type MutationOfDefaulted, type PutOptions, type ReplicationState, type StoredRecord, type UpdateOptions, type UpdateOptionsWithDefault,
  type WatchEvent, type WatchOptions,
} from '../core/index.js';
import { commitAtomicBatch, type AtomicParts } from './atomic.js';
import { ConditionalWrites } from './cas.js';
import { CLOSE_CLEANUP_MS, Connections, bounded, createPool, readServerSettings } from './connection.js';
import { MemberRing } from './hosts.js';
import { Lineage, POLL_MS } from './lineage.js';
import { WakeUps } from './notify.js';
import { settingsOf, urlSettings, type PostgresStoreOptions } from './options.js';
import { Reads } from './reads.js';
import { readReplication } from './replication.js';
import { Revisions } from './revisions.js';
import { RowCodec } from './rows.js';
import { assertSequenceUsable, dropStore, migrate, names, type Names } from './schema.js';
import { Sweeper } from './sweep.js';
import { WatchHub } from './watch.js';
import { WatchQueries } from './watch-source.js';

export { mapPgError, type PgWhere } from './errors.js';
export { MIGRATIONS, LATEST_VERSION } from './schema.js';
export { DEFAULT_POOL_SIZE, type PostgresStoreOptions } from './options.js';

export class PostgresStore extends BaseStore {
  readonly backend = 'postgres';
  capabilities: Capabilities = { atomic: true, ttl: true, history: true, watch: true, crossProcess: true, durability: 'server-default' };
  readonly names: Names;
  readonly historyDepth: number;
  private readonly conn: Connections;
  private readonly rows: RowCodec;
  private readonly revisions: Revisions;
  private readonly hub: WatchHub;
  private readonly wakeUps: WakeUps;
  private readonly reads: Reads;
  private readonly writes: ConditionalWrites;
  private readonly atomicParts: AtomicParts;
  private readonly sweeper: Sweeper;
  private readonly lineage: Lineage;
  private lossPoll: NodeJS.Timeout | undefined;

  private constructor(readonly pool: Pool, private readonly ownsPool: boolean, private readonly options: PostgresStoreOptions, private readonly ring?: MemberRing) {
    super();
    this.names = names(options.schema ?? 'public', options.prefix ?? 'revkit_');
    this.valueFormat = { codec: options.codec ?? jsonCodec, maxValueBytes: options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES };
    this.rows = new RowCodec(this.valueFormat.codec, this.valueFormat.maxValueBytes);
    const settings = settingsOf(options);
    this.historyDepth = settings.historyDepth;
    this.conn = new Connections(pool, this.names.tag, this, settings.connectWaitMs, settings.closeTimeoutMs);
    this.revisions = new Revisions(this.conn, this.names);
    const source = new WatchQueries(this.conn, this.names, this.rows, this.revisions, this, settings.watchPollMs, settings.changeRetentionMs);
    this.hub = new WatchHub(source, () => this.wakeUps.stopListening());
    this.wakeUps = new WakeUps(pool, this.names.channel, this.hub, this, settings.notify);
    this.reads = new Reads(this.conn, this.names, this.rows, this.revisions, settings.historyDepth, settings.batchesInFlight);
    this.writes = new ConditionalWrites(this.conn, this.names, this.rows, this.revisions, this.wakeUps, (key) => this.getRecord(key), settings.batchesInFlight);
    this.atomicParts = { conn: this.conn, names: this.names, rows: this.rows, revisions: this.revisions, wakeUps: this.wakeUps, head: () => this.headRevision() };
    this.sweeper = new Sweeper(this.conn, this.names, this, this.wakeUps, settings);
    if (ring && ring.members.length > 1) {
      const a = this.conn.where.address;
      this.conn.where.address = a.replace(/@[^/]*\//, `@${ring.members.map((m) => m.address).join(',')}/`).replace(/^postgres:\/\/[^@/]*:\d+\//, `postgres://${ring.members.map((m) => m.address).join(',')}/`);
    }
    const detect = options.lossDetection ?? process.env.REVKIT_TEST_PG_NO_LOSS_DETECTION !== '1';
    this.lineage = new Lineage(this.names, () => this.conn.where.address, detect);
    this.conn.guard = this.lineage;
    if (detect) this.revisions.listener = this.lineage;
    source.loss = this.lineage;
    // Every new connection re-reads what an acknowledgement means there (a failover, another member, a reload).
    this.lineage.onDurability = (durability) => this.setDurability(durability);
  }

  /** Opens a store on its own pool; `close()` ends that pool. See options.ts for the URL form. */
  static async fromUrl(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const { connectionString, merged, poolSize, connectTimeoutMs, members } = urlSettings(url, options);
    // Several hosts: each new connection goes to the member that accepts writes (hosts.ts).
    const ring = members.length > 1 ? new MemberRing(members) : undefined;
    const pool = createPool(connectionString, poolSize, connectTimeoutMs, ring?.clientClass());
    const store = new PostgresStore(pool, true, merged, ring);
    try {
      await store.init();
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    return store;
  }

  /** A store on an application's existing pool (which it does not end on close). */
  static async fromPool(pool: Pool, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const store = new PostgresStore(pool, false, options);
    await store.init();
    return store;
  }

  private async init(): Promise<void> {
    await this.conn.withClient('open', false, async (client) => {
      if (this.options.migrate !== false) await migrate(client, this.names);
      else await assertSequenceUsable(client, this.names);
      this.setDurability(await readServerSettings(client, this.conn.where));
      // The tables loss detection keeps exist now: meet this member's timeline (lineage.ts).
      this.lineage.ready = true;
      await this.lineage.check(client);
      await this.revisions.observe(client);
    });
    this.sweeper.start();
    if (this.lineage.enabled) {
      // Another process may latch a loss: hear of it within POLL_MS (a new connection also checks).
      this.lossPoll = setInterval(() => {
        if (!this.isClosed) this.conn.withClient('loss check', false, (c) => this.lineage.refresh(c)).catch(() => undefined);
      }, POLL_MS);
      this.lossPoll.unref();
    }
  }

  /**
   * The replicated engine as this store sees it: the member serving its
   * writes, the standbys that member streams to, what an acknowledgement
   * means (replication.ts), the timeline changes met, a latched loss.
   */
  async replication(): Promise<ReplicationState> {
    this.assertOpen();
    const r = await this.conn.withClient('replication', false, async (c) => {
      await this.lineage.refresh(c);
      return readReplication(c);
    });
    this.setDurability(r.durability);
    const serving = this.ring?.serving?.address ?? this.conn.where.address.replace(/^postgres:\/\/(?:[^@/]*@)?/, '').replace(/\/.*$/, '');
    const state: ReplicationState = {
      serving,
      members: [{ address: serving, role: 'primary', state: this.lineage.timeline === undefined ? 'serving' : `serving, timeline ${this.lineage.timeline}` }, ...r.standbys],
      durability: r.durability,
      note: r.note,
      failovers: this.lineage.failovers,
    };
    const l = this.lineage.lost;
    if (l) state.lost = { ...l, message: `acknowledged writes with revisions after ${l.after} up to ${l.upTo} are not on the serving member` };
    return state;
  }

  /** capabilities.durability follows the serving member's settings, as replication().durability reports them. */
  private setDurability(durability: Capabilities['durability']): void {
    this.lineage.durability = durability;
    if (this.capabilities.durability !== durability) this.capabilities = { ...this.capabilities, durability };
  }

  /** An operator accepts a detected loss (lineage.ts): operations stop failing with DataLostError in every process (the others within a second). */
  async acceptLoss(): Promise<void> {
    this.assertOpen();
    await this.conn.withClient('accept loss', true, (c) => this.lineage.accept(c));
  }

  /**
   * An update() is one operation for loss detection: a read it makes after a
   * backoff fails with the DataLostError its caller is owed, however soon
   * the loss was accepted (lineage.ts owedTo).
   */
  override update<T = unknown>(key: string, fn: MutationOfDefaulted<T>, options: UpdateOptionsWithDefault<T>): Promise<Entry<T> | null>;
  override update<T = unknown>(key: string, fn: Mutation<T>, options?: UpdateOptions<T>): Promise<Entry<T> | null>;
  override update<T = unknown>(key: string, fn: Mutation<T>, options?: UpdateOptions<T>): Promise<Entry<T> | null> {
    return this.lineage.within(() => super.update(key, fn, options));
  }

  /** Runs a read as one operation: it fails with what it is owed when it begins and when it ends (lineage.ts owedTo). */
  private async told<R>(read: () => Promise<R>): Promise<R> {
    const begun = this.lineage.begin();
    this.lineage.owedTo(begun);
    const result = await read();
    this.lineage.owedTo(begun);
    return result;
  }

  async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.assertOpen();
    assertKey(key);
    const record = await this.told(() => this.reads.record<T>(key));
    if (record) this.revisions.delivered(record.revision, key);
    return record;
  }

  async list<T = unknown>(options: ListOptions = {}): Promise<ListPage<T>> {
    assertOptions(options, 'list()');
    this.assertOpen();
    const page = await this.told(() => this.reads.list<T>(options));
    // Told to the caller: checked against a promoted member after a failover (lineage.ts), like a get.
    for (const e of page.entries) this.revisions.delivered(e.revision, e.key);
    return page;
  }

  async history<T = unknown>(key: string, options: HistoryOptions = {}): Promise<StoredRecord<T>[]> {
    assertOptions(options, 'history()');
    this.assertOpen();
    assertKey(key);
    const records = await this.told(() => this.reads.history<T>(key, options));
    for (const r of records) this.revisions.delivered(r.revision, key);
    return records;
  }

  /** The newest settled revision (see Revisions.head). */
  async headRevision(): Promise<number> {
    this.assertOpen();
    return this.revisions.head();
  }

  // Writes are refused before they are sent when their operation is owed a DataLostError (lineage.ts owedTo);
  // once sent, their outcome is their answer.
  protected async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    this.lineage.owedTo(this.lineage.begin());
    return this.writes.put(key, value, options);
  }

  /** update()'s write without a read (core/own-writes.ts): lands only on this store object's own last write of the key. */
  async putOnOwnWrite(key: string, value: unknown, guard: PutOptions, ownWriter: string): Promise<Entry<unknown>> {
    this.assertOpen();
    this.lineage.owedTo(this.lineage.begin());
    return this.writes.put(key, value, guard, ownWriter);
  }

  /** update()'s look for its own write beyond history() (core/own-write.ts): every change the log keeps. */
  async findWrite(key: string, writer: string, base: number): Promise<StoredRecord<unknown> | 'absent' | undefined> {
    this.assertOpen();
    const found = await this.told(() => this.reads.findWrite(key, writer, base));
    // Told to the caller, as a get's record is: checked against a promoted member after a failover (lineage.ts).
    if (typeof found === 'object') this.revisions.delivered(found.revision, key);
    return found;
  }

  protected async doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    this.lineage.owedTo(this.lineage.begin());
    return this.writes.delete(key, options);
  }

  protected override async commitAtomic(ops: AtomicOp[]): Promise<{ revision: number }> {
    this.lineage.owedTo(this.lineage.begin());
    return commitAtomicBatch(this.atomicParts, ops);
  }

  /**
   * A watch "from now" is fixed when watch() is called, without a round
   * trip: it delivers every change with a revision above the highest one
   * this store had seen (Revisions.known) that was written by a statement the
   * server began at or after that moment (by the server's clock, measured
   * against this process's monotonic clock over the start statement's round
   * trip, START_CLOCK_MARGIN_MS earlier), plus everything committed after its
   * start statement — whichever process wrote it. Its first next() resolves
   * with a change, so never before the start is fixed.
   */
  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    const startedAt = performance.now();
    const known = this.revisions.known;
    this.assertOpen();
    keyFilter(options); // validates key / prefix / fromRevision
    const queue = new AsyncQueue<WatchEvent>(options.signal);
    if (queue.closed) return queue as AsyncIterable<WatchEvent<T>>;
    this.wakeUps.listen();
    this.hub.add(options, queue, startedAt, known, this.lineage.begin());
    return queue as AsyncIterable<WatchEvent<T>>;
  }

  /** TTL removal, change-log pruning and tombstone purge now (see sweep.ts); safe to run in many processes at once. */
  async sweep(): Promise<void> {
    return this.sweeper.sweep();
  }

  /** Ends every watch, settles every call in flight (Connections.settleCalls), then ends the pool if it is the store's. */
  protected async doClose(): Promise<void> {
    this.sweeper.stop();
    clearInterval(this.lossPoll);
    this.hub.endAll();
    const listening = this.wakeUps.stopListening();
    await this.conn.settleCalls();
    await bounded(Promise.allSettled([this.sweeper.running, this.wakeUps.sending, listening]), CLOSE_CLEANUP_MS);
    if (this.ownsPool) await bounded(this.pool.end(), CLOSE_CLEANUP_MS);
  }

  /** Drops this store's tables, sequence and function (tests, benchmarks). The store must not be used afterwards. */
  async drop(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await dropStore(client, this.names);
    } finally {
      client.release();
    }
  }
}

/** A store on an existing `pg.Pool` (schema migrated on open). */
export function postgresStore(pool: Pool, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  return PostgresStore.fromPool(pool, options);
}

/** Drops the tables of a store given by schema/prefix, using any pg client or pool. */
export async function dropPostgresStore(client: Pick<Pool, 'query'>, options: { schema?: string; prefix?: string } = {}): Promise<void> {
  await dropStore(client as unknown as PoolClient, names(options.schema ?? 'public', options.prefix ?? 'revkit_'));
}
