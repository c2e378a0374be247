import { BackendError } from '../core/index.js';
import type { CondKind } from './sql/condition.js';

/** One conditional put or delete, as the statements take it. */
export interface Write {
  key: string;
  del: boolean;
  value: Buffer | null;
  ttlMs: number | null;
  writer: string | null;
  kind: CondKind;
  /** ifRevision (kind 'rev', 'own') or the encoded ifValue (kind 'value'). */
  arg: unknown;
  /** Kind 'own': the writer token the key's row must hold. */
  own?: string;
}

/** A write's outcome row: revision (null: not written), actual, found, ok and the written row's columns. */
export type WriteRow = Record<string, unknown>;

interface Pending<I, O> {
  item: I;
  resolve: (out: O) => void;
  reject: (err: unknown) => void;
}

export interface BatchRunner<I, O> {
  /** One request in its own statement. */
  one(item: I): Promise<O>;
  /** Several requests in one statement; one answer per request, in order. */
  many(items: I[]): Promise<O[]>;
}

/** Group commit: most writes (or reads) in one batch statement. */
export const MAX_BATCH = 256;

/** A batch that fails with one of these rolled back whole (deadlock, serialization): send it again. */
const RETRYABLE = /\b(40001|40P01)\b/;
const MAX_BATCH_ATTEMPTS = 5;

/**
 * Group commit for PostgreSQL: requests that arrive while `maxInFlight`
 * batches are out are sent together in the next one — one round trip, one
 * statement, and for writes one transaction and one commit flush — each
 * with its own outcome. A lone request goes out at once in its own
 * statement, so a single caller pays nothing. Nothing is answered from a
 * statement sent before the request arrived, so every answer reflects a
 * state after its call began.
 * Writes name an exclusive key: a key already queued or in flight is
 * written by its own statement beside the batch (the row lock orders the
 * two), so a batch never holds a key twice and a hot key's stale writers
 * still fail on the snapshot without waiting for a batch.
 * A batch that fails as a whole: a deadlock or serialization failure wrote
 * nothing and is sent again; an error that may belong to one request (a
 * permanent one) is sorted out by sending each alone, so a failing row
 * fails alone; a lost connection fails every request of the batch
 * (ambiguous for writes, like a single write's — update() then looks for
 * its writer token).
 */
export class GroupSender<I, O> {
  private queue: Pending<I, O>[] = [];
  /** Exclusive keys queued or in flight in a batch. */
  private readonly busy = new Set<string>();
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly runner: BatchRunner<I, O>,
    private readonly maxInFlight: number,
    private readonly maxBatch: number,
    private readonly exclusiveKey?: (item: I) => string,
  ) {}

  submit(item: I): Promise<O> {
    const key = this.exclusiveKey?.(item);
    if (this.maxInFlight === 0 || (key !== undefined && this.busy.has(key))) return this.runner.one(item);
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (key !== undefined) this.busy.add(key);
      // Nothing out: go now, not a microtask later (a lone caller pays nothing); later
      // arrivals of this turn gather behind it.
      if (this.inFlight === 0 && this.queue.length === 1 && !this.scheduled) this.dispatch();
      else this.kick();
    });
  }

  /** Dispatch after the current microtasks, so requests issued in the same turn share a batch. */
  private kick(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight || this.queue.length === 0) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        if (this.exclusiveKey) for (const p of batch) this.busy.delete(this.exclusiveKey(p.item));
        this.kick();
      });
    }
  }

  private async send(batch: Pending<I, O>[]): Promise<void> {
    if (batch.length === 1) {
      const [p] = batch as [Pending<I, O>];
      return this.runner.one(p.item).then(p.resolve, p.reject);
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const outs = await this.runner.many(batch.map((p) => p.item));
        batch.forEach((p, i) => p.resolve(outs[i] as O));
        return;
      } catch (err) {
        const be = BackendError.is(err) ? err : undefined;
        if (be && be.transient && !be.ambiguous && RETRYABLE.test(be.message) && attempt < MAX_BATCH_ATTEMPTS) continue;
        if (be && !be.transient) {
          await Promise.all(batch.map((p) => this.runner.one(p.item).then(p.resolve, p.reject)));
          return;
        }
        for (const p of batch) p.reject(err);
        return;
      }
    }
  }
}
