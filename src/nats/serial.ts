/**
 * Compare-and-swap on a replicated stream of a nats-server older than 2.9.21.
 *
 * There, `Nats-Expected-Last-Subject-Sequence` (the per-key guard of every
 * revkit write) is only checked by the stream leader before it proposes the
 * message to RAFT, against what it has applied: concurrent publishes naming
 * the same sequence can all pass and all be stored (nats-io/nats-server#4320).
 * The stream-wide `Nats-Expected-Last-Sequence` is checked when each replica
 * applies the message, in log order, so it holds. A write therefore also
 * names the stream's last sequence L: it is stored only directly after L,
 * and then the leader's per-key check was made on a state that held every
 * message up to L — as long as the leader had applied L when it checked,
 * which is why L is only ever taken from the leader (a publish
 * acknowledgement, the number in a refusal, stream info), and forgotten
 * after any error or leader change (then read again with stream info).
 *
 * The price: writes to different keys of the bucket are serialised. A write
 * that lost only the stream-wide race (another key was written first) is
 * sent again with the new L after a short random backoff; that is never a
 * conflict on its key (cas.ts). Within one process the guarded writes go one
 * at a time (`exclusive`): they would only race each other for the same L,
 * and 16 writers of one process racing 16 of each other process starved
 * some of them for seconds.
 */
import type { BucketClient } from './client.js';

export class StreamTail {
  /** The stream's last sequence as its leader last told it; undefined: ask again. */
  private last: number | undefined;
  /** The tail of this process's queue of guarded writes. */
  private queue: Promise<unknown> = Promise.resolve();
  private lastWinAt = -Infinity;
  private lastWinRtt = 0;
  private lastWinSeq = 0;
  private contended = false;

  constructor(private readonly client: BucketClient) {}

  /** Runs `fn` after every guarded write of this store queued before it has settled. */
  exclusive<R>(fn: () => Promise<R>): Promise<R> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * How long this process's next guarded write should wait before it is sent: a random part of
   * the last winning send's round trip, when that win was just now. A process connected to the
   * stream leader hears of its own win (the ack) before the others hear of their loss (the refusal
   * crosses a route) and sends its next write with the new L first: without this, writers of the
   * processes on other servers lost every race for seconds (one for 5 s and 1,021 sends).
   */
  yieldMs(): number {
    if (!this.contended) return 0;
    const since = performance.now() - this.lastWinAt;
    return since < 2 * this.lastWinRtt ? (0.5 + Math.random()) * this.lastWinRtt - since / 2 : 0;
  }

  /** This process's send stored at `seq` after a round trip of `rttMs`. */
  won(seq: number, rttMs: number, lost: boolean): void {
    // Others write too when someone else's message came between this process's last two, or this one lost a race.
    this.contended = lost || (this.lastWinSeq > 0 && seq !== this.lastWinSeq + 1);
    this.lastWinSeq = seq;
    this.lastWinAt = performance.now();
    this.lastWinRtt = Math.min(rttMs, 20);
  }

  async current(): Promise<number> {
    if (this.last === undefined) this.last = (await this.client.streamInfo()).state.last_seq;
    return this.last;
  }

  /** The leader stored (or refused at) `seq`: the stream's last sequence is at least that. */
  saw(seq: number): void {
    if (this.last === undefined || seq > this.last) this.last = seq;
  }

  /** A refusal named `seq` as the last sequence (the stream's, or the key's: then the next try says). */
  refusedAt(seq: number | null | undefined): void {
    this.last = seq === undefined ? undefined : seq ?? 0;
  }

  /** After any error but a refusal, or a leader change: L might come from a leader that no longer leads. */
  forget(): void {
    this.last = undefined;
  }
}
