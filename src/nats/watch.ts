/**
 * How watch() follows the stream: an ephemeral push consumer (reader.ts)
 * from `fromRevision + 1`, or, for a watch "from now", from a start fixed
 * when watch() is called (start.ts). Every revkit write names the revision
 * it replaced (records.ts), so each key's chain is checked: a link the
 * stream no longer keeps is HistoryGoneError, never a silent skip.
 */
import {
  AsyncQueue, BackendError, HistoryGoneError, RevkitError, backlogged, keyFilter,
  type Codec, type Entry, type WatchEvent, type WatchOptions,
} from '../core/index.js';
import type { Msg } from '@nats-io/transport-node';
import type { BucketClient } from './client.js';
import { toBackendError } from './errors.js';
import { filterForPrefix } from './keys.js';
import { ResumableReader } from './reader.js';
import { isDeleteOp, previousOf, toRecord } from './records.js';
import { keptBetween, lostBetween, mayHavePassedOver } from './passed-over.js';
import { startFromNow } from './start.js';

/** How often in a row a watch sends its reader back to the same revision before it gives up (a transient BackendError). */
const MAX_READS_AGAIN = 20;

/** The watches of one store, so that closing the store ends them all. */
export class BucketWatches {
  private readonly watchers = new Set<{ queue: AsyncQueue<WatchEvent>; stop: () => void }>();

  constructor(
    private readonly client: BucketClient,
    private readonly codec: Codec,
    /** The stream has stream-wide limits (max age, bytes or messages), which remove whole keys. */
    private readonly streamHasLimits: boolean,
    /** max_msgs_per_subject (0 or less: no per-key limit), for the passed-over check (passed-over.ts). */
    private readonly historyDepth: number,
  ) {}

