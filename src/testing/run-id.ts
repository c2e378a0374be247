import { randomBytes } from 'node:crypto';

/**
 * A name for one workload run's keys. Two runs started in the same millisecond
 * against one store (two `revkit bench` at once, two checks in one process)
 * must not share counters: each would count the other's increments as its own
 * and report them duplicated.
 */
export function runId(): string {
  return `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}
