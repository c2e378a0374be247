/**
 * Taking a lock key, in arrival order, by watching rather than polling.
 *
 * A caller that finds nobody queued and the lock free creates the lock key
 * at once. Otherwise it queues: it creates a waiter key (kept alive by its
 * session), whose createdRevision is its place in line. It may try to
 * create the lock key only when no live waiter is ahead of it; otherwise it
 * waits for the one directly ahead to go (like etcd's mutex, which waits on
 * its predecessor), and when first in line, for the lock key to go. Going
 * means a delete event (release, or the store's expiry sweep) or, since a
 * store may expire a key without telling, no keepalive seen for the key's
 * lease. Safety never rests on the queue: the lock key is created with
 * `ifAbsent`, so at most one caller holds each incarnation.
 *
 * A create whose acknowledgement was lost is settled by the writer token in
 * the key's value: the same create is sent again (it can only succeed if
 * the first did not land), and a conflict is read back — our token means
 * we hold it. So a caller never ends up with two keys, and never walks away
 * from a key it created.
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import {
  AbortedError, ConflictError, HistoryGoneError, LockTimeoutError, RevkitError, isAmbiguous, isTombstone,
  type Entry, type Store, type StoredRecord, type WatchEvent,
} from '../core/index.js';
import { MAX_TIMER_MS, sleep } from '../core/waiting.js';
import { Hold, type Lease } from './hold.js';
import { stampOf, type LockKeys, type Stamp } from './names.js';

export interface AcquireContext {
  store: Store;
  lease: Lease;
  sessionId: string;
  /** Aborts when the session is lost or closed. */
  sessionSignal: AbortSignal;
  /** Registers a hold with the session's keepalive; returns its unregister. */
  keepAlive(hold: Hold): () => void;
  /** A waiter slot of this session for the lock `name`, not used by another of its acquires now. */
  claimSlot(name: string): number;
  /** Cleanup that outlives the call: the session's close() waits for it. */
  background(work: Promise<unknown>): void;
  freeSlot(name: string, slot: number): void;
}

export interface AcquireOptions {
  signal?: AbortSignal;
  /** Give up (LockTimeoutError) when the lock is still held by others after this many ms of waiting; 0: only if free now. */
  waitMs?: number;
}

/** How long past a key's lease a waiter waits, unwoken, before it looks again itself. */
const LOOK_AGAIN_SLACK_MS = 100;

export async function acquire(ctx: AcquireContext, keys: LockKeys, value: unknown, options: AcquireOptions = {}): Promise<Hold> {
  const stop = new AbortController();
  const onAbort = (reason: unknown) => stop.abort(reason);
  const stopWith = (signal: AbortSignal | undefined) => {
    if (!signal) return () => undefined;
    if (signal.aborted) onAbort(signal.reason);
    const listener = () => onAbort(signal.reason);
    signal.addEventListener('abort', listener, { once: true });
    return () => signal.removeEventListener('abort', listener);
  };
  const unlisten = [stopWith(options.signal), stopWith(ctx.sessionSignal)];
  const token = randomBytes(16).toString('hex');
  const stamp: Stamp = { revkitLock: 1, session: ctx.sessionId, token, ttlMs: ctx.lease.ttlMs, ...(value === undefined ? {} : { value }) };
  const waitUntil = options.waitMs === undefined ? Infinity : performance.now() + options.waitMs;
  const queue = new Queue(ctx, keys, stamp, stop.signal, waitUntil, options.waitMs ?? 0);
  let acquired: Hold | undefined;
  try {
    acquired = await queue.run();
    return acquired;
  } catch (err) {
    throw stop.signal.aborted ? reasonOf(stop.signal.reason) : err;
  } finally {
    for (const off of unlisten) off();
    stop.abort();
    // In the background (session.close() waits for it): a caller that gives up is answered at once, even while a store call hangs.
    ctx.background(queue.leave(acquired).catch(() => undefined));
  }
}

function reasonOf(reason: unknown): Error {
  return RevkitError.is(reason) ? reason : new AbortedError(reason);
}

interface Seen {
  revision: number;
  deleted: boolean;
  createdRevision?: number;
  at: number;
}

