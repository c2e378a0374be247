import type { Redis, RedisOptions } from 'ioredis';
import { sleep } from '../core/index.js';
import { InFlight, cutConnection, watchHandshake } from './connection.js';

/**
 * Wakes the store's caught-up watches when the change log grows. XREAD BLOCK
 * holds its connection, so one blocking reader per store serves every watch
 * instead of a connection each. It only wakes: each watch then reads its next
 * page with the trim floor, in one script.
 */
export class StreamWaker {
  private conn: Redis | undefined;
  private inFlight: InFlight | undefined;
  /** The newest stream id known to exist: a watch caught up below it need not wait. */
  private newest = '0-0';
  /** Each waiting watch's wake-up, with the set of its signal it is also in. */
  private readonly waiters = new Map<() => void, Set<() => void>>();
  /** One abort listener per watch's signal for all its waits (adding one per wait cost every idle watch 2 µs a write). */
  private readonly bySignal = new WeakMap<AbortSignal, Set<() => void>>();
  private running = false;
  private stopWatch: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly client: Redis, private readonly stream: string, private readonly blockMs: number,
    private readonly commandTimeoutMs: number, private readonly connection: RedisOptions,
  ) {}

  /**
   * Resolves once the log may hold an entry after `after`, or when `signal` aborts; after
   * `blockMs` at most, when the blocking read times out and wakes every waiting watch.
   */
  wait(after: string, signal: AbortSignal): Promise<void> {
    if (compareIds(this.newest, after) > 0 || this.closed || signal.aborted) return Promise.resolve();
    this.newest = after;
    return new Promise((resolve) => {
      const ofSignal = this.waitersOf(signal);
      ofSignal.add(resolve);
      this.waiters.set(resolve, ofSignal);
      if (!this.running) void this.loop();
    });
  }

  private waitersOf(signal: AbortSignal): Set<() => void> {
    let waiting = this.bySignal.get(signal);
    if (!waiting) {
      const set = new Set<() => void>();
      this.bySignal.set(signal, (waiting = set));
      signal.addEventListener('abort', () => {
        for (const done of set) {
          this.waiters.delete(done);
          done();
        }
        set.clear();
      }, { once: true });
    }
    return waiting;
  }

  close(): void {
    this.closed = true;
    this.wakeAll();
    this.stopWatch?.();
    this.inFlight?.detach('redis');
    this.conn?.disconnect();
  }

  private async loop(): Promise<void> {
    this.running = true;
    let backoff = 0;
    try {
      while (this.waiters.size > 0 && !this.closed) {
        const { conn, inFlight } = this.connect();
        try {
          const from = this.newest;
          const woke = await inFlight.track(() => conn.xreadBuffer('COUNT', 1, 'BLOCK', this.blockMs, 'STREAMS', this.stream, from), false, this.blockMs);
          if (woke === null) {
            // Nothing for blockMs: every waiting watch reads again (their periodic look, one timer for all).
            this.wakeAll();
            continue;
          }
          // Jump to the last entry, so that a burst of writes is one wake-up, not one per entry.
          const [last] = (await inFlight.track(() => conn.xrevrange(this.stream, '+', '-', 'COUNT', 1))) as Array<[string, string[]]>;
          if (last && compareIds(last[0], this.newest) > 0) this.newest = last[0];
          backoff = 0;
        } catch {
          // The watches find out what is wrong on their own reads.
          backoff = Math.min(Math.max(backoff * 2, 50), 2000);
          this.wakeAll();
          await sleep(backoff);
          continue;
        }
        this.wakeAll();
      }
    } finally {
      this.running = false;
    }
  }

  private connect(): { conn: Redis; inFlight: InFlight } {
    if (!this.conn || !this.inFlight) {
      this.conn = this.client.duplicate({ ...this.connection, lazyConnect: true });
      this.conn.on('error', () => undefined);
      const conn = this.conn;
      // Its own connection: one that stopped answering (a frozen master) is cut and made again.
      this.inFlight = new InFlight(conn, { commandTimeoutMs: this.commandTimeoutMs, onSilent: () => cutConnection(conn) });
      this.stopWatch = watchHandshake(conn, this.commandTimeoutMs);
    }
    return { conn: this.conn, inFlight: this.inFlight };
  }

  private wakeAll(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const [done, ofSignal] of waiting) {
      ofSignal.delete(done);
      done();
    }
  }
}

/**
 * Orders stream ids `<ms>-<seq>` (both parts may exceed 2^53). Redis writes
 * both parts as decimals without leading zeros, so a longer part is larger
 * and parts of one length compare as text: no number is parsed (every idle
 * watch compares ids on every write it is woken for).
 */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  return compareDecimals(am, bm) || compareDecimals(as, bs);
}

function compareDecimals(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a === b ? 0 : a < b ? -1 : 1;
}
