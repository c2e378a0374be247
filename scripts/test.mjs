#!/usr/bin/env node
// Runs the whole test suite: the main pass (files two at a time) and, beside
// it, the fault pass (kills and restarts of private servers and processes, one
// file at a time). The fault pass spends much of its time waiting on the
// processes it kills and restarts, so beside the main pass it costs little
// wall time; its output is kept in .vitest-faults.log and printed after the
// main pass's, so neither is interleaved with the other.
// Prints one closing line `N passed, N failed, N skipped` and writes it to
// .test-summary so CI can repeat it as its very last line.
//
// Then checks that the run left the checkout as it found it: `git status`
// before and after are compared, and a path the tests wrote (a tracked file
// changed, an untracked file .gitignore does not cover) is one more failure.
// Uncommitted work that was there before the run does not count.
// REVKIT_CHECKOUT_CHECK=0 skips the check (e.g. while editing during a run).
// Likewise for the shared servers: a store under the default names (NATS
// KV_revkit, PostgreSQL revkit_*, Redis rk:{revkit}:*) that appeared during
// the run is a test that opened a store without naming its own and kept it.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { changedDuring, checkoutStatus } from './checkout-status.mjs';
import { defaultStores, leftBehind } from './server-leftovers.mjs';

// A summary from an earlier run must never stand for this one (.ci/run prints the file).
rmSync('.test-summary', { force: true });

const passes = [
  { name: 'main', args: [] },
  { name: 'faults', args: ['--config', 'vitest.faults.config.ts'], quiet: true },
];
// Arguments go to vitest (e.g. a file filter); a filter may match no file of a pass.
const extra = process.argv.slice(2);
if (extra.length > 0) extra.unshift('--passWithNoTests');
const totals = { passed: 0, failed: 0, skipped: 0, files: 0 };
// Named again just above the closing line: CI logs are often read from the tail only.
const failures = [];
let exitCode = 0;
const checkCheckout = process.env.REVKIT_CHECKOUT_CHECK !== '0';
const statusBefore = checkCheckout ? checkoutStatus() : null;
const serversBefore = await defaultStores();

const children = new Set();
const runs = passes.map((pass) => {
  const out = `.vitest-${pass.name}.json`;
  rmSync(out, { force: true });
  const args = ['vitest', 'run', ...pass.args, '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...extra];
  if (!pass.quiet) return exitOf(spawn('npx', args, { stdio: 'inherit' }));
  // One descriptor for both streams: an error block (stderr) stays beside the lines it belongs to.
  const log = openSync(`.vitest-${pass.name}.log`, 'w');
  const child = spawn('npx', args, { stdio: ['ignore', log, log], env: { ...process.env, FORCE_COLOR: process.stdout.isTTY ? '1' : '0' } });
  return exitOf(child).finally(() => closeSync(log));
});

function exitOf(child) {
  children.add(child);
  return new Promise((resolve) => child.on('close', (code, signal) => (children.delete(child), resolve(code ?? signal))));
}

// Stopped (Ctrl-C, a CI timeout): the passes get the signal too; wait for them to end and clean up, then report.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const child of children) child.kill(signal);
  });
}

for (const [i, pass] of passes.entries()) {
  const status = await runs[i];
  if (pass.quiet) {
    process.stdout.write(`\n--- the ${pass.name} pass, run beside the one above (its output is kept in .vitest-${pass.name}.log) ---\n`);
    process.stdout.write(readFileSync(`.vitest-${pass.name}.log`));
  }
  const out = `.vitest-${pass.name}.json`;
  const run = { status };
  let report;
  try {
    report = JSON.parse(readFileSync(out, 'utf8'));
  } catch {
    console.error(`test pass "${pass.name}" wrote no report (exit ${run.status})`);
    totals.failed += 1;
    exitCode = 1;
    continue;
  }
  const failed = report.numFailedTests + filesThatFailedToRun(report);
  failures.push(...failuresIn(report, pass.name));
  totals.passed += report.numPassedTests;
  // A pass that failed without a failed test (an unhandled error, a crash) counts as one failure.
  totals.failed += failed === 0 && run.status !== 0 ? 1 : failed;
  totals.skipped += report.numPendingTests + (report.numTodoTests ?? 0);
  totals.files += report.testResults.length;
  if (run.status !== 0) exitCode = 1;
}

// A file filter that matched no file in either pass is a typo, not a pass.
if (extra.length > 0 && totals.files === 0) {
  console.error(`\nno test file matched ${JSON.stringify(process.argv.slice(2).join(' '))} in either pass`);
  totals.failed += 1;
  exitCode = 1;
}

function failuresIn(report, passName) {
  const cwd = `${process.cwd()}/`;
  return report.testResults.flatMap((file) => {
    const name = file.name.startsWith(cwd) ? file.name.slice(cwd.length) : file.name;
    const failedTests = file.assertionResults.filter((a) => a.status === 'failed');
    if (failedTests.length === 0 && file.status === 'failed') return [`${passName}: ${name}: ${firstLine(file.message)}`];
    return failedTests.map((a) => `${passName}: ${name} > ${a.fullName}: ${firstLine(a.failureMessages?.[0])}`);
  });
}

function firstLine(text) {
  return String(text ?? 'no message').split('\n')[0].slice(0, 300);
}

// A file that failed to load has no failed tests but is a failure all the same.
function filesThatFailedToRun(report) {
  return report.testResults.filter((f) => f.status === 'failed' && !f.assertionResults.some((a) => a.status === 'failed')).length;
}

const statusAfter = statusBefore ? checkoutStatus() : null;
if (statusBefore && statusAfter) {
  const changed = changedDuring(statusBefore, statusAfter);
  if (changed.length > 0) {
    console.error(`\nthe test run changed the checkout (git status lines that were not there before it):\n${changed.map((l) => `  ${l}`).join('\n')}\n` +
      'tests write to temporary or ignored folders only (REVKIT_CHECKOUT_CHECK=0 skips this check)');
    totals.failed += 1;
    exitCode = 1;
  }
}

const left = leftBehind(serversBefore, await defaultStores());
if (left.length > 0) {
  console.error(`\nthe test run left stores under the default names on the shared servers: ${left.join(', ')}\n` +
    'a test opened a store without naming its own bucket / prefix, and did not drop it');
  totals.failed += 1;
  exitCode = 1;
}

if (failures.length > 0) console.error(`\nfailed:\n${failures.map((f) => `  ${f}`).join('\n')}\n`);
if (exitCode !== 0 && totals.failed === 0) totals.failed = 1;
const line = `${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`;
writeFileSync('.test-summary', `${line}\n`);
console.log(line);
process.exit(exitCode);
