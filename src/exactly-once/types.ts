import type { StampDetails } from '../core/index.js';

/** Identifies one message of one producer instance: what `producer.stamp()` issues. */
export interface Stamp {
  producerId: string;
  epoch: number;
  partition: string;
  sequence: number;
}

/** The producer's record: its current epoch. Retiring leaves it (so old stamps stay fenced) with `retired`. */
export interface EpochRecord {
  epoch: number;
  retired?: boolean;
  /**
   * Set when the producer was registered again after `retireProducer()`: the
   * epoch it was retired at. The dedup records of every epoch up to it were
   * deleted, so whether one of their stamps was applied is no longer known.
   */
  retiredEpoch?: number;
}

export interface RecentResult {
  epoch: number;
  sequence: number;
  payloadHash: string;
  /**
   * The handler's result (null for undefined). Absent when it was dropped to
   * keep the dedup record within its byte budget (`dedupBytes`): a duplicate
   * of this stamp is still recognised, and its payload still compared, but
   * answered without its result.
   */
  result?: unknown;
  /** Token of the process() attempt that committed it: after a lost acknowledgement, that caller recognises its own commit. */
  commit?: string;
}

/** Dedup record of one (producerId, partition), written in the same atomic commit as the handler's effects. */
export interface DedupRecord {
  /** Epoch of the last applied stamp. */
  epoch: number;
  lastSequence: number;
  /** The last `window` applied stamps, oldest first (fewer when the byte budget needs it). */
  recent: RecentResult[];
  /**
   * Where earlier epochs stopped on this partition: `[epoch, last sequence
   * applied under it]` for each of the last EPOCHS_KEPT epochs before `epoch`
   * that applied something here, oldest first. Absent while the partition has
   * only ever been written under one epoch (the common case: no cost), `[]`
   * when the record was created under an epoch later than the producer's
   * first (so that older epochs are known to have applied nothing here).
   */
  past?: [epoch: number, lastSequence: number][];
  /**
   * Epochs at or below `cut[0]` are no longer listed in `past` (more than
   * EPOCHS_KEPT epochs ago); every sequence they applied is at or below
   * `cut[1]`. A stamp of such an epoch above `cut[1]` was never applied; at or
   * below it, whether it was is no longer known.
   */
  cut?: [epoch: number, lastSequence: number];
}

export type Outcome<R> =
  | { status: 'applied'; result: R; revision: number }
  /**
   * Applied before (by this stamp: same epoch and sequence), however long ago
   * and whichever epoch is current. `result` is the cached one. When the
   * result is no longer kept — the sequence is older than the recent window,
   * the stamp's epoch is not the current one and the stamp is out of the
   * window, or its result was dropped to keep the record within its byte
   * budget — `resultAvailable` is false and `result` undefined.
   */
  | { status: 'duplicate'; result: R | undefined; resultAvailable: boolean };

/**
 * `details` of the FencedError of a stamp whose epoch is no longer current.
 * `applied: false` — this stamp was never applied, and now never will be;
 * `applied: 'unknown'` — it will not be applied now, but whether it was
 * applied before can no longer be told (its producer was retired since, or
 * its epoch is more than EPOCHS_KEPT epochs back on this partition).
 * (A stamp that was applied is never fenced: it is a duplicate.)
 */
export interface FencedDetails extends StampDetails {
  currentEpoch?: number;
  applied?: false | 'unknown';
}

export interface ExactlyOnceOptions {
  /** Key prefix of the exactly-once state (default `_eo/`). Producers and consumers must agree. */
  prefix?: string;
}