class Queue {
  private waiter: Hold | undefined;
  private unregister: (() => void) | undefined;
  /** The newest event seen for each key of this lock, since the watch began. */
  private readonly seen = new Map<string, Seen>();
  private wake: (() => void) | undefined;
  private watchFrom = 0;
  private watching: Promise<void> | undefined;
  private watchStop: AbortController | undefined;
  private watchFailed = false;
  /** Waiter slots this acquire claimed from its session (more than one only when someone else wrote at one). */
  private readonly slots: number[] = [];

  constructor(
    private readonly ctx: AcquireContext,
    private readonly keys: LockKeys,
    private readonly stamp: Stamp,
    private readonly stop: AbortSignal,
    /** waitMs bounds the waiting for others, never a store call: a free lock is taken even with waitMs 0. */
    private readonly waitUntil: number,
    private readonly waitMs: number,
  ) {}

  async run(): Promise<Hold> {
    // Nobody queued and the lock free: take it without queueing (one write). Arrival is this look.
    const first = await this.look();
    if (first.ahead === undefined && first.holder === null) {
      const taken = await this.take(first.record);
      if (taken) return taken;
    }
    for (;;) {
      this.checkStop();
      if (performance.now() >= this.waitUntil && this.waitMs === 0) throw this.timeout();
      if (!this.waiter || this.waiter.lost) await this.enqueue();
      const { ahead, holder, record } = await this.look();
      if (holder && stampOf(holder.value)?.token === this.stamp.token) return this.held(holder, performance.now());
      if (ahead === undefined && holder === null) {
        const taken = await this.take(record);
        if (taken) return taken;
        continue;
      }
      if (performance.now() >= this.waitUntil) throw this.timeout();
      // Only now, with someone to wait for: from the waiter key's revision it misses nothing since.
      if (!this.watching || this.watchFailed) await this.startWatch();
      await this.waitFor(ahead ?? holder!);
    }
  }

  private timeout(): LockTimeoutError {
    return new LockTimeoutError({ name: this.keys.name, key: this.keys.key, waitMs: this.waitMs });
  }

  private checkStop(): void {
    if (this.stop.aborted) throw this.stop.reason;
  }

  private async until<R>(call: Promise<R>): Promise<R> {
    this.checkStop();
    return new Promise<R>((resolve, reject) => {
      const onStop = () => reject(this.stop.reason);
      this.stop.addEventListener('abort', onStop, { once: true });
      call.then(resolve, reject).finally(() => this.stop.removeEventListener('abort', onStop));
    });
  }

  /**
   * Queues under the session's own waiter key for this lock (a slot, so
   * keys are reused and the queue does not fill with tombstones). A key
   * left there by an earlier acquire of this session (a create that landed
   * after it gave up) is ours to clear.
   */
  private async enqueue(): Promise<void> {
    this.unregister?.();
    if (this.slots.length === 0) this.slots.push(this.ctx.claimSlot(this.keys.name));
    const key = `${this.keys.queuePrefix}${this.ctx.sessionId}-${this.slots.at(-1)}`;
    for (let attempt = 0; ; attempt++) {
      const sentAt = performance.now();
      const entry = await this.until(this.track(key, createOnce(this.ctx.store, key, this.stamp, this.ctx.lease.ttlMs)));
      if (entry) {
        this.waiter = new Hold(this.ctx.store, key, this.keys.name, entry, this.stamp, this.ctx.lease, sentAt);
        this.unregister = this.ctx.keepAlive(this.waiter);
        if (this.watchFrom === 0) this.watchFrom = entry.revision;
        return;
      }
      const stale = await this.until(this.ctx.store.get(key));
      if (stale && stampOf(stale.value)?.session === this.ctx.sessionId && attempt < 5) {
        await this.until(this.ctx.store.delete(key, { ifRevision: stale.revision }).catch(() => null));
      } else if (stale) {
        // Someone else's value at this session's slot: take another slot.
        this.slots.push(this.ctx.claimSlot(this.keys.name));
        return this.enqueue();
      }
    }
  }

