import { BackendError } from './errors.js';
import type { RetryPolicy } from './types.js';

/** The naive policy revkit is measured against: a fixed step per attempt, capped. */
export function linearBackoff({ stepMs = 2, capMs = 25 } = {}): RetryPolicy {
  return { name: `linear(${stepMs}ms, cap ${capMs}ms)`, delay: (attempt) => Math.min(capMs, stepMs * attempt) };
}

/** AWS "full jitter": uniform in [0, min(cap, base * 2^attempt)]. Spreads lockstep writers apart. */
export function exponentialJitter({ baseMs = 1, capMs = 100, random = Math.random } = {}): RetryPolicy {
  return {
    name: `exponential full jitter(${baseMs}ms, cap ${capMs}ms)`,
    delay: (attempt) => random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30)),
  };
}

/** AWS "decorrelated jitter": uniform in [base, previous * 3], capped. */
export function decorrelatedJitter({ baseMs = 1, capMs = 100, random = Math.random } = {}): RetryPolicy {
  return {
    name: `decorrelated jitter(${baseMs}ms, cap ${capMs}ms)`,
    delay: (_attempt, previousDelayMs) => {
      const upper = Math.max(baseMs, previousDelayMs * 3);
      return Math.min(capMs, baseMs + random() * (upper - baseMs));
    },
  };
}

/** Chosen from the hot-key benchmark (BENCHMARKS.md). */
export const UPDATE_DEFAULTS = {
  maxAttempts: 64,
  deadlineMs: 30_000,
  retry: exponentialJitter({ baseMs: 1, capMs: 256 }),
  /**
   * An unreachable store is not a contended key: waiting longer between
   * attempts lets update() ride out a restart within its deadline instead of
   * burning every attempt in the first second.
   */
  outageRetry: exponentialJitter({ baseMs: 50, capMs: 2_000 }),
};

/** The delay before the next attempt: conflicts use the caller's policy, outages the outage policy. */
export function backoffDelay(error: unknown, attempt: number, previousDelayMs: number, policy: RetryPolicy = UPDATE_DEFAULTS.retry): number {
  const chosen = BackendError.is(error) ? UPDATE_DEFAULTS.outageRetry : policy;
  return Math.max(0, chosen.delay(attempt, previousDelayMs));
}
