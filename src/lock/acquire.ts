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
  AbortedError, ConflictError, HistoryGoneError, LockTimeoutError, RevkitError, isAmbiguous, type Entry, type Store, type WatchEvent,
} from '../core/index.js';
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
    await queue.leave(acquired);
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
  private slot: number | undefined;

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
      const taken = await this.take();
      if (taken) return taken;
    }
    for (;;) {
      this.checkStop();
      if (performance.now() >= this.waitUntil && this.waitMs === 0) throw this.timeout();
      if (!this.waiter || this.waiter.lost) await this.enqueue();
      const { ahead, holder } = await this.look();
      if (holder && stampOf(holder.value)?.token === this.stamp.token) return this.held(holder, performance.now());
      if (ahead === undefined && holder === null) {
        const taken = await this.take();
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
    this.slot ??= this.ctx.claimSlot(this.keys.name);
    const key = `${this.keys.queuePrefix}${this.ctx.sessionId}-${this.slot}`;
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
      if (stale && (stampOf(stale.value)?.session !== this.ctx.sessionId || attempt >= 5)) throw new Error(`waiter key ${key} is held by another writer`);
      if (stale) await this.until(this.ctx.store.delete(key, { ifRevision: stale.revision }).catch(() => null));
    }
  }

  /** The live waiters ahead of this one (the nearest), and the lock key's holder. */
  private async look(): Promise<{ ahead: Entry | undefined; holder: Entry | null }> {
    const [waiters, holder] = await this.until(Promise.all([this.listQueue(), this.ctx.store.get(this.keys.key)]));
    const mine = this.waiter;
    const holderToken = holder ? stampOf(holder.value)?.token : undefined;
    let ahead: Entry | undefined;
    for (const w of waiters) {
      if (w.key === mine?.key || stampOf(w.value)?.token === holderToken) continue;
      // Not queued yet: anyone queued is ahead.
      if ((!mine || w.createdRevision < mine.createdRevision) && (!ahead || w.createdRevision > ahead.createdRevision)) ahead = w;
    }
    return { ahead, holder };
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
  private async take(): Promise<Hold | null> {
    const sentAt = performance.now();
    const entry = await this.until(this.track(this.keys.key, createOnce(this.ctx.store, this.keys.key, this.stamp, this.ctx.lease.ttlMs)));
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

  private held(entry: Entry, sentAt: number): Hold {
    return new Hold(this.ctx.store, this.keys.key, this.keys.name, entry, this.stamp, this.ctx.lease, sentAt);
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
      await new Promise<void>((resolve) => {
        const stop = this.stop;
        const timer = setTimeout(done, quietFor);
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
          if (!HistoryGoneError.is(err)) await new Promise((resolve) => setTimeout(resolve, 100));
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
    const removals: Array<Promise<unknown>> = [this.watching ?? Promise.resolve()];
    for (const { key, done } of this.inFlight) {
      removals.push(done.then(async (entry) => {
        if (!entry || entry.key === acquired?.key && entry.createdRevision === acquired.createdRevision) return;
        if (entry.key === this.waiter?.key && entry.createdRevision === this.waiter.createdRevision) return;
        await this.ctx.store.delete(key, { ifRevision: entry.revision });
      }).catch(() => undefined));
    }
    if (this.waiter) removals.push(this.waiter.remove().catch(() => undefined));
    if (this.taken && this.taken !== acquired) removals.push(this.taken.remove().catch(() => undefined));
    await Promise.all(removals);
    if (this.slot !== undefined) this.ctx.freeSlot(this.keys.name, this.slot);
  }
}

/**
 * Creates `key` with `stamp` unless something live is there. Returns the
 * entry when the key is ours (created now, or by an earlier attempt whose
 * acknowledgement was lost), null when it is someone else's.
 */
export async function createOnce(store: Store, key: string, stamp: Stamp, ttlMs: number): Promise<Entry | null> {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      return await store.put(key, stamp, { ifAbsent: true, ttlMs, writer: stamp.token });
    } catch (err) {
      if (!ConflictError.is(err) && !isAmbiguous(err)) {
        if (attempt >= 5 || !isTransient(err)) throw err;
        await new Promise((resolve) => setTimeout(resolve, 20 * 2 ** attempt));
        continue;
      }
      if (ConflictError.is(err)) {
        const current = await store.get(key);
        if (current === null) continue;
        return stampOf(current.value)?.token === stamp.token ? current : null;
      }
      // Ambiguous: send the same create again; only one of the two can land.
      if (attempt >= 20) throw err;
    }
  }
  throw new ConflictError([{ key, expected: 'absent', actual: null }]);
}

function isTransient(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { transient?: unknown }).transient === true;
}
