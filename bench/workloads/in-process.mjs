// Workloads (b) and (d) and the writers sweep: N writers in this process,
// on one hot key or on a key each. Lost = successes minus what is stored.
import { runWriters, updateOptions } from '../lib/writers.mjs';
import { summarise } from '../lib/stats.mjs';

export async function inProcess({ lib, store, writers, distinct, spec, durationMs, keyBase }) {
  const keyOf = distinct ? (w) => `${keyBase}/${w}` : () => keyBase;
  const r = await runWriters({ store, writers, keyOf, durationMs, options: updateOptions(spec, lib) });
  let lost = 0;
  let duplicated = 0;
  for (const [key, succeeded] of Object.entries(r.perKey)) {
    const stored = (await store.get(key))?.value ?? 0;
    lost += Math.max(0, succeeded - stored);
    duplicated += Math.max(0, stored - succeeded);
  }
  return { writers, processes: 1, distinct, policy: spec.id, combine: spec.combine !== false, ...summarise(r), lost, duplicated };
}
