import { BackendError, ConflictError, isTombstone, type DeleteOptions, type Entry, type PutOptions, type Store, type StoredRecord } from '../../core/index.js';
import { WrappingStore } from '../wrapping-store.js';
import type { HistoryRecorder } from '../checker/history.js';
import type { KvCondition, VersionedKvInput, VersionedKvOutput } from '../checker/linearizability.js';

type Recorder = HistoryRecorder<VersionedKvInput, VersionedKvOutput>;

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

  /** A conflict is an observation; a fault that may have applied is unknown; anything else did not apply. */
  private complete(id: number, err: unknown): void {
    if (ConflictError.is(err)) this.recorder.fail(id, { ok: false, actual: err.actual });
    else if (BackendError.is(err) && (err.ambiguous || err.transient)) this.recorder.unknown(id);
    else this.recorder.fail(id);
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
