/**
 * One worker process of `revkit check`: runs the workload against a store URL
 * and appends every history event to a file *before* acting on it, so a
 * SIGKILL leaves a history whose open operations are simply unknown. Its
 * watchers append each segment start, event and end the same way.
 *
 * The configuration comes in the environment (REVKIT_CHECK_WORKER), not on
 * the command line, where a token in the store URL would be visible to
 * every user of the machine.
 */
import { appendFileSync } from 'node:fs';
import { HistoryRecorder } from '../checker/history.js';
import type { Store } from '../../core/index.js';
import { openTarget } from '../open-target.js';
import { WORKER_ENV, type CheckWorkerConfig } from './worker-config.js';
import { runWorkload, type CheckRecorder } from './workload.js';

async function main(): Promise<void> {
  const config = JSON.parse(process.env[WORKER_ENV] ?? (process.argv[2] as string)) as CheckWorkerConfig;
  const store = await openTarget(config.url);
  let watchStore: Store | undefined;
  if (config.watchUrl) watchStore = await openTarget(config.watchUrl);
  const recorder: CheckRecorder = new HistoryRecorder({
    onEvent: (_event, line) => appendFileSync(config.historyFile, line),
  });
  let last = 0;
  await runWorkload(store, recorder, {
    clients: config.clients, ops: config.ops, keys: config.keys, worker: config.worker, seed: config.seed, run: config.run,
    ...(config.canary ? { canary: config.canary } : {}),
    ...(config.watchers && config.watchFile ? { watchers: config.watchers, watchLog: (record) => appendFileSync(config.watchFile as string, `${JSON.stringify(record)}\n`) } : {}),
    ...(watchStore ? { watchStore } : {}),
    ...(config.livenessMs !== undefined ? { livenessMs: config.livenessMs } : {}),
    onProgress: (done) => {
      if (done - last >= 25) {
        last = done;
        process.send?.({ done });
      }
    },
  });
  process.send?.({ done: config.clients * config.ops });
  await watchStore?.close();
  await store.close();
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
