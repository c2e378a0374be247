import { AsyncQueue, BackendError, HistoryGoneError, keyFilter, roomIn, sleep, type WatchEvent, type WatchOptions } from '../core/index.js';
import type { StoreKeys } from './keys.js';
import { mapRedisError } from './records.js';
import type { Reply, ScriptRunner } from './runner.js';
import { SCRIPTS } from './scripts.js';
import { compareIds, type StreamWaker } from './waker.js';

/** The largest stream id sequence: `<rev>-MAX_SEQ` sorts after every entry of revision `rev`. */
export const MAX_SEQ = '18446744073709551615';
const WATCH_PAGE = 1000;
/**
 * How far before the moment watch() was called a watch "from now" reaches
 * back, beyond the measured round trip of its start: the server clock's
 * rounding to ms and a step of the server's clock by up to this much between
 * watch() and its start cannot make it miss a write. The price: a write by
 * another process that began up to this long (plus the start's round trip)
 * before watch() was called may be delivered too.
 */
export const START_CLOCK_MARGIN_MS = 250;
/**
 * The tight bound of a watch "from now" (see startFromNow): what may be
 * trimmed from the change log is judged against the moment watch() was
 * called less this much, plus 1 ms per second of the start's round trip —
 * performance.now()'s resolution and the rates of the two clocks (an NTP
 * slew is at most 500 ppm), not a step of the server's clock.
 */
export const START_TRIM_SLACK_MS = 3;

/** What a watch needs of its store. */
export interface ChangeLogAccess {
  /** Where the revisions this store has seen are noted. */
  scripts: ScriptRunner;
  /** Runs a script: the store's run(), which every script of the store goes through. */
  run: ScriptRunner['run'];
  keys: StoreKeys;
  /** Wakes caught-up watches when the change log grows. */
  waker: StreamWaker;
  /** A change-log entry's fields as a watch event. */
  toEvent<T>(fields: Buffer[]): WatchEvent<T>;
  isClosed(): boolean;
  /** The store's running watches, ended by close(). */
  watchers: Set<AsyncQueue<unknown>>;
  /** Page reads in flight, by the position they read after: watches at one position share one read. */
  pageReads: Map<string, Promise<Reply>>;
}

/**
 * The next page after `after`, with the trim floor, in one script. Caught-up
 * watches all sit at the head and wake together: they share the read in
 * flight instead of one each (1,000 idle watches cost every write 1,000
 * script calls, 47 ms of CPU, bench/lib/decisions.md). Sharing a read begun a
 * moment earlier is safe: a later entry wakes the waker again.
 */
function readPage(store: ChangeLogAccess, after: string): Promise<Reply> {
  const shared = store.pageReads.get(after);
  if (shared) return shared;
  const read = store.run(SCRIPTS.changes, [store.keys.meta, store.keys.log], [after, WATCH_PAGE], 'watch', false);
  store.pageReads.set(after, read);
  const forget = () => {
    if (store.pageReads.get(after) === read) store.pageReads.delete(after);
  };
  read.then(forget, forget);
  return read;
}

/**
 * Follows the store's change-log stream from options.fromRevision, or "from
 * now": watch() was called at `startedAt` (performance.now()) when the store
 * had seen revision `known` (see startFromNow).
 */
export function followChangeLog<T>(store: ChangeLogAccess, options: WatchOptions, startedAt: number, known: number): AsyncIterable<WatchEvent<T>> {
  const matches = keyFilter(options);
  const queue = new AsyncQueue<WatchEvent<T>>(options.signal);
  const closing = new AbortController();
  store.watchers.add(queue as AsyncQueue<unknown>);
  queue.onClose(() => {
    store.watchers.delete(queue as AsyncQueue<unknown>);
    closing.abort();
  });
  // The events of the newest revision of a full page wait for the rest of their commit: a commit's
  // writes are pushed together, and none of them if its rest was trimmed before it was read.
  let held: WatchEvent<T>[] = [];
  let heldRevision = -1;
  const release = () => {
    for (const event of held) queue.push(event);
    held = [];
  };
  const follow = async () => {
    // undefined: "from now", until startFromNow has fixed the start (and read the first page).
    let after = options.fromRevision === undefined ? undefined : `${options.fromRevision}-${MAX_SEQ}`;
    let backoff = 0;
    while (!queue.closed && !store.isClosed()) {
      // A consumer with a full backlog waiting: read on from `after` once it has caught up (a trimmed log is HistoryGoneError then).
      const room = roomIn(queue);
      if (room) {
        await room;
        continue;
      }
      try {
        let reply: Reply;
        if (after === undefined) {
          reply = await startFromNow(store, startedAt, known);
          after = `${reply[4] as number}-${MAX_SEQ}`;
        } else {
          reply = await readPage(store, after);
        }
        const [revision, seq] = after.split('-') as [string, string];
        // Revisions at or below `trimmed` may be gone from the log; the page and the floor were read in one step.
        const needed = seq === MAX_SEQ ? Number(revision) + 1 : Number(revision);
        if ((reply[1] as number) >= needed) throw new HistoryGoneError(needed - 1, (reply[1] as number) + 1);
        const page = reply[3] as Array<[Buffer, Buffer[]]>;
        for (const [id, fields] of page) {
          after = id.toString();
          // The id is `<revision>-<n>`; only the changes this watch delivers are unpacked and decoded.
          const entryRevision = store.scripts.saw(Number(after.slice(0, after.indexOf('-'))));
          if (entryRevision !== heldRevision) {
            release();
            heldRevision = entryRevision;
          }
          if (matches((fields[1] as Buffer).toString('utf8'))) held.push(store.toEvent<T>(fields));
        }
        backoff = 0;
        if (page.length === WATCH_PAGE) continue;
        // A short page holds every change up to the head, and a script commits whole: its last commit is complete.
        release();
        if (page.length > 0) after = `${heldRevision}-${MAX_SEQ}`;
        // The waker blocks from the highest position it is given, and everyone below it reads again at once:
        // a position past the log's end (a watch from a revision not written yet) waits at the head instead,
        // or every caught-up watch would read again and again (reply[2]: the head, read with the page).
        const head = `${reply[2] as number}-${MAX_SEQ}`;
        await store.waker.wait(compareIds(after, head) > 0 ? head : after, closing.signal);
      } catch (err) {
        if (queue.closed || store.isClosed()) break;
        const mapped = mapRedisError(err, 'watch', false);
        if (!(BackendError.is(mapped) && mapped.transient)) throw mapped;
        backoff = Math.min(Math.max(backoff * 2, 50), 2000);
        await sleep(backoff);
      }
    }
    queue.end();
  };
  follow().catch((err) => queue.fail(err));
  return queue;
}

