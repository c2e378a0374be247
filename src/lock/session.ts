/**
 * A session: one client's presence, kept alive in the background. Every
 * lock, leadership and place in a queue it holds is rewritten with a fresh
 * TTL every `keepaliveMs`; `signal` aborts (and every lock of the session
 * is lost) when the session's own key has not been kept alive for
 * `ttlMs - marginMs` by this process's monotonic clock.
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { ConflictError, InvalidArgumentError, LockLostError, assertOptions, assertSignal, assertStore, UnsupportedError, lossIn, type DataLostError, type Store } from '../core/index.js';
import { acquire, createOnce, type AcquireOptions } from './acquire.js';
import { Hold, type Lease } from './hold.js';
import { Leadership, Lock } from './lock.js';
import { reporting } from './reporting.js';
import { DEFAULT_PREFIX, checkedPrefix, lockKeys, sessionKey, type Stamp } from './names.js';

export interface SessionOptions {
  /** How long the store keeps a key of this session after its last keepalive; default 10,000 ms. */
  ttlMs?: number;
  /** Where lock keys live; default 'locks/'. */
  prefix?: string;
  /** How much earlier than `ttlMs` the holder gives up on its own clock; default a fifth of `ttlMs`. */
  marginMs?: number;
  /** How often keys are kept alive; default a third of `ttlMs`. */
  keepaliveMs?: number;
}

export const DEFAULT_TTL_MS = 10_000;
/** Below it a keepalive every ttl/3 races every fenced commit; above a day, timers overflow and nobody would want it. */
export const MIN_TTL_MS = 100;
export const MAX_TTL_MS = 86_400_000;

export async function openSession(store: Store, options: SessionOptions = {}): Promise<Session> {
  assertStore(store, 'openSession()');
  assertOptions(options, 'openSession()');
  const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
  if (!Number.isSafeInteger(ttlMs) || ttlMs < MIN_TTL_MS || ttlMs > MAX_TTL_MS) {
    throw new InvalidArgumentError(`ttlMs must be an integer from ${MIN_TTL_MS} ms to ${MAX_TTL_MS} ms (a day), got ${String(ttlMs)}`);
  }
  const marginMs = options.marginMs ?? Math.ceil(ttlMs / 5);
  if (!Number.isSafeInteger(marginMs) || marginMs < 0 || marginMs >= ttlMs) throw new InvalidArgumentError(`marginMs must be an integer from 0 to below ttlMs (${ttlMs}), got ${String(marginMs)}`);
  const keepaliveMs = options.keepaliveMs ?? Math.floor(ttlMs / 3);
  if (!Number.isSafeInteger(keepaliveMs) || keepaliveMs < 1 || keepaliveMs >= ttlMs - marginMs) {
    throw new InvalidArgumentError(`keepaliveMs must be an integer from 1 to below ttlMs - marginMs (${ttlMs - marginMs}), got ${String(keepaliveMs)}`);
  }
  const prefix = checkedPrefix(options.prefix ?? DEFAULT_PREFIX);
  for (const need of ['ttl', 'watch'] as const) {
    if (!store.capabilities[need]) throw new UnsupportedError('lock', store.backend, `locks need ${need === 'ttl' ? 'keys that expire (ttlMs)' : 'watch'}, which this backend does not offer`);
  }
  const id = randomBytes(12).toString('hex');
  const stamp: Stamp = { revkitLock: 1, session: id, token: id, ttlMs };
  const key = sessionKey(prefix, id);
  const sentAt = performance.now();
  // From its first write on, the session's calls show a reported loss to every session of the store object, and
  // it hears theirs: one met before the Session exists is kept for it (`early`).
  const sink: LossSink = { note: (err) => void (sink.early ??= lossIn(err)), detach: () => undefined };
  const { store: reported, detach } = reporting(store, (err) => sink.note(err));
  sink.detach = detach;
  try {
    const entry = await createOnce(reported, key, stamp, ttlMs);
    if (!entry) {
      // Another writer holds a key named by 12 random bytes: a copied session id or a hostile writer, never ours to take.
      const found = await reported.getRecord(key).catch((err: unknown) => {
        if (lossIn(err)) throw err;
        return null;
      });
      throw new ConflictError([{ key, expected: 'absent', actual: found?.revision ?? null }]);
    }
    const lease = { ttlMs, marginMs };
    return new Session(reported, prefix, id, lease, keepaliveMs, new Hold(reported, key, `session ${id}`, entry, stamp, lease, sentAt), sink);
  } catch (err) {
    detach();
    throw err;
  }
}

/** Where the session's store shows the failures of its calls (set once the session exists). */
interface LossSink {
  note(err: unknown): void;
  /** A loss reported before the Session existed. */
  early?: DataLostError | undefined;
  /** Stops hearing what other sessions on the same store meet (once the session is lost or closed). */
  detach(): void;
}

export class Session {
  /** Aborts when the session is lost (its keepalive failed for too long) or closed. */
  readonly signal: AbortSignal;
  private readonly holds = new Set<Hold>();
  /** Waiter slots in use, per lock name: a session reuses its waiter keys rather than leave a tombstone per acquire. */
  private readonly slots = new Map<string, Set<number>>();
  /** Cleanups of acquires that gave up, still running. */
  private readonly pending = new Set<Promise<unknown>>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private loss: DataLostError | undefined;

