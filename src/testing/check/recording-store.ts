import {
  BackendError, ConflictError, OutcomeUnknownError, RetryExhaustedError, isTombstone,
  type AtomicBatch, type AtomicOp, type DeleteOptions, type Entry, type PutOptions, type Store, type StoredRecord, type UpdateOptions,
} from '../../core/index.js';
import { WrappingStore } from '../wrapping-store.js';
import type { HistoryRecorder } from '../checker/history.js';
import type { KvCondition, VersionedKvOutput } from '../checker/versioned-kv-model.js';
import { applyMutation, type ApiKvInput, type RecordedMutation } from '../checker/api-model.js';

/** One history holds both levels: store-level operations, and API-level ones (`update`, and put/delete marked `api`). */
export type HistorySink = Pick<HistoryRecorder<ApiKvInput, VersionedKvOutput>, 'invoke' | 'ok' | 'fail' | 'unknown'>;
type Recorder = HistorySink;

/**
 * Wraps a store and records every primitive read and write as a history
 * operation. update() runs on top of it (it is a BaseStore), so each of its
 * reads and guarded puts is recorded with the exact inputs it used — which is
 * what the checker needs; a whole update() has no single input to record.
 */
export class RecordingStore extends WrappingStore {
  constructor(inner: Store, private readonly recorder: Recorder, private readonly clientId: string) {
    super(inner, inner.backend);
  }

  async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    const id = this.recorder.invoke(this.clientId, { op: 'get', key });
    try {
      const record = await this.inner.getRecord<T>(key);
      this.recorder.ok(id, record === null || isTombstone(record) ? null : { value: record.value, revision: record.revision });
      return record;
    } catch (err) {
      this.recorder.fail(id);
      throw err;
    }
  }

  protected async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    const cond = conditionOf(options);
    const id = this.recorder.invoke(this.clientId, cond ? { op: 'put', key, value, cond } : { op: 'put', key, value });
    try {
      const entry = await this.inner.put<T>(key, value, options);
      this.recorder.ok(id, { ok: true, revision: entry.revision });
      return entry;
    } catch (err) {
      this.complete(id, err);
      throw err;
    }
  }

  protected async doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    const cond = conditionOf(options);
    const id = this.recorder.invoke(this.clientId, cond ? { op: 'delete', key, cond } : { op: 'delete', key });
    try {
      const revision = await this.inner.delete(key, options);
      this.recorder.ok(id, { ok: true, revision });
      return revision;
    } catch (err) {
      this.complete(id, err);
      throw err;
    }
  }

  private complete(id: number, err: unknown): void {
    completeWithError(this.recorder, id, err);
  }

  protected override commitAtomic(ops: AtomicOp[]): Promise<{ revision: number }> {
    return recordAtomic(this.recorder, this.clientId, ops, false, () => batchOf(this.inner, ops).commit());
  }

  protected async doClose(): Promise<void> {
    // The inner store belongs to the caller.
  }
}

function conditionOf(options: PutOptions): KvCondition | undefined {
  if (options.ifAbsent) return { ifAbsent: true };
  if (options.ifRevision !== undefined) return { ifRevision: options.ifRevision };
  if (options.ifValue !== undefined) return { ifValue: options.ifValue };
  return undefined;
}

/** The same batch, built on another store. */
export function batchOf(store: Store, ops: readonly AtomicOp[]): AtomicBatch {
  const batch = store.atomic();
  for (const op of ops) {
    if (op.type === 'check') batch.check(op.key, op.revision);
    else if (op.type === 'set') batch.set(op.key, op.value, op.ttlMs === undefined ? undefined : { ttlMs: op.ttlMs });
    else batch.delete(op.key);
  }
  return batch;
}

/**
 * An atomic commit is recorded as one write per key it writes, all over the
 * commit's interval: per-key checking sees each key's part (the keys'
 * parts being one commit is not checked). A `check` of a written key becomes
 * that write's condition; a check-only key records nothing.
 */
