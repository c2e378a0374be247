#!/usr/bin/env node
// Runs the whole test suite: the main pass (files in parallel), then the
// fault pass (tests that restart shared servers, one file at a time).
// Prints one closing line `N passed, N failed, N skipped` and writes it to
// .test-summary so CI can repeat it as its very last line.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';

const passes = [
  { name: 'main', args: [] },
  { name: 'faults', args: ['--config', 'vitest.faults.config.ts'] },
];
const extra = process.argv.slice(2);
const totals = { passed: 0, failed: 0, skipped: 0 };
let exitCode = 0;

for (const pass of passes) {
  const out = `.vitest-${pass.name}.json`;
  rmSync(out, { force: true });
  const run = spawnSync('npx', ['vitest', 'run', ...pass.args, '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...extra], { stdio: 'inherit' });
  let report;
  try {
    report = JSON.parse(readFileSync(out, 'utf8'));
  } catch {
    console.error(`test pass "${pass.name}" wrote no report (exit ${run.status})`);
    totals.failed += 1;
    exitCode = 1;
    continue;
  }
  totals.passed += report.numPassedTests;
  totals.failed += report.numFailedTests + filesThatFailedToRun(report);
  totals.skipped += report.numPendingTests + (report.numTodoTests ?? 0);
  if (run.status !== 0) exitCode = 1;
}

// A file that failed to load has no failed tests but is a failure all the same.
function filesThatFailedToRun(report) {
  return report.testResults.filter((f) => f.status === 'failed' && !f.assertionResults.some((a) => a.status === 'failed')).length;
}

if (exitCode !== 0 && totals.failed === 0) totals.failed = 1;
const line = `${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`;
writeFileSync('.test-summary', `${line}\n`);
console.log(line);
process.exit(exitCode);
