// What a run records of its watch() calls (check/watch-workload.ts writes it, watch.ts holds it to the guarantees).
export type WatchMode = 'now' | 'from' | 'resume';
/** Where the revision of a `from` segment came from: a write's result, a read, or an earlier event. */
export type ToldKind = 'commit' | 'read' | 'event';
export type WatchEndKind = 'stopped' | 'cut' | 'drained' | 'gone' | 'error' | 'stalled' | 'ended';

export interface WatchFilter {
  key?: string;
  prefix?: string;
}

export interface RecordedWatchEvent {
  key: string;
  revision: number;
  type: 'put' | 'delete';
  value?: unknown;
}

export interface WatchSegment {
  id: string;
  /** The watcher (one loop of one worker) that ran it; a resume continues its watcher's previous segment. */
  watcher: string;
  mode: WatchMode;
  filter: WatchFilter;
  /** `from` and `resume`: the revision given as fromRevision. */
  fromRevision?: number;
  told?: ToldKind;
  /** `resume`: the segment it continues. */
  resumes?: string;
  /** Monotonic clock (µs, the history's clock) read right after watch() returned. */
  returned: number;
  events: RecordedWatchEvent[];
  /**
   * How it ended. Absent: the process running it was killed. `cut`, `stopped`
   * and `drained` end at a commit boundary (the watcher stops only when an
   * event of a new revision arrives, which it leaves undelivered, or after a
   * single-key sentinel).
   */
  end?: { how: WatchEndKind; code?: string; transient?: boolean };
}