async function recordAtomic(recorder: Recorder, clientId: string, ops: readonly AtomicOp[], api: boolean, commit: () => Promise<{ revision: number }>): Promise<{ revision: number }> {
  const checks = new Map<string, number | null>();
  for (const op of ops) if (op.type === 'check') checks.set(op.key, op.revision);
  const writes = ops.flatMap((op) => {
    if (op.type === 'check') return [];
    const expected = checks.get(op.key);
    const cond: KvCondition | undefined = expected === undefined ? undefined : expected === null ? { ifAbsent: true } : { ifRevision: expected };
    const write = op.type === 'set' ? { op: 'put' as const, key: op.key, value: op.value } : { op: 'delete' as const, key: op.key };
    const input = { ...write, ...(cond ? { cond } : {}) };
    return [{ op, cond, id: recorder.invoke(clientId, api ? { api: true, ...input } : input) }];
  });
  try {
    const result = await commit();
    for (const w of writes) {
      // Whether deleting nothing in a batch leaves a tombstone is the backend's choice: the delete's result says nothing.
      if (w.op.type === 'delete') recorder.unknown(w.id);
      else recorder.ok(w.id, { ok: true, revision: result.revision });
    }
    return result;
  } catch (err) {
    const failed = ConflictError.is(err) ? new Map(err.checks.map((c) => [c.key, c.actual])) : undefined;
    for (const w of writes) {
      // Only a write whose own condition failed observed anything; the others were refused for another key's sake.
      if (failed && w.cond && failed.has(w.op.key)) recorder.fail(w.id, { ok: false, actual: failed.get(w.op.key) ?? null });
      else if (failed) recorder.fail(w.id);
      else completeWithError(recorder, w.id, err);
    }
    throw err;
  }
}

/** A conflict is an observation; a fault that may have applied is unknown; anything else did not apply. */
function completeWithError(recorder: Recorder, id: number, err: unknown): void {
  if (ConflictError.is(err)) recorder.fail(id, { ok: false, actual: err.actual });
  else if (BackendError.is(err) && (err.ambiguous || err.transient)) recorder.unknown(id);
  else recorder.fail(id);
}

/**
 * Records what one client is *told*: each update() as one
 * operation with the entry it returned, and each put / delete / atomic
 * commit with its result. Mutations are given as data (`RecordedMutation`) so the checker can
 * re-run them against the model.
 */
export class ApiRecorder {
  constructor(private readonly store: Store, private readonly recorder: Recorder, readonly clientId: string) {}

  async update(key: string, mutation: RecordedMutation, options: UpdateOptions<unknown> = {}): Promise<Entry<unknown> | null> {
    const id = this.recorder.invoke(this.clientId, { op: 'update', key, mutation });
    try {
      const entry = await this.store.update<unknown>(key, (current) => applyMutation(mutation, current), options);
      this.recorder.ok(id, entry === null ? null : { value: entry.value, revision: entry.revision });
      return entry;
    } catch (err) {
      // The caller was told the update failed: the checker holds the store to that (it must not have applied),
      // unless the error itself says the outcome is open.
      const open = OutcomeUnknownError.is(err) || (BackendError.is(err) && (err.ambiguous || err.transient))
        || (RetryExhaustedError.is(err) && BackendError.is(err.lastError) && err.lastError.ambiguous);
      if (open) this.recorder.unknown(id);
      else this.recorder.fail(id);
      throw err;
    }
  }

  async put(key: string, value: unknown, options: PutOptions = {}): Promise<Entry<unknown>> {
    const cond = conditionOf(options);
    const id = this.recorder.invoke(this.clientId, cond ? { api: true, op: 'put', key, value, cond } : { api: true, op: 'put', key, value });
    try {
      const entry = await this.store.put(key, value, options);
      this.recorder.ok(id, { ok: true, revision: entry.revision });
      return entry;
    } catch (err) {
      completeWithError(this.recorder, id, err);
      throw err;
    }
  }

  atomic(ops: readonly AtomicOp[]): Promise<{ revision: number }> {
    return recordAtomic(this.recorder, this.clientId, ops, true, () => batchOf(this.store, ops).commit());
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<number | null> {
    const cond = conditionOf(options);
    const id = this.recorder.invoke(this.clientId, cond ? { api: true, op: 'delete', key, cond } : { api: true, op: 'delete', key });
    try {
      const revision = await this.store.delete(key, options);
      this.recorder.ok(id, { ok: true, revision });
      return revision;
    } catch (err) {
      completeWithError(this.recorder, id, err);
      throw err;
    }
  }
}
