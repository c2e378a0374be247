/**
 * A key a session keeps alive: a lock key, a waiter's place in the queue or
 * the session's own key. The holder's view errs on the safe side: `signal`
 * aborts once no write has succeeded for `ttlMs - marginMs`, counted on the
 * monotonic clock from when the last successful write was *sent* — before
 * the store, whose clock starts the lease no earlier, lets anyone else in.
 */
import { performance } from 'node:perf_hooks';
import { ConflictError, LockLostError, deepEqual, isAmbiguous, type Entry, type Store } from '../core/index.js';
import { MAX_TIMER_MS, sleep } from '../core/waiting.js';
import { stampOf, type Stamp } from './names.js';

export interface Lease {
  ttlMs: number;
  marginMs: number;
}

export class Hold {
  revision: number;
  readonly createdRevision: number;
  stamp: Stamp;
  /** What this holder last saw stored under the key: the condition of its next rewrite. */
  private stored: unknown;
  released = false;
  private readonly controller = new AbortController();
  readonly signal: AbortSignal = this.controller.signal;
  private deadline: NodeJS.Timeout | undefined;

  constructor(
    readonly store: Store,
    readonly key: string,
    readonly name: string,
    entry: Entry,
    stamp: Stamp,
    readonly lease: Lease,
    sentAt: number,
  ) {
    this.revision = entry.revision;
    this.createdRevision = entry.createdRevision;
    this.stamp = stamp;
    this.stored = entry.value;
    this.succeeded(sentAt);
  }

  get lost(): boolean {
    this.checkDeadline();
    return this.signal.aborted;
  }

  /**
   * The deadline is a timer, and timers run late after a pause (GC, SIGSTOP):
   * whoever asks first after one sees the loss at once, not after the timers.
   */
  checkDeadline(): void {
    if (!this.signal.aborted && this.okSince > 0 && performance.now() >= this.okSince + this.lease.ttlMs - this.lease.marginMs) {
      this.lose(`no keepalive succeeded within ${this.lease.ttlMs - this.lease.marginMs} ms`);
    }
  }

  lose(why: string, cause?: unknown): LockLostError {
    const err = new LockLostError(`lock ${JSON.stringify(this.name)} (fence ${this.createdRevision}) lost: ${why}`, { name: this.name, key: this.key, fence: this.createdRevision }, cause === undefined ? undefined : { cause });
    if (!this.signal.aborted) {
      clearTimeout(this.deadline);
      this.controller.abort(err);
    }
    return (this.signal.reason as LockLostError | undefined) ?? err;
  }

  lostError(): LockLostError {
    return this.signal.aborted ? (this.signal.reason as LockLostError) : this.lose('released');
  }

  /** The store still has this incarnation of the key, written by this holder. */
  isMine(entry: Entry | null): entry is Entry {
    return entry !== null && entry.createdRevision === this.createdRevision && stampOf(entry.value)?.token === this.stamp.token;
  }

  /**
   * Rewrites the key (same incarnation, fresh TTL): a keepalive with the
   * current value, or a leader's proclaim of a new one. The condition is the
   * value this holder last saw stored there (`ifValue`, which only a live key
   * meets): a write never brings back a key that expired in the store, so no
   * one ever sees this holder's value after its lease ran out there. Writes of
   * one key are not serialised (a fenced commit must not queue behind a
   * keepalive stuck on a slow store); they settle races by reading the key
   * back: still this incarnation → go on from there; anything else → lost.
   */
  async write(next?: Stamp): Promise<void> {
    if (this.lost) throw this.lostError();
    const sentAt = performance.now();
    for (let attempt = 0; ; attempt++) {
      const before = this.revision;
      const stamp = next ?? this.stamp;
      try {
        const entry = await this.store.put(this.key, stamp, { ifValue: this.stored, ttlMs: this.lease.ttlMs, writer: stamp.token });
        if (entry.createdRevision !== this.createdRevision) throw this.lose('the key was re-created by another writer with this holder\'s value');
        this.advance(entry.revision);
        this.stored = stamp;
        if (next) this.stamp = next;
        this.succeeded(sentAt);
        return;
      } catch (err) {
        if (!ConflictError.is(err) && !isAmbiguous(err)) throw err;
        if (this.lost) throw this.lostError();
        const current = await this.store.get(this.key);
        if (!this.isMine(current)) throw this.lose(this.released ? 'released' : 'another holder took the key, or it expired', err);
        this.advance(current.revision);
        this.stored = current.value;
        if (current.revision !== before && deepEqual(current.value, stamp)) {
          // It landed (ours, or another write of ours with the same value), but which send landed is unknown:
          // no lease credit, which could date from a later send than the one that landed.
          if (next) this.stamp = next;
          return;
        }
        // A keepalive that lost the race to a proclaim stops: writing again would put back the old value.
        if (!next && current.revision !== before) return;
        if (attempt >= 8) throw err;
      }
    }
  }

  /** Revisions of one key only grow: an answer that arrives late must not move it back. */
  advance(revision: number): void {
    if (revision > this.revision) this.revision = revision;
  }

  /**
   * Deletes the key if it is still this incarnation. Gives up waiting for an
   * unreachable store once the lease has run out anyway (the store expires
   * the key then, by its own clock).
   */
  async remove(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.lose('released');
    let timer: NodeJS.Timeout | undefined;
    const leaseOver = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.min(Math.max(0, this.expiresBy() - performance.now()), MAX_TIMER_MS));
      timer.unref();
    });
    await Promise.race([this.deleteOwnKey(), leaseOver]);
    clearTimeout(timer);
  }

  private async deleteOwnKey(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.store.delete(this.key, { ifRevision: this.revision, writer: this.stamp.token });
        return;
      } catch (err) {
        if (ConflictError.is(err) || isAmbiguous(err)) {
          const current = await this.store.get(this.key).catch(() => undefined);
          if (current !== undefined) {
            if (!this.isMine(current)) return;
            this.advance(current.revision);
            continue;
          }
        }
        if (performance.now() >= this.expiresBy()) return;
        await sleep(Math.min(50 * 2 ** attempt, 1000));
      }
    }
  }

  private okSince = 0;

  /** When the store may let the next holder in, at the earliest, by this holder's clock. */
  expiresBy(): number {
    return this.okSince + this.lease.ttlMs;
  }

  private succeeded(sentAt: number): void {
    if (this.signal.aborted) return;
    this.okSince = Math.max(this.okSince, sentAt);
    clearTimeout(this.deadline);
    const wait = this.okSince + this.lease.ttlMs - this.lease.marginMs - performance.now();
    this.deadline = setTimeout(() => this.lose(`no keepalive succeeded within ${this.lease.ttlMs - this.lease.marginMs} ms`), Math.min(Math.max(0, wait), MAX_TIMER_MS));
    this.deadline.unref();
  }
}
