/** What watch() asks the server, for the hub in watch.ts: marks, the start of a watch "from now", the change log. */
import type { WatchEvent } from '../core/index.js';
import type { Connections, Lifecycle } from './connection.js';
import type { Revisions } from './revisions.js';
import { num, type Row, type RowCodec } from './rows.js';
import type { Names } from './schema.js';
import { markSql, startRowsSql, startSql, watchSql } from './sql/watch.js';
import type { Mark, StartMark, WatchQueryParams, WatchSource, WatchStart } from './watch.js';

/** Loss detection, as a watch needs it (Lineage in lineage.ts). */
export interface WatchLoss {
  owedTo(begun: number): void;
}

export class WatchQueries implements WatchSource {
  /** Loss detection (set by the store): a watch begun before this process learned its own loss was accepted fails with it. */
  loss: WatchLoss | undefined;

  constructor(
    private readonly conn: Connections,
    private readonly names: Names,
    private readonly rows: RowCodec,
    private readonly revisions: Revisions,
    private readonly store: Pick<Lifecycle, 'isClosed'>,
    readonly pollMs: number,
    /** The store's changeRetentionMs: how far behind now the sweep may prune (startRowsSql). */
    private readonly changeRetentionMs: number,
  ) {}

  get isClosed(): boolean {
    return this.store.isClosed;
  }

  /** A mark (see markSql); holders null when `settled` covers it. */
  async watchMark(settled: number): Promise<Mark> {
    const r = await this.conn.withClient('watch', false, (c) => this.conn.q(c, 'wmark', () => markSql(this.names), [settled]));
    const row = r.rows[0] as Row;
    const s = num(row.s);
    this.revisions.seen(s);
    return { s, holders: Array.isArray(row.holders) ? (row.holders as string[]) : null };
  }

  /** Changes up to the settled revision (after the mark that settled it). */
  async watchQuery(p: WatchQueryParams): Promise<Row[]> {
    const exact = p.keys !== undefined;
    const r = await this.conn.withClient('watch', false, (c) => this.conn.q(c, exact ? 'wquerykeys' : 'wquery', () => watchSql(this.names, exact), [
      p.settled, p.from.rev, p.from.key, p.keys ?? p.patterns, p.limit,
    ]));
    return r.rows;
  }

  /** The store's settled revision (Revisions.settled): the hub moves it on as marks settle. */
  get settledHorizon(): number {
    return this.revisions.settled;
  }

  set settledHorizon(revision: number) {
    this.revisions.settled = revision;
  }

  /** The start of watches "from now": snapshot S0, a mark after it, the server clock, a horizon settled before S0. */
  async watchStart(): Promise<StartMark> {
    const low = this.revisions.settled;
    const r = await this.conn.withClient('watch', false, (c) => this.conn.q(c, 'wstart', () => startSql(this.names), []));
    const receivedAt = performance.now();
    const row = r.rows[0] as Row;
    const s = num(row.s);
    this.revisions.seen(s);
    return { snap: String(row.snap), s, holders: (row.holders as string[] | null) ?? [], serverMs: num(row.ms), receivedAt, low, pruned: num(row.pruned) };
  }

  /** What a start owes at or below its mark (call once the mark is settled; see startRowsSql). */
  async watchStartRows(start: WatchStart, patterns: string[]): Promise<Row[]> {
    const r = await this.conn.withClient('watch', false, (c) =>
      this.conn.q(c, 'wstartrows', () => startRowsSql(this.names), [start.low, start.s, patterns, start.snap, start.known, start.since, this.changeRetentionMs, start.pruned]));
    return r.rows;
  }

  /** Throws the DataLostError owed to a watch begun at epoch `begun` (lineage.ts owedTo). */
  owedTo(begun: number): void {
    this.loss?.owedTo(begun);
  }

  /** A change-log row as the event a watcher gets. */
  decodeChange(row: Row): WatchEvent {
    const key = row.key as string;
    const revision = num(row.revision);
    this.revisions.delivered(revision, key);
    if (row.deleted) return { type: 'delete', key, revision };
    return { type: 'put', key, revision, entry: this.rows.toEntry(key, row) };
  }
}