  constructor(
    readonly store: Store,
    readonly prefix: string,
    readonly id: string,
    readonly lease: Lease,
    readonly keepaliveMs: number,
    private readonly own: Hold,
    sink: LossSink,
  ) {
    sink.note = this.noteError;
    this.signal = own.signal;
    this.holds.add(own);
    this.timer = setInterval(() => this.keepAliveAll(), keepaliveMs);
    this.timer.unref();
    this.signal.addEventListener('abort', () => {
      // A lost or closed session no longer hears other sessions' reports (its own calls still reach it): nothing keeps it alive.
      sink.detach();
      clearInterval(this.timer);
      for (const hold of this.holds) if (hold !== own) hold.lose('the session was lost or closed', this.signal.reason);
    }, { once: true });
    // A lost hold stays listed until released or closed: close() still deletes its key if it is still ours.
    if (sink.early) this.noteError(sink.early);
  }

  get ttlMs(): number {
    return this.lease.ttlMs;
  }

  /**
   * The loss of acknowledged writes the store reported to any call of this
   * session — a keepalive, a release, a waiter's watch, a cleanup — even one
   * that came after the session was lost or closed for another reason, or
   * one that a call of another open session on the same store object met.
   * On Redis such a report may reach this process once: here it is kept.
   */
  get lossReported(): DataLostError | undefined {
    return this.loss;
  }

  /**
   * A store call of this session failed, heard by a caller or not. A reported
   * loss is kept and loses the session (a store that lost acknowledged writes
   * cannot vouch for any of its locks); anything else is for the caller's own
   * retry.
   */
  private readonly noteError = (err: unknown): void => {
    const loss = lossIn(err);
    if (!loss) return;
    this.loss ??= loss;
    this.own.lose('the store reported a loss of acknowledged writes; a lock may be among them', loss);
  };

  /** Waits (in arrival order) until this session holds the lock `name`. */
  async lock(name: string, options: AcquireOptions = {}): Promise<Lock> {
    const hold = await this.acquire(name, undefined, options);
    return new Lock(hold, (releasing) => this.forget(hold, releasing));
  }

  /** Waits until this session is the leader of `name`, announcing `value`. */
  async campaign<T = unknown>(name: string, value: T, options: AcquireOptions = {}): Promise<Leadership<T>> {
    if (value === undefined) throw new InvalidArgumentError('campaign() needs a value to announce (null is allowed)');
    const hold = await this.acquire(name, value, options);
    return new Leadership<T>(hold, (releasing) => this.forget(hold, releasing));
  }

  /** Releases every lock and leadership of this session and deletes its key. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.own.lose('the session was closed');
    clearInterval(this.timer);
    // Acquires stopped by this close register their cleanup once their rejection has run: after the microtasks.
    await new Promise((resolve) => setImmediate(resolve));
    const all = [...this.holds];
    this.holds.clear();
    // Lost holds too: a key still this holder's incarnation (the store was only briefly away) is deleted.
    await Promise.all([...all.map((h) => h.remove().catch(() => undefined)), ...this.pending]);
  }

  private async acquire(name: string, value: unknown, options: AcquireOptions): Promise<Hold> {
    const of = value === undefined ? 'lock()' : 'campaign()';
    assertOptions(options, of);
    const keys = lockKeys(this.prefix, name);
    if (options.waitMs !== undefined && (!Number.isSafeInteger(options.waitMs) || options.waitMs < 0)) {
      throw new InvalidArgumentError(`waitMs must be a non-negative integer, got ${String(options.waitMs)}`);
    }
    assertSignal(options.signal, of);
    if (this.closed || this.signal.aborted) throw this.lostError();
    const hold = await acquire({
      store: this.store, lease: this.lease, sessionId: this.id, sessionSignal: this.signal,
      keepAlive: (h) => this.track(h),
      background: (work) => {
        this.pending.add(work);
        void work.finally(() => this.pending.delete(work));
      },
      claimSlot: (lock) => {
        const used = this.slots.get(lock) ?? new Set<number>();
        this.slots.set(lock, used);
        let slot = 0;
        while (used.has(slot)) slot++;
        used.add(slot);
        return slot;
      },
      freeSlot: (lock, slot) => {
        const used = this.slots.get(lock);
        used?.delete(slot);
        if (used?.size === 0) this.slots.delete(lock);
      },
    }, keys, value, options);
    if (this.closed || this.signal.aborted) {
      // Acquired as the session closed or was lost: not this caller's to keep.
      void hold.remove().catch(() => undefined);
      throw this.lostError();
    }
    return hold;
  }

  /** Why this session can take no lock: its loss, with a loss reported since as the cause. */
  private lostError(): LockLostError {
    const lost = this.own.lostError();
    if (!this.loss || lossIn(lost)) return lost;
    return new LockLostError(`${lost.message}; since then the store reported a loss of acknowledged writes`, lost.details, { cause: this.loss });
  }

  private forget(hold: Hold, releasing: Promise<void>): void {
    this.holds.delete(hold);
    const work = releasing.catch(() => undefined);
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  private track(hold: Hold): () => void {
    if (this.closed || this.signal.aborted) {
      void hold.remove().catch(() => undefined);
      return () => undefined;
    }
    this.holds.add(hold);
    return () => this.holds.delete(hold);
  }

  private readonly refreshing = new WeakSet<Hold>();

  private keepAliveAll(): void {
    for (const hold of this.holds) {
      // A keepalive still waiting for a slow store is not queued behind: the hold's deadline judges it.
      if (hold.lost || hold.released || this.refreshing.has(hold)) continue;
      this.refreshing.add(hold);
      // A failure is the hold's deadline's to judge; a reported loss has reached noteError through the store.
      hold.write().catch(() => undefined).finally(() => this.refreshing.delete(hold));
    }
  }
}
