/**
 * Where a watch "from now" starts on a JetStream stream: the search for the
 * last message stored before a server-clock threshold.
 *
 * Every JetStream message carries the time its stream leader stored it, and
 * the leader numbers and stamps messages in one step, so store times rise
 * with the sequence (a step of the server's clock back by less than the
 * margin the caller subtracted aside).
 */

/**
 * How far before the moment watch() was called a "from now" start reaches
 * back, beyond the measured round trip of the clock reading: the rounding of
 * server times to ms, a step of the server's clock by up to this much
 * between watch() and the reading, and — on a nats-server 2.9 cluster, where
 * the reading is the meta leader's clock and not the stream leader's — the
 * offset between those two servers' clocks cannot make it miss a write. The
 * price: a write that began up to this long (plus the round trip) before
 * watch() was called may be delivered too.
 */
export const START_CLOCK_MARGIN_MS = 250;

/**
 * The tight bound of a watch "from now" (see startFromNow in index.ts): the
 * sequence below which the watch owes nothing is judged against the server's
 * clock when watch() was called, as bounded by the reading, less this much
 * plus 1 ms per second of the reading's round trip — performance.now()'s
 * resolution and the rates of the two clocks (an NTP slew is at most
 * 500 ppm); not a step of the server's clock, nor the offset between two
 * servers' clocks. The ms rounding of server times needs none (see there).
 */
export const OWED_CLOCK_SLACK_MS = 3;

/** The first message at or after a sequence, as far as the search needs it; null: none. */
export type FirstFrom = (seq: number) => Promise<{ seq: number; storedAtMs: number } | null>;

/**
 * The highest sequence `s` in [lo, hi) such that every message after `s` was
 * stored at or after `threshold` (server ms), given that:
 *
 * - nothing above `lo` needs to be skipped for the answer to be safe: `lo`
 *   is a floor (every message at or below it may be skipped);
 * - the first message at or after `hi` was stored at or after `threshold`
 *   (or there is none).
 *
 * `firstFrom(m)` reads the first message at or after m (`next_by_subj` from
 * m), so messages removed from the stream (per-key history, stream limits)
 * cannot mislead the search: a hole takes the store time of the message
 * after it. Gallops back from `hi` (1, 2, 4, … messages), then bisects:
 * O(log k) reads for k messages stored after the threshold, one read when
 * the message before `hi` is already older.
 */
export async function lastStoredBefore(firstFrom: FirstFrom, threshold: number, lo: number, hi: number): Promise<number> {
  // Invariant: every message at or after hi was stored at or after threshold (the first one
  // was, and store times rise with the sequence). A read at m that finds an older message e
  // (m <= e.seq < hi) raises lo to e.seq — nothing exists in [m, e.seq) —; any other answer
  // (a newer message, or none before hi) lowers hi to m. At hi = lo + 1, every message after
  // lo is at or after hi.
  const older = async (m: number): Promise<number | null> => {
    const e = await firstFrom(m);
    return e !== null && e.seq < hi && e.seq >= m && e.storedAtMs < threshold ? e.seq : null;
  };
  for (let step = 1; hi - lo > 1; step *= 2) {
    const m = Math.max(lo + 1, hi - step);
    const e = await older(m);
    if (e !== null) {
      lo = e;
      break;
    }
    hi = m;
  }
  while (hi - lo > 1) {
    const m = lo + Math.floor((hi - lo) / 2);
    const e = await older(m);
    if (e !== null) lo = e;
    else hi = m;
  }
  return lo;
}
