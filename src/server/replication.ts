import { DataLostError, type ReplicationState, type Store } from '../core/index.js';

/**
 * What the server shows of its store's replication (GET /readyz, /v1/info, the
 * console): the state the store reports (`store.replication()`), or null for
 * a store that has none (memory, SQLite, the file, a single server).
 */
export async function replicationState(store: Store): Promise<ReplicationState | null> {
  return store.replication ? store.replication() : null;
}

/**
 * The loss a replication state reports and nobody accepted yet, as the error
 * every operation meets meanwhile (ERR_DATA_LOST, 503, with its details).
 */
export function unacceptedLoss(store: Store, state: ReplicationState | null): DataLostError | undefined {
  const lost = state?.lost;
  if (!lost) return undefined;
  return new DataLostError(lost.message, {
    store: store.backend,
    ...(lost.after !== undefined ? { after: lost.after } : {}),
    ...(lost.upTo !== undefined ? { upTo: lost.upTo } : {}),
    ...(lost.detectedAt !== undefined ? { detectedAt: lost.detectedAt } : {}),
  });
}