  /**
   * A watch "from now" (no `fromRevision`) is fixed when watch() is called,
   * without a round trip: it delivers, in stream order, every message stored
   * by the stream's server at or after a threshold T — the server's clock
   * when watch() was called, at the latest, less START_CLOCK_MARGIN_MS — and
   * above the highest revision this store had seen (written or read) when
   * watch() was called. A write that starts after watch() was called,
   * whichever process or connection makes it, reaches the server later, so
   * it is stamped at or after T and numbered above that revision: it is
   * delivered, before anything newer. A write that began up to the margin
   * plus the start's round trip before watch() was called (and that this
   * store had not seen) may be delivered too.
   *
   * How T is found (startFromNow in start.ts): one reading S of the server's clock
   * taken by a request sent after watch() was called, whose answer arrived
   * `elapsed` ms (this process's monotonic clock) after the call; the
   * server's clock read S at some moment of that interval, so when watch()
   * was called it read at least S − elapsed. Then the start is the last
   * message stored before T, found by walking back from the stream's last
   * sequence (lastStoredBefore in start.ts).
   *
   * What it owes is less: the changes after the last message stored before
   * watch() was called, as bounded by that same reading without the margin
   * (`owed` in startFromNow). A change it owes that the stream no longer
   * keeps (the per-key history limit removed it before the watch read it)
   * is HistoryGoneError; a change from before the call is not owed, so one
   * that the per-key limit removed from the reach-back is passed over.
   */
  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    const calledAt = performance.now();
    const known = this.client.knownRevision;
    this.client.assertOpen();
    const matches = keyFilter(options);
    const filter = options.key !== undefined ? this.client.subjectOf(options.key) : `${this.client.prefix}.${filterForPrefix(options.prefix ?? '').filter}`;
    const queue = new AsyncQueue<WatchEvent>(options.signal);
    let reader: ResumableReader | undefined;
    const watcher = { queue, stop: () => reader?.stop() };
    this.watchers.add(watcher);
    queue.onClose(() => {
      this.watchers.delete(watcher);
      reader?.stop();
    });
    const start = async () => {
      let from = options.fromRevision;
      // The revision the watch owes every change after: `from` itself for a watch from a revision; for a
      // watch "from now", a sequence at or above the delivery start below which everything was stored
      // before watch() was called (see startFromNow).
      let owed = from ?? 0;
      if (from === undefined) {
        ({ base: from, owed } = await startFromNow(this.client, calledAt, known));
      } else if (this.streamHasLimits) {
        const info = await this.client.streamInfo();
        const { first_seq: first, last_seq: last } = info.state;
        // Only stream-wide limits (age, bytes, count) remove whole keys; below the first kept sequence nothing can be vouched for.
        if (from + 1 < first && last > from) throw new HistoryGoneError(from, first);
      }
      if (queue.closed) return;
      const base = from;
      // Every revkit write names the revision it replaced (Nats-Expected-Last-Subject-Sequence),
      // so a missing link in a key's chain is a change the stream no longer keeps: HistoryGoneError
      // when the watch owes it, i.e. when it is above `owed`. A watch "from now" starts delivering
      // at `base`, up to START_CLOCK_MARGIN_MS before watch() was called, but owes nothing stored
      // before the call: a hot key's writes in that reach-back that the per-key history limit
      // removed are not missing from it; it delivers what is still there.
      const lastBySubject = new Map<string, number>();
      // Messages are handled one after another, in stream order: a delivery that may have passed over a
      // message the per-key limit removed is checked first (passed-over.ts), and nothing after it is
      // delivered before that check ends.
      let handling: Promise<void> = Promise.resolve();
      let failed = false;
      const fail = (err: unknown) => {
        if (failed) return;
        failed = true;
        reader?.stop();
        queue.fail(err);
      };
      // A server that passes over kept messages under a subject filter (features.ts, filteredReads) is
      // read unfiltered: every message of the bucket, in order, the watch's keys picked out here.
      const trustFilter = this.client.features.filteredReads;
      // Messages read before the watch sent its reader back (a consumer that passed over kept messages) are dropped.
      let readAgain = 0;
      let readAgainAt = -1;
      let readsAgainThere = 0;
      reader = new ResumableReader(this.client.readerContext(), {
        filter: trustFilter ? filter : '',
        startSeq: base + 1,
        onMessage: (msg, seq, { after, pending }) => {
          const arrived = readAgain;
          // Only what the watch owes counts: a "from now" watch owes nothing at or below `owed`.
          const from = Math.max(after, owed);
          const unfilteredJump = !trustFilter && seq > from + 1;
          if (unfilteredJump || (seq > from + 1 && mayHavePassedOver(pending, this.historyDepth))) {
            handling = handling.then(async () => {
              if (failed || arrived !== readAgain) return;
              // Reading the whole bucket, the consumer jumps only over removed messages; one that passed
              // over a kept one is sent back to read it (keptBetween in passed-over.ts).
              if (unfilteredJump && (await keptBetween(this.client, from, seq))) {
                if (from !== readAgainAt) [readAgainAt, readsAgainThere] = [from, 0];
                if (++readsAgainThere > MAX_READS_AGAIN) {
                  fail(new BackendError(`the server's consumer passed over stored messages after revision ${from} ${MAX_READS_AGAIN} times in a row`, { transient: true }));
                  return;
                }
                readAgain++;
                reader?.resumeFrom(from + 1);
                return;
              }
              if (mayHavePassedOver(pending, this.historyDepth) && (await lostBetween(this.client, filter, from, seq, this.historyDepth, trustFilter))) {
                fail(new HistoryGoneError(from, seq));
              }
            }).catch((err) => fail(RevkitError.is(err) ? err : toBackendError(err, false)));
          }
          handling = handling.then(() => {
            if (failed || arrived !== readAgain) return;
            // A consumer with a full backlog waiting: the reader stops here and reads again from this message once
            // the consumer has caught up; what the old consumer sent meanwhile is dropped.
            const resume = () => {
              if (!queue.closed && !failed) reader?.resumeFrom(seq, 'the consumer caught up');
            };
            if (backlogged(queue, resume)) {
              readAgain++;
              reader?.pause();
              return;
            }
            deliver(msg, seq);
          });
        },
        onError: (err) => {
          handling = handling.then(() => fail(toBackendError(err, false)));
        },
      });
      const deliver = (msg: Msg, seq: number) => {
        const key = this.client.keyOfSubject(msg.subject);
        if (key === null || !matches(key)) return;
        const known = lastBySubject.get(msg.subject);
        lastBySubject.set(msg.subject, seq);
        const prev = previousOf(msg.headers);
        // A key's first message in this watch names a predecessor the watch did not deliver: owed only
        // when above `owed` (at or below it, it was stored before watch() was called). A later one must
        // name the key's message delivered before it; what lies between is owed when above `owed` (a
        // name below that message is never right).
        if (prev !== undefined && (known === undefined ? prev > owed : prev !== known && (prev > owed || prev < known))) {
          fail(new HistoryGoneError(known ?? owed, seq));
          return;
        }
        try {
          this.client.noteReturned(key, seq);
          queue.push(isDeleteOp(msg.headers)
            ? { type: 'delete', key, revision: seq }
            : { type: 'put', key, revision: seq, entry: toRecord(this.codec, key, seq, msg.headers, msg.data, undefined) as Entry });
        } catch (err) {
          fail(err);
        }
      };
      if (queue.closed) reader.stop();
    };
    start().catch((err) => queue.fail(RevkitError.is(err) ? err : toBackendError(err, false)));
    return queue as AsyncIterable<WatchEvent<T>>;
  }

  /** Ends every watch (the store is closing). */
  closeAll(): void {
    for (const w of this.watchers) {
      w.stop();
      w.queue.end();
    }
    this.watchers.clear();
  }
}
