export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** ops/s, p50/p99 (ms), attempts per commit from a runWriters()-shaped result. */
export function summarise(r) {
  const sorted = Float64Array.from(r.latencies).sort();
  return {
    ops: r.succeeded,
    opsPerSec: r.succeeded / (r.elapsedMs / 1000),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    attemptsPerCommit: r.succeeded > 0 ? r.attempts / r.succeeded : null,
    failed: r.failed,
    errors: r.errors,
    elapsedMs: r.elapsedMs,
  };
}

/** Merges results of several processes that started together. */
export function mergeResults(parts) {
  const out = { succeeded: 0, failed: 0, attempts: 0, latencies: [], perKey: {}, errors: {}, elapsedMs: 0 };
  for (const p of parts) {
    out.succeeded += p.succeeded;
    out.failed += p.failed;
    out.attempts += p.attempts;
    for (const l of p.latencies) out.latencies.push(l);
    for (const [k, v] of Object.entries(p.perKey)) out.perKey[k] = (out.perKey[k] ?? 0) + v;
    for (const [k, v] of Object.entries(p.errors)) out.errors[k] = (out.errors[k] ?? 0) + v;
    out.elapsedMs = Math.max(out.elapsedMs, p.elapsedMs);
  }
  return out;
}
