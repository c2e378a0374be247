#!/usr/bin/env node
// npm run bench — the core workloads (bench/run.mjs, arguments passed through),
// then each feature's side-by-side figures, one after another in one run:
//   sqlite-group-figures  SQLite: one writer vs the raw loop, 64 writers with group commit, kine-shape study
//   file-figures          file: group commit vs one write per rewrite vs write-file-atomic + proper-lockfile
//   exactly-once-figures  exactly-once vs at-least-once processing, dedup state size
//   watchers-figures      PostgreSQL puts/s with 50 idle watchers vs none
//   idle-watch-figures    CPU of an idle SQLite watch
//   watch-backlog-figures memory held for a watch whose consumer does not read (SQLite, PostgreSQL)
//   loss-detection-figures one PostgreSQL update() writer with loss detection on vs off
//   server-figures        revkit serve on memory: vs a bare fastify route, conditional PUTs
//   etcd-figures          revkit serve on SQLite FULL vs a private etcd (skipped without etcd)
//   lock                  revkit/lock acquire + fenced write + release, 1 and 16 contenders, vs etcd's lock service
//                         (memory, SQLite, PostgreSQL, Redis, HTTP; etcd rows skipped without etcd)
//   console-figures       web console: bundle size, first render of a 100,000-key store vs 10 keys
//   postgres-batch-figures  PostgreSQL: group commit, one writer vs the raw loop, kine-shaped statements
//   nats-figures (3)      NATS: 64 writers pipelined on one connection vs one round trip at a time
//   profile-figures       flame graphs of each issue-26 target's workload (node --cpu-prof)
//   growth-keys, growth-history, growth-watchers (--quick)  how costs grow with keys, history and watchers
// `npm run bench -- --core-only` runs bench/run.mjs alone.
//
// Everything goes to bench/out/ (ignored by git), or the folder `--out DIR` names:
// results, chart and a BENCHMARKS.md-shaped report. `--publish` instead regenerates
// the tracked BENCHMARKS.md and bench/results/ (bench/lib/out.mjs).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { output, outputEnv, ROOT } from './lib/out.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2).filter((a) => a !== '--core-only');
const outAt = args.findIndex((a) => a === '--out' || a.startsWith('--out='));
const out = output({
  publish: args.includes('--publish'),
  ...(outAt >= 0 ? { out: args[outAt].includes('=') ? args[outAt].slice('--out='.length) : args[outAt + 1] } : {}),
});
const env = { ...process.env, ...outputEnv(out) };
const scripts = [['run.mjs', args]];
if (!process.argv.includes('--core-only')) {
  for (const name of ['sqlite-group-figures.mjs', 'file-figures.mjs', 'exactly-once-figures.mjs', 'watchers-figures.mjs', 'idle-watch-figures.mjs', 'watch-backlog-figures.mjs', 'loss-detection-figures.mjs', 'sqlite-statement-costs.mjs', 'console-figures.mjs', 'server-figures.mjs', 'etcd-figures.mjs', 'lock.mjs']) scripts.push([name, []]);
  scripts.push(['postgres-batch-figures.mjs', ['--ops', '500', '--rounds', '3', '--ms', '3000', '--stmts', '2000']]);
  scripts.push(['nats-figures.mjs', ['--sections', '3', '--rounds', '3', '--ms', '3000']]);
  scripts.push(['profile-figures.mjs', []]);
  // The growth curves at smoke size (a minute or two each). Their full-size figures in BENCHMARKS.md and bench/results/
  // come from the full runs named there (hours), so --publish leaves them out rather than overwrite them with these.
  if (!args.includes('--publish')) for (const name of ['growth-keys.mjs', 'growth-history.mjs', 'growth-watchers.mjs']) scripts.push([name, ['--quick']]);
}
let failed = 0;
const outputs = [];
for (const [script, scriptArgs] of scripts) {
  console.log(`\n== bench: ${script}`);
  const run = spawnSync(process.execPath, [join(here, script), ...scriptArgs], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 << 20, env });
  process.stdout.write(run.stdout ?? '');
  if (run.status !== 0) {
    failed++;
    console.error(`bench: ${script} exited with ${run.status ?? run.signal}`);
  }
  if (script !== 'run.mjs') outputs.push({ script: [script, ...scriptArgs].join(' '), status: run.status, text: (run.stdout ?? '').trimEnd() });
}

// A full run (not --quick, not a subset) also puts every feature script's figures in its report
// (bench/out/BENCHMARKS.md; the tracked BENCHMARKS.md with --publish), below the core tables.
const partial = args.some((a) => /^--(quick|only|workloads)\b/.test(a));
const report = out.report;
if (!partial && outputs.length > 0 && existsSync(report)) {
  const MARK = '<!-- feature figures: written by bench/all.mjs -->';
  const core = readFileSync(report, 'utf8').split(MARK)[0].trimEnd();
  const sections = outputs.map(({ script, status, text }) =>
    `### ${script}${status === 0 ? '' : ` (exited ${status})`}\n\nReproduce: \`npm run build && node bench/${script}\`\n\n\`\`\`text\n${text}\n\`\`\``);
  writeFileSync(report, `${core}\n\n${MARK}\n## Feature figures (same run, ${new Date().toISOString()})\n\nEach script compares its cells side by side within itself; its output as printed.\n\n${sections.join('\n\n')}\n`);
  console.log(`\nbench: wrote the feature figures into ${relative(ROOT, report)}`);
}
process.exit(failed === 0 ? 0 : 1);
