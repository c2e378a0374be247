/**
 * What a holder gets: a Lock (fence, signal, fenced atomic commits,
 * release) or a Leadership (the same, plus the value it announces).
 */
import { ConflictError, InvalidArgumentError, type AtomicOp } from '../core/index.js';
import type { Hold } from './hold.js';
import type { Stamp } from './names.js';

/** An atomic commit that applies only while the lock key is still this holder's incarnation. */
export interface FencedBatch {
  check(key: string, revision: number | null): FencedBatch;
  set(key: string, value: unknown, options?: { ttlMs?: number }): FencedBatch;
  delete(key: string): FencedBatch;
  /** Commits everything or nothing; LockLostError (nothing written) once the lock is no longer this holder's. */
  commit(): Promise<{ revision: number }>;
}

/** A keepalive racing the commit moves the lock key's revision; a few rounds always suffice unless the store keeps failing. */
const FENCE_ROUNDS = 32;

export class Lock {
  /** `forget`: the session stops keeping the hold alive, and its close() waits for the release under way. */
  constructor(protected readonly hold: Hold, private readonly forget: (releasing: Promise<void>) => void) {}

  get name(): string {
    return this.hold.name;
  }

  /** The lock key. */
  get key(): string {
    return this.hold.key;
  }

  /** Grows with every new holder of this lock: the lock key's createdRevision. */
  get fence(): number {
    return this.hold.createdRevision;
  }

  /** Aborts as soon as this holder can no longer be sure it holds the lock; its reason is a LockLostError. */
  get signal(): AbortSignal {
    this.hold.checkDeadline();
    return this.hold.signal;
  }

  atomic(): FencedBatch {
    const ops: AtomicOp[] = [];
    const batch: FencedBatch = {
      check: (key, revision) => (this.assertOther(key), ops.push({ type: 'check', key, revision }), batch),
      set: (key, value, options) => (this.assertOther(key), ops.push({ type: 'set', key, value, ...(options?.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }) }), batch),
      delete: (key) => (this.assertOther(key), ops.push({ type: 'delete', key }), batch),
      commit: () => this.commit(ops),
    };
    return batch;
  }

  /** Deletes the lock key if it is still this holder's; aborts `signal`. Idempotent. */
  async release(): Promise<void> {
    const releasing = this.hold.remove();
    this.forget(releasing);
    await releasing;
  }

  private assertOther(key: string): void {
    if (key === this.hold.key) throw new InvalidArgumentError(`a fenced commit must not touch the lock key ${JSON.stringify(key)} itself`);
  }

  private commit(ops: AtomicOp[]): Promise<{ revision: number }> {
    const hold = this.hold;
    return (async () => {
      for (let round = 1; ; round++) {
        if (hold.released) throw hold.lostError();
        const batch = hold.store.atomic().check(hold.key, hold.revision);
        for (const op of ops) {
          if (op.type === 'check') batch.check(op.key, op.revision);
          else if (op.type === 'set') batch.set(op.key, op.value, op.ttlMs === undefined ? undefined : { ttlMs: op.ttlMs });
          else batch.delete(op.key);
        }
        try {
          return await batch.commit();
        } catch (err) {
          if (!ConflictError.is(err) || !err.checks.some((c) => c.key === hold.key)) throw err;
          const current = await hold.store.get(hold.key);
          if (!hold.isMine(current)) throw hold.lose('another holder has the lock key, or it expired and was deleted', err);
          hold.advance(current.revision);
          if (round >= FENCE_ROUNDS) throw err;
        }
      }
    })();
  }
}

export class Leadership<T = unknown> extends Lock {
  /** The value this leader announces (what observe() shows). */
  get value(): T {
    return this.hold.stamp.value as T;
  }

  /** Announces a new value, while still the leader; LockLostError otherwise. */
  async proclaim(value: T): Promise<void> {
    if (value === undefined) throw new InvalidArgumentError('proclaim() needs a value (null is allowed)');
    if (this.hold.released) throw this.hold.lostError();
    const stamp: Stamp = { ...this.hold.stamp, value };
    await this.hold.write(stamp);
  }

  /** Steps down: the next candidate in line becomes leader. */
  resign(): Promise<void> {
    return this.release();
  }
}
