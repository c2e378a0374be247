import type { Command } from 'commander';
import { parsePositive } from './args.js';
import { targetUrl } from './target.js';
import { redactUrl } from '../core/redact.js';
import type { CounterRunReport } from '../testing/multiprocess.js';
import type { Store } from '../core/index.js';

/**
 * `revkit bench`: the hot-key counter workload against any store URL — the
 * quick answer to "how does update() do on my store". The full comparison
 * with raw drivers and retry policies is `npm run bench` in the repository.
 */
export function registerBench(program: Command, defaultStore: string): void {
  program.command('bench')
    .description('hot-key update() workload against a store: goodput, attempts per commit, failed, lost')
    .option('--processes <n>', 'OS processes (1: in this process)', parsePositive, 1)
    .option('--writers <n>', 'concurrent update() writers per process', parsePositive, 64)
    .option('--increments <n>', 'total increments', parsePositive, 5000)
    .option('--keys <n>', 'keys the writers share', parsePositive, 1)
    .option('--no-combine', 'turn off in-process write combining')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { processes: number; writers: number; increments: number; keys: number; combine: boolean; json?: boolean }, cmd: Command) => {
      const url = await targetUrl(cmd.optsWithGlobals<{ store?: string; server?: string; token?: string }>(), defaultStore);
      // Loaded on use: the other commands start without the workload code.
      const { openTarget } = await import('../testing/open-target.js');
      const { runMultiProcessCounters } = await import('../testing/multiprocess.js');
      const { runId } = await import('../testing/run-id.js');
      const store = await openTarget(url);
      let report: CounterRunReport;
      try {
        const keyPrefix = `bench-${runId()}/`;
        if (opts.processes > 1 && store.capabilities.crossProcess) {
          report = await runMultiProcessCounters(url, store, { processes: opts.processes, writers: opts.writers, increments: opts.increments, keys: opts.keys, combine: opts.combine, keyPrefix });
        } else {
          report = await inProcess(url, store, opts, keyPrefix);
        }
      } finally {
        await store.close();
      }
      const perSecond = report.succeeded / (report.elapsedMs / 1000);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ store: redactUrl(url), opsPerSecond: perSecond, ...report })}\n`);
      } else {
        process.stdout.write([
          `store       ${redactUrl(url)}`,
          `workload    ${report.processes} process(es) × ${report.writersPerProcess} writers on ${opts.keys} key(s), combining ${opts.combine ? 'on' : 'off'}`,
          `goodput     ${perSecond.toFixed(0)} committed updates/s (${report.succeeded} in ${(report.elapsedMs / 1000).toFixed(2)} s)`,
          `attempts    ${(report.attempts / Math.max(1, report.succeeded)).toFixed(2)} per commit`,
          `failed      ${report.failed}${report.errors.length ? ` (${report.errors[0]})` : ''}`,
          `lost        ${report.lost}, duplicated ${report.duplicated}`,
        ].join('\n') + '\n');
      }
      if (report.lost > 0 || report.duplicated > 0 || report.failed > 0) process.exitCode = 1;
    });
}

async function inProcess(url: string, store: Store, opts: { writers: number; increments: number; keys: number; combine: boolean }, keyPrefix: string): Promise<CounterRunReport> {
  const { runCounterWorker } = await import('../testing/counter-worker.js');
  const { tallyCounters } = await import('../testing/multiprocess.js');
  const keys = Array.from({ length: opts.keys }, (_, i) => `${keyPrefix}counter-${i}`);
  const result = await runCounterWorker({ url, keys, writers: opts.writers, increments: opts.increments, startAt: Date.now(), combine: opts.combine, maxAttempts: 64, deadlineMs: 30_000 }, store);
  return tallyCounters(store, keys, [result], { processes: 1, writersPerProcess: opts.writers, increments: opts.increments, elapsedMs: result.elapsedMs });
}
