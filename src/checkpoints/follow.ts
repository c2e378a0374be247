import { AbortedError, BackendError, InvalidArgumentError, OutcomeUnknownError, RevkitError, UnsupportedError, assertOptions, assertPrefix, assertSignal, assertStore, lossIn, type Store, type WatchEvent } from '../core/index.js';
import type { Checkpoints, Cursor } from './checkpoints.js';

export interface FollowOptions {
  /** The keys to consume: every change under this prefix. */
  prefix: string;
  /** Where the cursor of this consumer lives. */
  checkpoint: { checkpoints: Checkpoints; key: string };
}

export interface FollowContext {
  signal: AbortSignal;
}

export type FollowHandler<T> = (event: WatchEvent<T>, context: FollowContext) => unknown;

/**
 * The resuming consumer (src/checkpoints/README.md): watches `prefix` from the stored
 * cursor, calls `handler` for each change and advances the cursor after the
 * handler returned. A crash at any point resumes with no gap; events handled
 * but not yet recorded are handled again (at-least-once).
 *
 * The cursor's sequence is a store revision and its eventId the key of the
 * first event of that revision that was handled. An atomic commit gives
 * several keys one revision, so `{ sequence: R, eventId: k }` means "every
 * revision before R, and the change of k in R": a restart watches from R - 1
 * and skips only k's change in R. That relies on watch() delivering changes
 * in revision order, which every backend does; an event with an older
 * revision than one already seen stops the consumer rather than risk a gap.
 *
 * A `reset()` or `delete()` of the cursor wins over a running follow(): each
 * advance is guarded by the revision of the cursor record follow() last read
 * or wrote, and follow() also watches that record. When anyone else writes it,
 * follow() records nothing more from where it was: it lets a running handler
 * finish, reads the cursor again and resumes from it (from the beginning
 * when it was removed), so every event after the new cursor is handled again.
 *
 * Resolves when `signal` aborts; rejects with the handler's error (its event
 * is not recorded, so it comes again on the next follow()), or with the
 * watch's (a `HistoryGoneError` when the store no longer keeps changes back
 * to the cursor).
 */
export async function follow<T = unknown>(
  store: Store, options: FollowOptions, handler: FollowHandler<T>, control: { signal?: AbortSignal } = {},
): Promise<void> {
  assertStore(store, 'follow()');
  assertOptions(control, 'follow()');
  const { signal } = control;
  assertSignal(signal, 'follow()');
  const { prefix, checkpoint } = options ?? ({} as FollowOptions);
  assertPrefix(prefix);
  if (typeof handler !== 'function') throw new InvalidArgumentError('follow() needs a handler function');
  if (!checkpoint || typeof checkpoint.checkpoints?.advanceIfUnmoved !== 'function') throw new InvalidArgumentError('follow() needs { checkpoint: { checkpoints, key } }');
  const { checkpoints, key } = checkpoint;
  const cursorKey = checkpoints.storeKey(key);
  // Advancing the cursor would be a change under the prefix: the consumer would feed itself.
  if (checkpoints.store === store && cursorKey.startsWith(prefix)) {
    throw new InvalidArgumentError(`the checkpoint ${JSON.stringify(cursorKey)} lies under the followed prefix ${JSON.stringify(prefix)}; give the checkpoints a prefix outside it`);
  }

  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  if (signal?.aborted) return;
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    // Each round follows from the cursor as it reads it; a round ends when someone else moved the cursor.
    while (!stop.signal.aborted && (await followRound(store, prefix, checkpoints, key, cursorKey, handler, stop.signal)) === 'moved');
  } catch (err) {
    if (stop.signal.aborted && isAbort(err)) return;
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    stop.abort();
  }
}

/**
 * Follows from the stored cursor until `stop` aborts ('stopped') or someone
 * other than this round writes the cursor ('moved'). Throws what the handler,
 * either watch or the store throws.
 */