/**
 * Fixes the start of a watch "from now" called at `startedAt`
 * (performance.now()) when this store had seen revision `known`; answers
 * the start script's reply (the first page after the start, and the start
 * at [4]). Called again after a transient error, it still reaches back to
 * `startedAt`.
 *
 * The head script runs between `startedAt` and its answer, at server time
 * Ts (ms, rounded down): a write that begins after `startedAt` runs before
 * it by at most the round trip (or after it, above the head), so its entry
 * is stamped `at` = floor(Ts − round trip) or later — rounding down both
 * stamps keeps that exact. The start is the highest revision up to that head
 * written before `at` less START_CLOCK_MARGIN_MS, or `known` if higher; every
 * change after it is delivered. The margin is a courtesy: it covers a step of
 * the server's clock of up to 250 ms, at the price of delivering some writes
 * from just before watch().
 *
 * When that reach-back runs into trimmed history (more revisions than the
 * log keeps were written in the window), the watch starts at the floor — it
 * owes nothing from before watch() — if every trimmed revision was written
 * before watch() was called by the tight bound: the floor is at or below
 * `known` (no clock involved: this store had been told of it), or the
 * newest trimmed entry is stamped before `at` − START_TRIM_SLACK_MS − 1 ms
 * per second of round trip (revisions are drawn in commit order, so the
 * older trimmed ones were written earlier still). Otherwise the log was
 * trimmed past the moment watch() was called: HistoryGoneError.
 *
 * Server clock steps (TIME is the wall clock): a step back between the
 * newest trimmed write and the head script makes the bound lower, so a
 * trimmed write from before watch() may look later — a HistoryGoneError
 * that a steady clock would not have given, never a missed write. A step
 * forward by more than the slack, between a write begun after watch() and
 * the head script, makes that write's stamp look older than it is: were it
 * also trimmed before the start ran (more revisions than the log keeps
 * written within the start's round trip), the start at the floor would skip
 * it. Only that coincidence — a forward step and a log overrun inside the
 * start's round trip — escapes the bound; the margin keeps covering steps
 * wherever the window still lies in the log.
 */
async function startFromNow(store: ChangeLogAccess, startedAt: number, known: number): Promise<Reply> {
  const { scripts, keys } = store;
  const head = await store.run(SCRIPTS.head, [keys.meta], [], 'watch start', false);
  const roundTrip = performance.now() - startedAt;
  const headRevision = scripts.saw(Number(head[1]));
  const at = Math.floor(Number(head[2]) - roundTrip);
  const slack = START_TRIM_SLACK_MS + Math.ceil(roundTrip / 1000);
  const since = at - START_CLOCK_MARGIN_MS;
  const before = at - slack;
  const reply = await store.run(SCRIPTS.start, [keys.meta, keys.log], [headRevision, known, since, before, WATCH_PAGE], 'watch start', false);
  if (reply[0] === 'GONE') {
    const trimmed = Number(reply[1]);
    const trimmedAt = Number(reply[2]);
    const err = new HistoryGoneError(trimmed, trimmed + 1);
    const when = trimmedAt < 0
      ? `it carries no time (it was trimmed by an older version) and is above revision ${known}, the newest this store had seen then`
      : trimmedAt >= at
        ? `it was written ${trimmedAt - at} ms after that moment by the server's clock`
        : `it was written ${at - trimmedAt} ms before that moment by the server's clock, within the ${slack} ms allowed for clock rates and rounding: it may have been written after`;
    err.message = `a watch "from now" cannot fix its start: the change log was trimmed past the moment watch() was called — `
      + `its newest trimmed revision is ${trimmed} and ${when}; more revisions than the log keeps were written between watch() and `
      + `the start, ${Math.round(roundTrip)} ms later. The oldest kept revision is ${trimmed + 1}`;
    throw err;
  }
  return reply;
}
