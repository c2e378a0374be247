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
  private readonly waiters = new Set<() => void>();
  private running = false;
  private stopWatch: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly client: Redis, private readonly stream: string, private readonly blockMs: number,
    private readonly commandTimeoutMs: number, private readonly connection: RedisOptions,
  ) {}

  /** Resolves once the log may hold an entry after `after`, after `blockMs` at most, or when `signal` aborts. */
  wait(after: string, signal: AbortSignal): Promise<void> {
    if (compareIds(this.newest, after) > 0 || this.closed || signal.aborted) return Promise.resolve();
    this.newest = after;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, this.blockMs);
      signal.addEventListener('abort', done, { once: true });
      this.waiters.add(done);
      if (!this.running) void this.loop();
    });
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
          if (woke === null) continue;
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
    for (const done of [...this.waiters]) done();
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