  /** The live waiters ahead of this one (the nearest), and the lock key: its holder, and its record for a create. */
  private async look(): Promise<{ ahead: Entry | undefined; holder: Entry | null; record: StoredRecord | null }> {
    const [waiters, record] = await this.until(Promise.all([this.listQueue(), this.ctx.store.getRecord(this.keys.key)]));
    const holder = record !== null && !isTombstone(record) ? record : null;
    const mine = this.waiter;
    const holderToken = holder ? stampOf(holder.value)?.token : undefined;
    let ahead: Entry | undefined;
    for (const w of waiters) {
      // A value that is not a waiter's (someone else's junk under the queue) holds nobody up.
      const token = stampOf(w.value)?.token;
      if (w.key === mine?.key || token === undefined || token === holderToken) continue;
      // Not queued yet: anyone queued is ahead.
      if ((!mine || w.createdRevision < mine.createdRevision) && (!ahead || w.createdRevision > ahead.createdRevision)) ahead = w;
    }
    return { ahead, holder, record };
  }

  private async listQueue(): Promise<Entry[]> {
    const all: Entry[] = [];
    let after: string | undefined;
    do {
      const page = await this.ctx.store.list({ prefix: this.keys.queuePrefix, limit: 1000, ...(after === undefined ? {} : { after }) });
      all.push(...page.entries);
      after = page.cursor;
    } while (after !== undefined);
    return all;
  }

  /** Creates the lock key; null when someone else holds it. */
  private async take(record: StoredRecord | null): Promise<Hold | null> {
    const sentAt = performance.now();
    const entry = await this.until(this.track(this.keys.key, createOnce(this.ctx.store, this.keys.key, this.stamp, this.ctx.lease.ttlMs, record)));
    if (!entry) return null;
    this.taken = this.held(entry, sentAt);
    return this.taken;
  }

  /**
   * A create still on its way when the caller stops waiting (abort, waitMs,
   * session lost) may land afterwards: leave() waits for it and deletes what
   * it made, so no key is left held by nobody until its lease runs out.
   */
  private inFlight: Array<{ key: string; done: Promise<Entry | null> }> = [];
  private taken: Hold | undefined;

  private track(key: string, create: Promise<Entry | null>): Promise<Entry | null> {
    this.inFlight.push({ key, done: create });
    return create;
  }

  /** The lock is ours: kept alive from this moment, not once the queue is cleaned up. */
  private held(entry: Entry, sentAt: number): Hold {
    const hold = new Hold(this.ctx.store, this.keys.key, this.keys.name, entry, this.stamp, this.ctx.lease, sentAt);
    this.ctx.keepAlive(hold);
    return hold;
  }

  /** Waits until `entry` (the waiter ahead, or the holder) is gone, or has shown no sign of life for its lease. */
  private async waitFor(entry: Entry): Promise<void> {
    const leaseMs = stampOf(entry.value)?.ttlMs ?? this.ctx.lease.ttlMs;
    let aliveAt = performance.now();
    for (;;) {
      this.checkStop();
      const seen = this.seen.get(entry.key);
      if (seen && seen.revision > entry.revision) {
        if (seen.deleted || seen.createdRevision !== entry.createdRevision) return;
        aliveAt = Math.max(aliveAt, seen.at);
      }
      if (this.watchFailed) return;
      const quietFor = Math.min(aliveAt + leaseMs + LOOK_AGAIN_SLACK_MS, this.waitUntil) - performance.now();
      if (quietFor <= 0) return;
      // Past setTimeout's range (a lease of weeks, a waitMs of years): wake early and go round again.
      const napMs = Math.min(quietFor, MAX_TIMER_MS);
      await new Promise<void>((resolve) => {
        const stop = this.stop;
        const timer = setTimeout(done, napMs);
        stop.addEventListener('abort', done, { once: true });
        this.wake = done;
        function done() {
          clearTimeout(timer);
          stop.removeEventListener('abort', done);
          resolve();
        }
      });
      this.wake = undefined;
    }
  }

  private async startWatch(): Promise<void> {
    this.watchStop?.abort();
    if (this.watchFailed) {
      this.watchFailed = false;
      this.watchFrom = this.ctx.store.headRevision ? await this.until(this.ctx.store.headRevision()) : this.watchFrom;
    }
    const stop = (this.watchStop = new AbortController());
    const onStop = () => stop.abort();
    this.stop.addEventListener('abort', onStop, { once: true });
    const watch = this.ctx.store.watch({ prefix: this.keys.key, fromRevision: this.watchFrom, signal: stop.signal });
    this.watching = (async () => {
      try {
        for await (const event of watch) this.note(event);
      } catch (err) {
        if (!stop.signal.aborted) {
          this.watchFailed = true;
          if (!HistoryGoneError.is(err)) await sleep(100);
        }
      } finally {
        this.stop.removeEventListener('abort', onStop);
        this.wake?.();
      }
    })();
  }

