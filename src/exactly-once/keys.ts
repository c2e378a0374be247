import { InvalidArgumentError } from '../core/index.js';

export const DEFAULT_PREFIX = '_eo/';

/**
 * Where the exactly-once state lives. Ids are URI-encoded so that a `/` in a
 * producer id or partition can never make one producer's keys a prefix of
 * another's.
 */
export interface Layout {
  epochKey(producerId: string): string;
  dedupPrefix(producerId: string): string;
  dedupKey(producerId: string, partition: string): string;
  partitionOf(dedupKey: string, producerId: string): string;
}

export function layout(prefix = DEFAULT_PREFIX): Layout {
  if (typeof prefix !== 'string' || prefix.length === 0) throw new InvalidArgumentError('prefix must be a non-empty string');
  const id = (s: string) => encodeURIComponent(s);
  return {
    epochKey: (producerId) => `${prefix}epoch/${id(producerId)}`,
    dedupPrefix: (producerId) => `${prefix}dedup/${id(producerId)}/`,
    dedupKey: (producerId, partition) => `${prefix}dedup/${id(producerId)}/${id(partition)}`,
    partitionOf: (key, producerId) => decodeURIComponent(key.slice(`${prefix}dedup/${id(producerId)}/`.length)),
  };
}

export function assertProducerId(producerId: unknown): asserts producerId is string {
  if (typeof producerId !== 'string' || producerId.length === 0) throw new InvalidArgumentError('producerId must be a non-empty string');
}

export function partitionName(partition: unknown): string {
  if (typeof partition === 'number' && Number.isSafeInteger(partition) && partition >= 0) return String(partition);
  if (typeof partition === 'string' && partition.length > 0) return partition;
  throw new InvalidArgumentError('a partition is a non-empty string or a non-negative integer');
}
