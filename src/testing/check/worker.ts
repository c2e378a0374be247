/**
 * One worker process of `revkit check`: runs the workload against a store URL
 * and appends every history event to a file *before* acting on it, so a
 * SIGKILL leaves a history whose open operations are simply unknown.
 */
import { appendFileSync } from 'node:fs';
import { HistoryRecorder } from '../checker/history.js';
import type { CanaryKind } from '../api-canaries.js';
import { openTarget } from '../open-target.js';
import { runWorkload, type CheckRecorder } from './workload.js';

export interface CheckWorkerConfig {
  url: string;
  historyFile: string;
  worker: string;
  clients: number;
  ops: number;
  keys: number;
  seed: number;
  run: string;
  canary?: CanaryKind;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] as string) as CheckWorkerConfig;
  const store = await openTarget(config.url);
  const recorder: CheckRecorder = new HistoryRecorder({
    onEvent: (_event, line) => appendFileSync(config.historyFile, line),
  });
  let last = 0;
  await runWorkload(store, recorder, {
    clients: config.clients, ops: config.ops, keys: config.keys, worker: config.worker, seed: config.seed, run: config.run,
    ...(config.canary ? { canary: config.canary } : {}),
    onProgress: (done) => {
      if (done - last >= 25) {
        last = done;
        process.send?.({ done });
      }
    },
  });
  process.send?.({ done: config.clients * config.ops });
  await store.close();
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
