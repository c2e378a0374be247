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
}

export interface RecentResult {
  epoch: number;
  sequence: number;
  payloadHash: string;
  result: unknown;
  /** Token of the process() attempt that committed it: after a lost acknowledgement, that caller recognises its own commit. */
  commit?: string;
}

/** Dedup record of one (producerId, partition), written in the same atomic commit as the handler's effects. */
export interface DedupRecord {
  /** Epoch of the last applied stamp. */
  epoch: number;
  lastSequence: number;
  /** The last `window` applied stamps, oldest first. */
  recent: RecentResult[];
}

export type Outcome<R> =
  | { status: 'applied'; result: R; revision: number }
  /**
   * Applied before. `result` is the cached one; when the sequence is older
   * than the recent window, the result (and the payload check) is no longer
   * available: `resultAvailable` is false and `result` undefined.
   */
  | { status: 'duplicate'; result: R | undefined; resultAvailable: boolean };

export interface ExactlyOnceOptions {
  /** Key prefix of the exactly-once state (default `_eo/`). Producers and consumers must agree. */
  prefix?: string;
}
