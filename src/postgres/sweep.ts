/**
 * How TTL expiry and history trimming are done, in the background: expired
 * entries become tombstones (a delete change watchers see), the change log
 * is pruned past historyDepth and the change retention, and old tombstones
 * are purged. The statements are in sql/sweep.ts.
 */
import type { Connections, Lifecycle } from './connection.js';
import type { WakeUps } from './notify.js';
import type { Settings } from './options.js';
import { num, optNum } from './rows.js';
import type { Names } from './schema.js';
import { expireSql, PRUNE_SPAN, pruneSql, purgeSql } from './sql/sweep.js';

/** 20 spans of 50,000: a log growing by up to a million revisions per sweep is kept up with. */
const MAX_PRUNE_SPANS_PER_SWEEP = 20;

export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private sweeps = 0;
  private pruneMark = 0;

  constructor(
    private readonly conn: Connections,
    private readonly names: Names,
    private readonly store: Pick<Lifecycle, 'isClosed'>,
    private readonly wakeUps: Pick<WakeUps, 'signalChange'>,
    private readonly settings: Pick<Settings, 'historyDepth' | 'changeRetentionMs' | 'tombstoneRetentionMs' | 'sweepIntervalMs'>,
  ) {}

  /** Sweeps every sweepIntervalMs (0: never). */
  start(): void {
    if (this.settings.sweepIntervalMs > 0) {
      this.timer = setInterval(() => void this.sweep(), this.settings.sweepIntervalMs);
      this.timer.unref();
    }
  }

  /** No more sweeps on the timer (one running goes on: see running). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** The sweep running, if any. */
  get running(): Promise<void> | undefined {
    return this.sweeping;
  }

  /** TTL removal, change-log pruning and tombstone purge; safe to run in many processes at once. */
  async sweep(): Promise<void> {
    if (this.sweeping || this.store.isClosed) return this.sweeping;
    this.sweeping = (async () => {
      try {
        await this.conn.withClient('sweep', true, async (c) => {
          let expired = 0;
          for (let i = 0; i < 10; i++) {
            const r = await this.conn.q(c, 'expire', () => expireSql(this.names), [500]);
            const n = num(r.rows[0]?.expired ?? 0);
            expired += n;
            if (n < 500) break;
          }
          if (expired > 0) this.wakeUps.signalChange();
          // A span at a time, each its own statement; as many as a busy log needs to keep up, within bounds.
          for (let i = 0; i < MAX_PRUNE_SPANS_PER_SWEEP && !this.store.isClosed; i++) {
            const from = this.pruneMark;
            const p = await this.conn.q(c, 'prune', () => pruneSql(this.names), [from, this.settings.historyDepth, this.settings.changeRetentionMs, PRUNE_SPAN]);
            const mark = optNum(p.rows[0]?.mark);
            if (mark !== undefined) this.pruneMark = Math.max(0, mark);
            if (mark === undefined || mark < from + PRUNE_SPAN) break;
          }
          if (this.sweeps++ % 10 === 0) await this.conn.q(c, 'purge', () => purgeSql(this.names), [this.settings.tombstoneRetentionMs]);
        });
      } catch {
        // Background work: a failure (outage, lock) is retried next period.
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }
}
