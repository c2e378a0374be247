import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Store } from '../core/index.js';
import type { CounterWorkerConfig, CounterWorkerResult } from './counter-worker.js';
import { runId } from './run-id.js';

/** The size the conformance suite's multi-process check runs at by default, and the canary is shown caught at. */
export const CI_MULTI_PROCESS_INCREMENTS = 2_000;

export interface CounterRunOptions {
  processes?: number;
  writers?: number;
  /** Total increments over all processes. */
  increments?: number;
  keys?: number;
  combine?: boolean;
  maxAttempts?: number;
  deadlineMs?: number;
  keyPrefix?: string;
}

export interface CounterRunReport {
  processes: number;
  writersPerProcess: number;
  increments: number;
  succeeded: number;
  failed: number;
  lost: number;
  duplicated: number;
  attempts: number;
  elapsedMs: number;
  errors: string[];
  perKey: Record<string, { succeeded: number; stored: number }>;
}

// Resolves to dist/ both from dist/testing and from src/testing (tests run the TypeScript sources).
const workerPath = fileURLToPath(new URL('../../dist/testing/counter-worker.js', import.meta.url));

/**
 * Runs the counter workload in several OS processes against `url` and
 * compares, per key, the increments that reported success with the value
 * stored: fewer is a lost update, more is a duplicated one.
 */
export async function runMultiProcessCounters(url: string, verify: Store, options: CounterRunOptions = {}): Promise<CounterRunReport> {
  const processes = options.processes ?? 4;
  const writers = options.writers ?? 16;
  const increments = options.increments ?? 20_000;
  const prefix = options.keyPrefix ?? `mp-${runId()}/`;
  const keys = Array.from({ length: options.keys ?? 8 }, (_, i) => `${prefix}counter-${i}`);
  const startAt = Date.now() + 1500;
  const results = await Promise.all(
    Array.from({ length: processes }, (_, i) => {
      const share = Math.floor(increments / processes) + (i < increments % processes ? 1 : 0);
      const config: CounterWorkerConfig = {
        url, keys, writers, increments: share, startAt,
        combine: options.combine ?? false,
        maxAttempts: options.maxAttempts ?? 10_000,
        deadlineMs: options.deadlineMs ?? 120_000,
      };
      return runWorker(config);
    }),
  );
  // Workers start together at startAt; the slowest one's time is the run's.
  const elapsedMs = Math.max(...results.map((r) => r.elapsedMs));
  return tallyCounters(verify, keys, results, { processes, writersPerProcess: writers, increments, elapsedMs });
}

/**
 * Compares, per key, the increments that reported success with the value
 * stored: fewer is a lost update, more is a duplicated one.
 */
export async function tallyCounters(
  verify: Store, keys: string[], results: CounterWorkerResult[],
  run: Pick<CounterRunReport, 'processes' | 'writersPerProcess' | 'increments' | 'elapsedMs'>,
): Promise<CounterRunReport> {
  const report: CounterRunReport = { ...run, succeeded: 0, failed: 0, lost: 0, duplicated: 0, attempts: 0, errors: [], perKey: {} };
  for (const key of keys) {
    const succeeded = results.reduce((sum, r) => sum + (r.succeeded[key] ?? 0), 0);
    const stored = ((await verify.get<number>(key))?.value ?? 0) as number;
    report.perKey[key] = { succeeded, stored };
    report.succeeded += succeeded;
    report.lost += Math.max(0, succeeded - stored);
    report.duplicated += Math.max(0, stored - succeeded);
  }
  for (const r of results) {
    report.failed += r.failed;
    report.attempts += r.attempts;
    report.errors.push(...r.errors);
  }
  return report;
}

function runWorker(config: CounterWorkerConfig): Promise<CounterWorkerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [workerPath, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`counter worker exited with ${code}: ${err.trim()}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() as string) as CounterWorkerResult);
      } catch {
        reject(new Error(`counter worker printed no result: ${out} ${err}`));
      }
    });
  });
}
