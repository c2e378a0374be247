/**
 * Where a watch "from now" starts on a JetStream stream: one reading of the
 * server's clock (startFromNow), then the search for the last message stored
 * before a threshold on that clock (lastStoredBefore).
 *
 * Every JetStream message carries the time its stream leader stored it, and
 * the leader numbers and stamps messages in one step, so store times rise
 * with the sequence (a step of the server's clock back by less than the
 * margin the caller subtracted aside).
 */
import { createInbox } from '@nats-io/transport-node';
import type { ConsumerConfig, MsgRequest } from '@nats-io/jetstream';
import { BackendError } from '../core/index.js';
import type { BucketClient } from './client.js';
import { versionAtLeast } from './features.js';

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
 * The tight bound of a watch "from now" (see startFromNow below): the
 * sequence below which the watch owes nothing is judged against the server's
 * clock when watch() was called, as bounded by the reading, less this much
 * plus 1 ms per second of the reading's round trip — performance.now()'s
 * resolution and the rates of the two clocks (an NTP slew is at most
 * 500 ppm); not a step of the server's clock, nor the offset between two
 * servers' clocks. The ms rounding of server times needs none (see there).
 */
export const OWED_CLOCK_SLACK_MS = 3;

/**
 * The start of a watch "from now" called at `calledAt` (performance.now())
 * when this store had seen revision `known`:
 *
 * - `base`, where delivery starts: the last sequence of a message stored
 *   before the threshold T (see watch() in watch.ts), and at least `known`
 *   — reaching back START_CLOCK_MARGIN_MS, so that nothing stored after the
 *   call is skipped even if the reading below is off by that much;
 * - `owed` (>= base), what the watch owes every change after: every
 *   sequence up to `owed` was stored before watch() was called. A key's
 *   predecessor that the stream no longer keeps (per-key history) is owed
 *   only when above it: on a hot key the reach-back window can hold more
 *   than `history` writes of one key, all made before the call.
 *
 * Why every sequence up to `owed` was stored before the call. `owed` is
 * `known` (this store had seen it, acknowledged or read, before the call),
 * or the sequence of a message whose store time, in ms, is below
 * Tᵒ = floor(S − elapsed) − OWED_CLOCK_SLACK_MS − elapsed/1000: S is the
 * server's clock read (truncated to ms) at some moment between the call and
 * `elapsed` ms (this process's monotonic clock) after it, so when watch()
 * was called the server's clock read at least S − elapsed; a message
 * stored at or after the call was stamped at least that, and its time
 * truncated to ms is at least floor(S − elapsed) > Tᵒ. The stream leader
 * numbers and stamps messages in one step, so every lower sequence was
 * stored earlier still. The slack covers only the rates of the two clocks
 * and timer resolution. The bound's cost: a write made within those few ms
 * (plus the time the reading's answer took to come back) before the call
 * cannot be told from one made after it, so if the per-key limit removes
 * it before the watch reads it (history 1: the key's next write), the
 * watch fails with HistoryGoneError.
 *
 * Clock steps. A step of the server's clock back between the call and the
 * reading only lowers Tᵒ (more is owed: a predecessor stored before the
 * call may then fail the watch with HistoryGoneError); a step before the
 * call changes nothing. A step forward by d between the call and the reading (or, on a
 * 2.9 cluster, the meta leader's clock ahead of the stream leader's by d),
 * or a step back by d after the reading stamping a message while the
 * search runs, can put messages stored in the first d ms after the call
 * at or below `owed`: if the per-key history limit removed one of those
 * before the watch read it, the watch passes over it without
 * HistoryGoneError (and delivers the key's next kept write). Which
 * messages are delivered, and their order, never depend on `owed`.
 *
 * The clock reading S must come from the clock that stamps the messages:
 * the stream leader's. nats-server 2.10+ puts its clock in the stream info
 * (`ts`), and the stream info is answered by the stream leader. 2.9 has no
 * such field (its StreamInfo has `created`, the stream's creation, and
 * `state.last_ts`, the last message's store time, which can be any time in
 * the past); there S is the `created` time of a probe consumer (deleted
 * at once), set by the server that creates it: on a single server the
 * very clock that stamps messages; in a 2.9 cluster the meta leader's, so
 * START_CLOCK_MARGIN_MS also stands for the offset between the meta
 * leader's and the stream leader's clocks (kept to milliseconds by NTP).
 * The search reads messages with STREAM.MSG.GET, answered by the stream
 * leader (a direct get may be answered by a replica that lags).
 */
