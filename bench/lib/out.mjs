// Where a benchmark run writes its results.
//
// bench/results/ and BENCHMARKS.md are the published figures, tracked by git:
// a run writes there only when told to (--publish, or REVKIT_BENCH_PUBLISH=1).
// Otherwise everything goes to the folder the user names (--out DIR, or
// REVKIT_BENCH_OUT=DIR), by default bench/out/, which git ignores — so a
// benchmark run leaves the checkout as it found it.
//
// bench/all.mjs passes its choice on to the scripts it runs through these two
// variables; each script also reads them when run alone.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The tracked, published results. */
export const PUBLISHED_DIR = join(ROOT, 'bench', 'results');
/** The tracked report. */
export const PUBLISHED_REPORT = join(ROOT, 'BENCHMARKS.md');
/** Where an unpublished run writes unless told otherwise (in .gitignore). */
export const DEFAULT_OUT = join(ROOT, 'bench', 'out');

/**
 * Where this run writes: `{ dir, report, publish }`. `dir` holds the machine-readable
 * results and the chart; `report` is the Markdown report (BENCHMARKS.md when publishing).
 * `flags` are the script's own `--publish` / `--out` when it parses them; the
 * environment (set by bench/all.mjs, or by the user) fills in the rest.
 */
export function output(flags = {}, env = process.env) {
  const publish = Boolean(flags.publish) || env.REVKIT_BENCH_PUBLISH === '1';
  const out = flags.out ?? (env.REVKIT_BENCH_OUT || undefined);
  if (publish && out) throw new Error('bench: --publish writes bench/results/ and BENCHMARKS.md; it takes no --out');
  const dir = publish ? PUBLISHED_DIR : resolve(out ?? DEFAULT_OUT);
  mkdirSync(dir, { recursive: true });
  return { dir, report: publish ? PUBLISHED_REPORT : join(dir, 'BENCHMARKS.md'), publish };
}

/** The variables that pass `output()`'s choice on to a child script. */
export function outputEnv({ dir, publish }) {
  return publish ? { REVKIT_BENCH_PUBLISH: '1', REVKIT_BENCH_OUT: '' } : { REVKIT_BENCH_PUBLISH: '', REVKIT_BENCH_OUT: dir };
}