async function followRound<T>(
  store: Store, prefix: string, checkpoints: Checkpoints, key: string, cursorKey: string, handler: FollowHandler<T>, stop: AbortSignal,
): Promise<'moved' | 'stopped'> {
  const cursorStore = checkpoints.store;
  // A watch of the cursor from the store's head read before the cursor: no write after that read is missed.
  const head = await headRevision(cursorStore);
  const start = await checkpoints.read(key);
  /** The revision of the cursor's record as this round last read or wrote it: the guard of its advances. */
  let basis = start.revision;
  /** What this round last read or wrote. */
  let recorded = start.cursor;
  /** The highest revision of the cursor record the cursor watch delivered. */
  let seen = 0;
  let writing = false;
  let moved = false;
  let cursorWatchFailure: { error: unknown } | undefined;

  const round = new AbortController();
  const endRound = () => round.abort();
  stop.addEventListener('abort', endRound, { once: true });
  const foreign = () => seen > (basis ?? 0);
  const noticeMove = () => {
    moved = true;
    round.abort();
  };

  // Sees a reset while this round waits for events (an idle prefix), not only at its next advance.
  const watchFrom = head ?? start.revision ?? undefined;
  const cursorWatch = (async () => {
    for await (const event of cursorStore.watch({ key: cursorKey, ...(watchFrom !== undefined ? { fromRevision: watchFrom } : {}), signal: round.signal })) {
      seen = Math.max(seen, event.revision);
      // During this round's own write the event may be that write: judged when the write returns.
      if (!writing && foreign()) return noticeMove();
    }
  })().catch((error) => {
    if (round.signal.aborted && isAbort(error)) return;
    cursorWatchFailure = { error };
    round.abort();
  });

  try {
    const resume = resumePoint(start.cursor);
    let last = resume.fromRevision;
    try {
      for await (const event of store.watch<T>({ prefix, fromRevision: resume.fromRevision, signal: round.signal })) {
        if (moved) return 'moved';
        if (stop.aborted || round.signal.aborted) break;
        if (event.revision < last) {
          throw new BackendError(`the watch delivered revision ${event.revision} after ${last}; follow() needs changes in revision order`, { transient: false });
        }
        last = event.revision;
        if (resume.skip && event.revision === resume.skip.revision && event.key === resume.skip.key) continue;
        await handler(event, { signal: stop });
        // Reset (or deleted) while the handler ran: this event and the rest come again from the new cursor.
        if (moved || foreign()) return 'moved';
        // A later event of the same revision finds the cursor already at it: nothing to write.
        if (recorded !== null && recorded.sequence >= event.revision) continue;
        const next: Cursor = { sequence: event.revision, eventId: event.key };
        writing = true;
        let revision: number | null;
        try {
          // Work the handler finished is recorded even when the signal came meanwhile.
          revision = await checkpoints.advanceIfUnmoved(key, next, basis, stop.aborted ? {} : { signal: stop });
        } finally {
          writing = false;
        }
        if (revision === null) return 'moved';
        basis = revision;
        recorded = next;
        if (foreign()) return 'moved';
        if (stop.aborted) break;
      }
    } catch (err) {
      // The round's own end (a move seen by the cursor watch, or its failure) ends the data watch too.
      if (!(round.signal.aborted && !stop.aborted && isAbort(err))) throw err;
    }
    if (cursorWatchFailure) throw cursorWatchFailure.error;
    if (moved) return 'moved';
    return 'stopped';
  } finally {
    stop.removeEventListener('abort', endRound);
    round.abort();
    await cursorWatch;
  }
}

/**
 * The store's head, where it can name one; undefined otherwise (the cursor
 * watch then starts from the cursor record's revision, where one exists).
 */
async function headRevision(store: Store): Promise<number | undefined> {
  if (typeof store.headRevision !== 'function') return undefined;
  try {
    return await store.headRevision();
  } catch (err) {
    // A store that cannot say, or not now (PostgreSQL waits for older transactions): not worth failing the consumer for.
    if (UnsupportedError.is(err) || (BackendError.is(err) && err.transient)) return undefined;
    throw err;
  }
}

function resumePoint(cursor: Cursor | null): { fromRevision: number; skip?: { revision: number; key: string } } {
  if (cursor === null) return { fromRevision: 0 };
  // Without an event id (a cursor set by reset(), or by hand) the whole revision counts as handled.
  if (cursor.eventId === undefined || cursor.sequence === 0) return { fromRevision: cursor.sequence };
  return { fromRevision: cursor.sequence - 1, skip: { revision: cursor.sequence, key: cursor.eventId } };
}

function isAbort(err: unknown): boolean {
  if (AbortedError.is(err)) return true;
  // A cursor write that may have landed, then stopped in its backoff: at-least-once makes it harmless — unless a loss came with it.
  if (OutcomeUnknownError.is(err)) return !lossIn(err) && isAbort(err.cause);
  if (RevkitError.is(err) && err.code === 'ERR_RETRY_EXHAUSTED') return (err as { reason?: string }).reason === 'aborted';
  return (err as { name?: string })?.name === 'AbortError';
}