export async function startFromNow(client: BucketClient, calledAt: number, known: number): Promise<{ base: number; owed: number }> {
  // On 2.9 the stream info carries no clock: ask for both at once.
  let probe = versionAtLeast(client.features.version, 2, 10) ? undefined : serverClock(client);
  probe?.catch(() => undefined);
  const info = await client.streamInfo();
  const infoAt = performance.now();
  const { first_seq: first, last_seq: last, last_ts: lastTs } = info.state;
  client.seen(last);
  // Every message up to `known` was stored before watch() was called; `last` is at least `known` unless
  // the stream was recreated meanwhile (then its old sequences mean nothing): start at its end.
  if (known >= last) return { base: last, owed: last };
  const infoTs = Date.parse(info.ts ?? '');
  let clock: { serverMs: number; receivedAt: number };
  if (Number.isFinite(infoTs)) {
    clock = { serverMs: infoTs, receivedAt: infoAt };
  } else {
    probe ??= serverClock(client);
    clock = await probe;
  }
  const elapsed = clock.receivedAt - calledAt;
  const atCall = Math.floor(clock.serverMs - elapsed); // the server's clock when watch() was called read at least this
  const owedBefore = atCall - OWED_CLOCK_SLACK_MS - Math.ceil(elapsed / 1000);
  const threshold = Math.min(atCall - START_CLOCK_MARGIN_MS, owedBefore);
  const lastStoredAt = Date.parse(lastTs);
  // The last message is older than the threshold (an idle stream): nothing to walk back over.
  if (lastStoredAt < threshold) return { base: last, owed: last };
  const firstFrom = async (seq: number) => {
    const sm = await client.call(() => client.jsm.streams.getMessage(client.stream, { seq, next_by_subj: '>' } as unknown as MsgRequest), false);
    if (sm === null) return null;
    const storedAtMs = Date.parse(sm.timestamp);
    if (!Number.isFinite(storedAtMs)) throw new BackendError(`message ${sm.seq} of ${client.stream} has no store time`, { transient: false });
    return { seq: sm.seq, storedAtMs };
  };
  // `owed` first, from `known` up (not from the first kept sequence: what stream limits removed
  // may have been stored after the call); then `base` below it, where everything before the
  // first kept sequence may be skipped (it is not there to deliver).
  const owed = lastStoredAt < owedBefore ? last : await lastStoredBefore(firstFrom, owedBefore, known, last);
  const floor = Math.max(known, first - 1, 0);
  const base = await lastStoredBefore(firstFrom, threshold, Math.min(floor, owed), owed + 1);
  return { base, owed };
}

/**
 * One reading of the server's clock (ms): the creation time of a probe consumer, with
 * the moment (performance.now()) its answer arrived. See startFromNow.
 */
async function serverClock(client: BucketClient): Promise<{ serverMs: number; receivedAt: number }> {
  const ci = await client.call(() => client.jsm.consumers.add(client.stream, {
    deliver_subject: createInbox(),
    deliver_policy: 'new' as ConsumerConfig['deliver_policy'],
    ack_policy: 'none' as ConsumerConfig['ack_policy'],
    mem_storage: true,
    num_replicas: 1,
    inactive_threshold: 5_000_000_000,
  }), false);
  const receivedAt = performance.now();
  if (!client.nc.isClosed()) client.jsm.consumers.delete(client.stream, ci.name).catch(() => undefined);
  const serverMs = Date.parse(ci.created);
  if (!Number.isFinite(serverMs)) throw new BackendError(`the server gave no creation time for a consumer (${JSON.stringify(ci.created)})`, { transient: false });
  return { serverMs, receivedAt };
}

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