  private note(event: WatchEvent): void {
    if (event.key !== this.keys.key && !event.key.startsWith(this.keys.queuePrefix)) return;
    this.watchFrom = Math.max(this.watchFrom, event.revision);
    const created = event.type === 'put' ? event.entry.createdRevision : undefined;
    this.seen.set(event.key, { revision: event.revision, deleted: event.type === 'delete', ...(created === undefined ? {} : { createdRevision: created }), at: performance.now() });
    this.wake?.();
  }

  /** Takes this caller out of the queue: its waiter key deleted, its watch stopped. */
  async leave(acquired: Hold | undefined): Promise<void> {
    this.watchStop?.abort();
    this.unregister?.();
    const cleanups: Array<Promise<unknown>> = [this.watching ?? Promise.resolve()];
    // Whatever a create left that is neither the lock acquired nor the waiter key below — answered, failed or
    // still on its way — is deleted once that create has settled, if it holds this caller's token.
    for (const { key, done } of this.inFlight) {
      if (key === acquired?.key) continue;
      // A create that never answers is waited for one lease at most: what it left has expired by then.
      const settled = Promise.race([done.catch(() => null), napFor(this.ctx.lease.ttlMs)]);
      cleanups.push(settled.then(() => retire(this.ctx.store, key, this.stamp.token, this.ctx.lease.ttlMs)));
    }
    if (this.waiter) cleanups.push(this.waiter.remove().catch(() => undefined));
    if (this.taken && this.taken !== acquired) cleanups.push(this.taken.remove().catch(() => undefined));
    await Promise.all(cleanups);
    for (const slot of this.slots) this.ctx.freeSlot(this.keys.name, slot);
  }

}

/**
 * Creates `key` with `stamp` where nothing live is, conditioned on the
 * revision read just before (`ifRevision`; 0 when never written), not on
 * `ifAbsent`: a create cut off on its way can then never land after
 * anything else was written there — a plain `ifAbsent` could, after a
 * release, and bring back a lock nobody holds. After a lost acknowledgement
 * the same create is sent again (only one of the two can land) and a
 * conflict is read back: our token means it is ours. Returns the entry when
 * the key is ours, null when someone else's live value is there.
 * `known`: the key's record, when the caller has just read it.
 */
export async function createOnce(store: Store, key: string, stamp: Stamp, ttlMs: number, known?: StoredRecord | null): Promise<Entry | null> {
  let record = known;
  for (let attempt = 0; attempt < 50; attempt++) {
    if (record === undefined) record = await store.getRecord(key);
    if (record !== null && !isTombstone(record)) return stampOf(record.value)?.token === stamp.token ? record : null;
    const ifRevision = record?.revision ?? 0;
    record = undefined;
    for (let sends = 0; ; sends++) {
      try {
        return await store.put(key, stamp, { ifRevision, ttlMs, writer: stamp.token });
      } catch (err) {
        if (isAmbiguous(err) && sends < 20) continue;
        if (ConflictError.is(err)) break;
        if (!isTransient(err) || attempt >= 5) throw err;
        await sleep(20 * 2 ** attempt);
        break;
      }
    }
  }
  throw new ConflictError([{ key, expected: 'absent', actual: null }]);
}

/**
 * Deletes `key` if it holds `token`'s value: what a create of a caller that
 * gave up may have left. Runs in the background, retrying a failing store
 * until the key's lease is over (the store expires it then).
 */
export async function retire(store: Store, key: string, token: string, ttlMs: number): Promise<void> {
  const giveUpAt = performance.now() + ttlMs;
  for (let attempt = 0; performance.now() < giveUpAt; attempt++) {
    try {
      const current = await store.get(key);
      if (!current || stampOf(current.value)?.token !== token) return;
      await store.delete(key, { ifRevision: current.revision });
      return;
    } catch {
      await sleep(Math.min(50 * 2 ** attempt, 1000));
    }
  }
}

function napFor(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.min(ms, MAX_TIMER_MS)).unref());
}

/** An error that says it may pass (transient: true, as on a BackendError). */
export function isTransient(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { transient?: unknown }).transient === true;
}
