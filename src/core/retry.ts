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
