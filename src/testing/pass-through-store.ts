import type { AtomicOp, DeleteOptions, Entry, PutOptions, StoredRecord } from '../core/index.js';
import { WrappingStore } from './wrapping-store.js';
import { batchOf } from './check/recording-store.js';

/**
 * A WrappingStore whose single-key reads and writes, atomic batches and
 * close go straight through too: the canaries start from it and override
 * only what they break.
 */
export abstract class PassThroughStore extends WrappingStore {
  getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    return this.inner.getRecord<T>(key);
  }

  protected doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    return this.inner.put<T>(key, value, options);
  }

  protected doDelete(key: string, options: DeleteOptions): Promise<number | null> {
    return this.inner.delete(key, options);
  }

  protected override commitAtomic(ops: AtomicOp[]): Promise<{ revision: number }> {
    return batchOf(this.inner, ops).commit();
  }

  protected doClose(): Promise<void> {
    return this.inner.close();
  }
}
