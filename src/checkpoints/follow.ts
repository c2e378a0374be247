import { AbortedError, BackendError, InvalidArgumentError, RevkitError, assertPrefix, type Store, type WatchEvent } from '../core/index.js';
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
 * Resolves when `signal` aborts; rejects with the handler's error (its event
 * is not recorded, so it comes again on the next follow()), or with the
 * watch's (a `HistoryGoneError` when the store no longer keeps changes back
 * to the cursor).
 */
export async function follow<T = unknown>(
  store: Store, options: FollowOptions, handler: FollowHandler<T>, { signal }: { signal?: AbortSignal } = {},
): Promise<void> {
  const { prefix, checkpoint } = options ?? ({} as FollowOptions);
  assertPrefix(prefix);
  if (typeof handler !== 'function') throw new InvalidArgumentError('follow() needs a handler function');
  if (!checkpoint || typeof checkpoint.checkpoints?.advance !== 'function') throw new InvalidArgumentError('follow() needs { checkpoint: { checkpoints, key } }');
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
    const start = await checkpoints.get(key);
    const resume = resumePoint(start);
    let last = resume.fromRevision;
    for await (const event of store.watch<T>({ prefix, fromRevision: resume.fromRevision, signal: stop.signal })) {
      if (stop.signal.aborted) break;
      if (event.revision < last) {
        throw new BackendError(`the watch delivered revision ${event.revision} after ${last}; follow() needs changes in revision order`, { transient: false });
      }
      last = event.revision;
      if (resume.skip && event.revision === resume.skip.revision && event.key === resume.skip.key) continue;
      await handler(event, { signal: stop.signal });
      // A later event of the same revision finds the cursor already at it: advance() skips the write.
      // Work the handler finished is recorded even when the signal came meanwhile.
      await checkpoints.advance(key, { sequence: event.revision, eventId: event.key }, stop.signal.aborted ? {} : { signal: stop.signal });
      if (stop.signal.aborted) break;
    }
  } catch (err) {
    if (stop.signal.aborted && isAbort(err)) return;
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    stop.abort();
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
  if (RevkitError.is(err) && err.code === 'ERR_RETRY_EXHAUSTED') return (err as { reason?: string }).reason === 'aborted';
  return (err as { name?: string })?.name === 'AbortError';
}
