// Workload (c): `processes` OS processes × `writers` each on one hot key. The
// workers (bench/lib/mp-worker.mjs) open the store by URL from dist/, wait at
// a common start, run for the duration and report; the parent compares the
// stored counter with the sum of successes (lost / duplicated).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mergeResults, summarise } from '../lib/stats.mjs';

const workerPath = fileURLToPath(new URL('../lib/mp-worker.mjs', import.meta.url));

export async function multiProcess({ url, verify, processes, writers, spec, durationMs, key }) {
  const children = [];
  const results = [];
  try {
    const ready = [];
    const done = [];
    for (let i = 0; i < processes; i++) {
      const child = fork(workerPath, [JSON.stringify({ url, key, writers, durationMs, spec })], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
      children.push(child);
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      let onReady;
      ready.push(new Promise((resolve) => (onReady = resolve)));
      done.push(
        new Promise((resolve, reject) => {
          child.on('message', (m) => {
            if (m.type === 'ready') onReady();
            else if (m.type === 'result') resolve(m.result);
            else if (m.type === 'error') reject(new Error(m.message));
          });
          child.on('exit', (code) => {
            if (code !== 0) {
              const err = new Error(`bench worker exited with ${code}: ${stderr.trim().slice(-500)}`);
              onReady?.();
              reject(err);
            }
          });
        }),
      );
    }
    await Promise.all(ready);
    const startAt = Date.now() + 100;
    for (const c of children) c.send({ type: 'go', startAt });
    results.push(...(await Promise.all(done)));
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill();
  }
  const merged = mergeResults(results);
  const stored = (await verify.get(key))?.value ?? 0;
  return {
    writers: processes * writers, processes, distinct: false, policy: spec.id, combine: spec.combine !== false,
    ...summarise(merged), lost: Math.max(0, merged.succeeded - stored), duplicated: Math.max(0, stored - merged.succeeded),
  };
}
