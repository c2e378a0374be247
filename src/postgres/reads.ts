/** How a store reads: one key (with others that arrive meanwhile, batch.ts), a page of keys, a key's history. */
import {
  InvalidArgumentError, assertLimit, assertAfter, assertPrefix, type HistoryOptions, type ListOptions, type ListPage, type StoredRecord,
} from '../core/index.js';
import { GroupSender, MAX_BATCH } from './batch.js';
import type { Connections } from './connection.js';
import type { Revisions } from './revisions.js';
import { num, type Row, type RowCodec } from './rows.js';
import type { Names } from './schema.js';
import { likePrefix } from './sql/common.js';
import { findWriteSql, getManySql, getSql, historySql, listSql } from './sql/read.js';

export class Reads {
  private readonly sender: GroupSender<string, Row | undefined>;

  constructor(
    private readonly conn: Connections,
    private readonly names: Names,
    private readonly rows: RowCodec,
    private readonly revisions: Revisions,
    private readonly historyDepth: number,
    batchesInFlight: number,
  ) {
    this.sender = new GroupSender({ one: (k) => this.readOne(k), many: (ks) => this.readMany(ks) }, batchesInFlight, MAX_BATCH);
  }

  /** A key's record (entry or tombstone; null: never written, or purged), read with others that arrive meanwhile. */
  async record<T>(key: string): Promise<StoredRecord<T> | null> {
    const row = await this.sender.submit(key);
    if (!row) return null;
    this.revisions.seen(num(row.revision));
    return this.rows.toRecord<T>(key, row, num(row.now));
  }

  private async readOne(key: string): Promise<Row | undefined> {
    return (await this.conn.withClient('get', false, (c) => this.conn.q(c, 'get', () => getSql(this.names), [key]))).rows[0];
  }

  /** Reads that arrived while others were out, in one statement (see batch.ts). */
  private async readMany(keys: string[]): Promise<(Row | undefined)[]> {
    const r = await this.conn.withClient('get', false, (c) => this.conn.q(c, 'getmany', () => getManySql(this.names), [[...new Set(keys)]]));
    const byKey = new Map(r.rows.map((row) => [row.key as string, row]));
    return keys.map((k) => byKey.get(k));
  }

  async list<T>(options: ListOptions): Promise<ListPage<T>> {
    const prefix = options.prefix ?? '';
    assertPrefix(prefix);
    assertAfter(options.after);
    if (options.after !== undefined && typeof options.after !== 'string') throw new InvalidArgumentError('after must be a key string');
    const limit = assertLimit(options.limit, 10_000) ?? 1000;
    const r = await this.conn.withClient('list', false, (c) => this.conn.q(c, 'list', () => listSql(this.names), [likePrefix(prefix), options.after ?? null, limit + 1]));
    const page = r.rows.slice(0, limit);
    const entries = page.map((row) => this.rows.toEntry<T>(row.key as string, row));
    return r.rows.length > limit ? { entries, cursor: page[page.length - 1]?.key as string } : { entries };
  }

  /**
   * The change of `key` above revision `base` written with `writer`, found in everything the change log
   * keeps; 'absent' when it is not there and the log kept every change above `base`; undefined when it may
   * have been pruned. What update() asks after a lost acknowledgement when history() does not reach `base`.
   */
  async findWrite<T>(key: string, writer: string, base: number): Promise<StoredRecord<T> | 'absent' | undefined> {
    const row = (await this.conn.withClient('history', false, (c) => this.conn.q(c, 'findwrite', () => findWriteSql(this.names), [key, writer, base]))).rows[0] as Row;
    if (row.revision !== null && row.revision !== undefined) return row.deleted ? this.rows.toRecord<T>(key, row, 0) : this.rows.toEntry<T>(key, row);
    return row.complete === true ? 'absent' : undefined;
  }

  async history<T>(key: string, options: HistoryOptions): Promise<StoredRecord<T>[]> {
    const limit = assertLimit(options.limit, this.historyDepth) ?? this.historyDepth;
    const r = await this.conn.withClient('history', false, (c) => this.conn.q(c, 'history', () => historySql(this.names), [key, limit]));
    return r.rows.map((row) => (row.deleted ? this.rows.toRecord<T>(key, row, 0) : this.rows.toEntry<T>(key, row)));
  }
}
