// The writer loops shared by the in-process workloads and the multi-process worker.

const increment = (n) => (n ?? 0) + 1;

/**
 * Policy specs are plain data so they cross process boundaries:
 *   { id, retry?: { kind: 'linear' | 'exponential' | 'decorrelated', ... }, maxAttempts?, deadlineMs?, combine }
 * No `retry` means update()'s default policy.
 */
export function updateOptions(spec, lib) {
  const opts = { combine: spec.combine !== false };
  const r = spec.retry;
  if (r) {
    if (r.kind === 'linear') opts.retry = lib.linearBackoff({ stepMs: r.stepMs, capMs: r.capMs });
    else if (r.kind === 'exponential') opts.retry = lib.exponentialJitter({ baseMs: r.baseMs, capMs: r.capMs });
    else if (r.kind === 'decorrelated') opts.retry = lib.decorrelatedJitter({ baseMs: r.baseMs, capMs: r.capMs });
    else throw new Error(`unknown retry kind ${r.kind}`);
  }
  if (spec.maxAttempts !== undefined) opts.maxAttempts = spec.maxAttempts;
  if (spec.deadlineMs !== undefined) opts.deadlineMs = spec.deadlineMs;
  return opts;
}

/**
 * `writers` concurrent loops of store.update(key, n => n + 1) until
 * `durationMs` has passed (calls in flight at the end are finished and
 * counted). Returns counts, per-call latencies of successful calls (ms) and
 * successes per key, for the caller to compare with what is stored.
 */
export async function runWriters({ store, writers, keyOf, durationMs, options }) {
  const result = { succeeded: 0, failed: 0, attempts: 0, latencies: [], perKey: {}, errors: {}, elapsedMs: 0 };
  const opts = { ...options, onRetry: () => void result.attempts++ };
  const started = performance.now();
  const end = started + durationMs;
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      const key = keyOf(w);
      let mine = 0;
      while (performance.now() < end) {
        const t = performance.now();
        result.attempts++;
        try {
          await store.update(key, increment, opts);
          result.latencies.push(performance.now() - t);
          result.succeeded++;
          mine++;
        } catch (err) {
          result.failed++;
          const label = err?.code ? `${err.code}${err.reason ? ` (${err.reason})` : ''}` : String(err?.message ?? err);
          result.errors[label] = (result.errors[label] ?? 0) + 1;
        }
      }
      result.perKey[key] = (result.perKey[key] ?? 0) + mine;
    }),
  );
  result.elapsedMs = performance.now() - started;
  return result;
}
