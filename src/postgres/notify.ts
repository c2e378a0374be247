/**
 * How watchers learn of a write at once rather than at their next poll:
 * this process's watchers are woken directly, other processes' through a
 * (coalesced) NOTIFY on the store's channel, which this store LISTENs to
 * while anyone watches. Only a wake-up: watchers read the change log.
 */
import type { Pool, PoolClient } from 'pg';
import type { Lifecycle } from './connection.js';
import type { WatchHub } from './watch.js';

/** Cross-process watch wake-ups are batched into windows of this length. */
const NOTIFY_WINDOW_MS = 10;
/**
 * A NOTIFY gives its transaction an xid, so its commit would wait for a WAL
 * flush — an fsync per wake-up, competing with the writes it announces. It
 * is only a hint (watchers read the change log), so it commits without one.
 */
const NOTIFY_SQL = `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)`;

export class WakeUps {
  /** Tells this store's own NOTIFYs from other processes' (its listener hears both). */
  private readonly instanceTag = Math.random().toString(36).slice(2);
  private listener: { stop: () => void; done: Promise<void> } | undefined;
  private notifyState: 'idle' | 'busy' | 'again' = 'idle';
  private notifying: Promise<void> | undefined;

  constructor(
    private readonly pool: Pool,
    /** LISTEN/NOTIFY channel (Names.channel). */
    private readonly channel: string,
    private readonly hub: Pick<WatchHub, 'wants' | 'wake'>,
    private readonly store: Pick<Lifecycle, 'isClosed'>,
    /** Send NOTIFYs (the notify option). */
    private readonly notify: boolean,
  ) {}

  /** The NOTIFY being sent, if any (close() waits for it). */
  get sending(): Promise<void> | undefined {
    return this.notifying;
  }

  /**
   * After a committed write: wake local watchers, and NOTIFY other processes —
   * at most once per NOTIFY_WINDOW_MS (trailing). A NOTIFY per write is an
   * extra round trip per write; measured on one writer it cost a third of the
   * throughput. Watchers elsewhere wake at most a window later. Local
   * watchers wake only for the keys they watch (`keys` undefined: any).
   */
  signalChange(keys?: readonly string[]): void {
    if (this.hub.wants(keys)) this.hub.wake();
    if (!this.notify || this.store.isClosed) return;
    if (this.notifyState !== 'idle') {
      this.notifyState = 'again';
      return;
    }
    this.notifyState = 'busy';
    const send = (): Promise<void> =>
      this.pool.query(NOTIFY_SQL, [this.channel, this.instanceTag]).then(() => undefined, () => undefined)
        .then(() => new Promise<void>((resolve) => setTimeout(resolve, NOTIFY_WINDOW_MS).unref()))
        .then(() => {
          if (this.notifyState === 'again' && !this.store.isClosed) {
            this.notifyState = 'busy';
            return send();
          }
          this.notifyState = 'idle';
          return undefined;
        });
    this.notifying = send();
  }

  /** Listens for other processes' NOTIFYs while anyone watches: one connection of the pool, held (and re-made after a loss). */
  listen(): void {
    if (this.listener || this.store.isClosed) return;
    let stopped = false;
    let wakeStop: () => void = () => undefined;
    const loop = async () => {
      while (!stopped && !this.store.isClosed) {
        let client: PoolClient | undefined;
        let broken: unknown;
        try {
          client = await this.pool.connect();
          const c = client;
          await new Promise<void>((resolve) => {
            wakeStop = resolve;
            // stop() may have run while connect() was waiting: its wake-up went to the old no-op.
            if (stopped || this.store.isClosed) return resolve();
            c.on('error', (err) => {
              broken = err;
              resolve();
            });
            c.on('end', () => resolve());
            c.on('notification', (n) => {
              if (n.payload !== this.instanceTag) this.hub.wake();
            });
            c.query(`LISTEN "${this.channel}"`).then(() => this.hub.wake(), (err) => {
              broken = err;
              resolve();
            });
          });
        } catch (err) {
          broken = err;
        } finally {
          // A LISTENing connection never goes back to the pool.
          client?.release(true);
        }
        if (!stopped) await new Promise<void>((r) => {
          const t = setTimeout(r, broken ? 500 : 50);
          wakeStop = () => { clearTimeout(t); r(); };
        });
      }
    };
    const done = loop();
    this.listener = { stop: () => { stopped = true; wakeStop(); }, done };
  }

  /** Stops listening; answers the listening loop's end, for close() to wait for. */
  stopListening(): Promise<void> | undefined {
    const l = this.listener;
    this.listener = undefined;
    l?.stop();
    return l?.done;
  }
}
