// What a test run changed in the git checkout: `git status` before and after,
// compared line by line. A developer's uncommitted work shows in both and is
// not the tests' doing; a path that only shows afterwards (a tracked file
// rewritten, an untracked file that .gitignore does not cover), or whose status
// changed, is.
import { spawnSync } from 'node:child_process';

/**
 * The checkout's status lines (`XY path`, untracked files listed one by one),
 * or null when `cwd` is not in a git work tree or git is missing.
 */
export function checkoutStatus(cwd = process.cwd()) {
  const run = spawnSync('git', ['status', '--porcelain=v1', '-z', '--untracked-files=all'], { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (run.error || run.status !== 0) return null;
  const lines = [];
  const fields = run.stdout.split('\0');
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    if (!f) continue;
    // A rename or copy carries its source path as the next field.
    if (f[0] === 'R' || f[0] === 'C') lines.push(`${f} <- ${fields[++i]}`);
    else lines.push(f);
  }
  return lines;
}

/** The status lines present after a run and not before it. */
export function changedDuring(before, after) {
  const was = new Set(before);
  return after.filter((line) => !was.has(line));
}
