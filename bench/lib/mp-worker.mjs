// One OS process of workload (c): opens the store by URL from dist/, waits for
// the parent's start signal, runs its writers for the duration, sends back
// what it did. Forked by bench/workloads/multi-process.mjs (IPC channel).
import * as lib from '../../dist/index.js';
import { runWriters, updateOptions } from './writers.mjs';

const config = JSON.parse(process.argv[2]);
const store = await lib.open(config.url);
// Touch the store once so connection setup is not part of the timed run.
await store.getRecord(config.key);
process.send({ type: 'ready' });
process.on('message', async (msg) => {
  if (msg.type !== 'go') return;
  const wait = msg.startAt - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  try {
    const result = await runWriters({
      store, writers: config.writers, keyOf: () => config.key, durationMs: config.durationMs, options: updateOptions(config.spec, lib),
    });
    result.latencies = result.latencies.map((x) => Math.round(x * 1000) / 1000);
    process.send({ type: 'result', result }, () => void store.close().finally(() => process.exit(0)));
  } catch (err) {
    process.send({ type: 'error', message: String(err?.stack ?? err) }, () => process.exit(1));
  }
});
