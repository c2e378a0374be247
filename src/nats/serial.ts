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
 * The price: writes to different keys of the bucket are serialised (a write
 * that lost only the stream-wide race is sent again at once with the new L,
 * without counting as a conflict).
 */
import type { BucketClient } from './client.js';

export class StreamTail {
  /** The stream's last sequence as its leader last told it; undefined: ask again. */
  private last: number | undefined;

  constructor(private readonly client: BucketClient) {}

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
