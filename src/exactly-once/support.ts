import { UnsupportedError, assertStore, type Store } from '../core/index.js';

/** Exactly-once needs the effect and the dedup record in one commit: without atomic() it would only pretend. */
export function assertAtomic(store: Store, operation: string): void {
  assertStore(store, `exactly-once ${operation}`);
  if (!store.capabilities.atomic) {
    throw new UnsupportedError(`exactly-once ${operation}`, store.backend ?? 'unknown', 'it needs atomic multi-key commits (capabilities.atomic)');
  }
}
