/**
 * Where this store's revisions stand: the highest it has seen handed out,
 * the highest known settled (every transaction that drew one up to it has
 * ended), and the head — the newest settled revision, asked of the server.
 */
import type { PoolClient } from 'pg';
import { BackendError, sleep } from '../core/index.js';
import type { Connections } from './connection.js';
import { num, type Row } from './rows.js';
import type { Names } from './schema.js';
import { holdersSql, markSql } from './sql/watch.js';

/** How long headRevision() waits for transactions that drew a revision to end before calling it an outage. */
const HEAD_SETTLE_MS = 5_000;

export class Revisions {
  /**
   * The highest revision this store has seen handed out (its writes, reads,
   * marks, watch events): a lower bound of the sequence, known without a
   * round trip — where a watch "from now" reaches back to.
   */
  known = 0;
  /**
   * A revision up to which every transaction that drew one has ended
   * (observed by watchers and head(); only grows). 0 until one was observed.
   */
  settled = 0;

  constructor(private readonly conn: Connections, private readonly names: Names) {}

  /** Loss detection (lineage.ts) hears of every acknowledged write and every committed revision told to a caller. */
  listener: { noteAck(key: string, revision: number): void; noteSeen(revision: number): void; noteDelivered(key: string, revision: number): void } | undefined;

  /** A write of `key` was acknowledged at `revision`. */
  acked(key: string, revision: number): void {
    this.seen(revision);
    this.listener?.noteAck(key, revision);
  }

  /**
   * A committed revision was told to a caller: of `key` (a read, a list, a
   * history, a watch event), or of no key in particular (an atomic commit's
   * answer). Loss detection checks the keyed ones against a promoted member.
   */
  delivered(revision: number, key?: string): void {
    this.seen(revision);
    if (key === undefined) this.listener?.noteSeen(revision);
    else this.listener?.noteDelivered(key, revision);
  }

  /** Remembers a revision seen handed out (see known). */
  seen(revision: number): void {
    if (revision > this.known) this.known = revision;
  }

  /** At open: where watches start from — the revision handed out so far and, when nobody holds one, settled. */
  async observe(client: PoolClient): Promise<void> {
    const m = (await this.conn.q(client, 'wmark', () => markSql(this.names), [-1])).rows[0] as Row;
    this.seen(num(m.s));
    if (Array.isArray(m.holders) && m.holders.length === 0) this.settled = Math.max(this.settled, num(m.s));
  }

  /**
   * Revisions are drawn before commit, so the last one handed out may belong
   * to a transaction still open: take a mark, then wait until every
   * transaction that held a revision then has ended (the watch's own
   * settling rule: only transactions that drew a revision of this store
   * count, see holdersOf in sql/watch.ts). Such a transaction open for longer than
   * HEAD_SETTLE_MS is reported as a transient BackendError.
   */
  async head(): Promise<number> {
    const deadline = Date.now() + HEAD_SETTLE_MS;
    return this.conn.withClient('head', false, async (c) => {
      const m = (await this.conn.q(c, 'wmark', () => markSql(this.names), [this.settled])).rows[0] as Row;
      const s = num(m.s);
      this.seen(s);
      let holders = Array.isArray(m.holders) ? (m.holders as string[]) : [];
      for (let delay = 5; holders.length > 0; delay = Math.min(delay * 2, 100)) {
        if (Date.now() >= deadline) {
          throw new BackendError(`revisions up to ${s} did not settle within ${HEAD_SETTLE_MS} ms: ${holders.length} transaction(s) that drew a revision of this store are still open`, { transient: true });
        }
        await sleep(delay);
        const now = new Set((await this.conn.q(c, 'holders', () => holdersSql(this.names), [])).rows[0]?.holders as string[]);
        holders = holders.filter((h) => now.has(h));
      }
      this.settled = Math.max(this.settled, s);
      return s;
    });
  }
}
