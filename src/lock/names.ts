/**
 * Where a lock lives in the store. The lock key `prefix + name` holds the
 * current holder (and, for a leadership, its value); waiters queue under
 * `prefix + name + '/.waiting/'`, one key each; sessions under
 * `prefix + '.sessions/'`. Names with a segment starting with '.' are
 * refused, so no lock name can land on another lock's queue.
 */
import { InvalidArgumentError, assertKey, assertPrefix } from '../core/index.js';

export const DEFAULT_PREFIX = 'locks/';

export interface LockKeys {
  name: string;
  /** The key whose incarnation is the lock: its createdRevision is the fence. */
  key: string;
  queuePrefix: string;
}

export function lockKeys(prefix: string, name: unknown): LockKeys {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidArgumentError('a lock name must be a non-empty string');
  if (name.split('/').some((segment) => segment.startsWith('.'))) {
    throw new InvalidArgumentError(`lock name ${JSON.stringify(name)}: a segment starting with '.' is reserved for revkit's own keys`);
  }
  const keys = { name, key: prefix + name, queuePrefix: `${prefix}${name}/.waiting/` };
  assertKey(keys.key);
  assertKey(keys.queuePrefix + 'x'.repeat(32));
  return keys;
}

export function checkedPrefix(prefix: unknown): string {
  assertPrefix(prefix);
  if (prefix.split('/').some((segment) => segment.startsWith('.'))) {
    throw new InvalidArgumentError(`lock prefix ${JSON.stringify(prefix)}: a segment starting with '.' is reserved for revkit's own keys`);
  }
  return prefix;
}

export function sessionKey(prefix: string, id: string): string {
  return `${prefix}.sessions/${id}`;
}

/** What a lock, waiter or session key stores: who wrote it, and for a leadership the leader's value. */
export interface Stamp {
  revkitLock: 1;
  session: string;
  token: string;
  /** The holder's lease, so a waiter knows how long to wait for an expiry it is not told of. */
  ttlMs: number;
  value?: unknown;
}

export function stampOf(value: unknown): Stamp | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Partial<Stamp>;
  return v.revkitLock === 1 && typeof v.token === 'string' && typeof v.session === 'string' && typeof v.ttlMs === 'number' ? (v as Stamp) : null;
}
