/**
 * Exactly-once processing of stamped messages: a message's effects inside the
 * store and the record that it was processed commit in one atomic write.
 */
export { registerProducer, retireProducer, type Producer } from './producer.js';
export { processMessage, process, consumer, DEFAULT_WINDOW, DEFAULT_DEDUP_BYTES, type Handler, type ProcessOptions } from './consumer.js';
export { EPOCHS_KEPT } from './decide.js';
export type { Transaction } from './transaction.js';
export { canonicalJson, payloadHash } from './canonical.js';
export { DEFAULT_PREFIX } from './keys.js';
export type { Stamp, Outcome, DedupRecord, EpochRecord, RecentResult, FencedDetails, ExactlyOnceOptions } from './types.js';
export { FencedError, OutOfOrderError, SequenceReusedError, UnsupportedError } from '../core/index.js';
