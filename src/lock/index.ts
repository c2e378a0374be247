/**
 * Leases, locks and leader election with fencing (DESIGN §10), built on the
 * store's TTL, watch and atomic commits.
 */
export { openSession, Session, DEFAULT_TTL_MS, MIN_TTL_MS, MAX_TTL_MS, type SessionOptions } from './session.js';
export { Lock, Leadership, type FencedBatch } from './lock.js';
export { observe, type ObserveOptions } from './observe.js';
export { DEFAULT_PREFIX } from './names.js';
export type { AcquireOptions } from './acquire.js';
export { LockLostError, LockTimeoutError, UnsupportedError, type LockDetails } from '../core/index.js';
