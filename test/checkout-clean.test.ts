// Tests and benchmarks leave the checkout as they found it: screenshots and
// benchmark results go to ignored folders unless the user asks for the
// tracked copies (REVKIT_UPDATE_DOCS=1, npm run bench -- --publish), and
// `npm test` fails when the run changed `git status` (scripts/test.mjs).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error -- plain ESM script without types
import { changedDuring, checkoutStatus } from '../scripts/checkout-status.mjs';
// @ts-expect-error -- plain ESM script without types
import { leftBehind } from '../scripts/server-leftovers.mjs';
// @ts-expect-error -- plain ESM script without types
import { output, PUBLISHED_DIR, PUBLISHED_REPORT } from '../bench/lib/out.mjs';
import { screenshotDir } from './ui/support.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'revkit-clean-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Whether git ignores `path` (relative to the repository). */
function ignored(path: string): boolean {
  return spawnSync('git', ['check-ignore', '-q', relative(repo, path)], { cwd: repo }).status === 0;
}

const digest = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
/** BENCHMARKS.md and every file of bench/results/, by content. */
const published = () => Object.fromEntries([PUBLISHED_REPORT, ...readdirSync(PUBLISHED_DIR).map((f) => join(PUBLISHED_DIR, f))].map((f) => [f, digest(f)]));

describe('console screenshots', () => {
  it('go to an ignored folder, and to docs/console/ only with REVKIT_UPDATE_DOCS=1', () => {
    const dir = screenshotDir(undefined);
    expect(ignored(join(dir, 'key.png'))).toBe(true);
    expect(relative(repo, dir)).not.toMatch(/^docs/);
    expect(relative(repo, screenshotDir('1'))).toBe(join('docs', 'console'));
  });
});

describe('npm run bench', () => {
  it('writes to bench/out/ (ignored) by default, to --out DIR when named, to bench/results/ and BENCHMARKS.md only with --publish', () => {
    expect(output({}, {}).dir).toBe(join(repo, 'bench', 'out'));
    expect(ignored(join(output({}, {}).dir, 'latest.json'))).toBe(true);
    expect(ignored(output({}, {}).report)).toBe(true);
    const chosen = join(scratch, 'chosen');
    expect(output({}, { REVKIT_BENCH_OUT: chosen })).toEqual({ dir: chosen, report: join(chosen, 'BENCHMARKS.md'), publish: false });
    expect(output({ out: chosen }, {}).dir).toBe(chosen);
    expect(output({ publish: true }, {})).toEqual({ dir: PUBLISHED_DIR, report: PUBLISHED_REPORT, publish: true });
    expect(output({}, { REVKIT_BENCH_PUBLISH: '1' }).publish).toBe(true);
  });

  it('a report regenerated from a run goes where --out says; BENCHMARKS.md and bench/results/ are untouched', () => {
    const before = published();
    const out = join(scratch, 'bench-out');
    const run = spawnSync(process.execPath, [join(repo, 'bench', 'run.mjs'), '--from-json', join(PUBLISHED_DIR, 'latest.json'), '--out', out], { cwd: repo, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['BENCHMARKS.md', 'hot-key.svg']);
    const report = readFileSync(join(out, 'BENCHMARKS.md'), 'utf8');
    // Its links point at files that exist, relative to where it is.
    expect(report).toContain('![hot-key goodput against writers](hot-key.svg)');
    const results = /raw results in \[`[^`]+`\]\(([^)]+)\)/.exec(report)?.[1] as string;
    expect(readFileSync(join(out, results), 'utf8')).toBe(readFileSync(join(PUBLISHED_DIR, 'latest.json'), 'utf8'));
    expect(published()).toEqual(before);
  });

  it('no bench script names bench/results/ or BENCHMARKS.md as a place to write, but bench/lib/out.mjs', () => {
    const scripts: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory() && e.name !== 'results' && e.name !== 'out') walk(join(dir, e.name));
        else if (e.name.endsWith('.mjs')) scripts.push(join(dir, e.name));
      }
    };
    walk(join(repo, 'bench'));
    expect(scripts.length).toBeGreaterThan(10);
    for (const file of scripts) {
      if (file.endsWith(join('lib', 'out.mjs'))) continue;
      // Code only: comments and the report's Markdown text may mention them.
      const code = readFileSync(file, 'utf8').split('\n').filter((l) => !/^\s*(\/\/|\*)/.test(l)).join('\n');
      expect(code, relative(repo, file)).not.toMatch(/(['"`])results['"`/]|['"`]\.\.?\/results|join\([^)]*['"`]BENCHMARKS\.md['"`]/);
    }
  });
});

describe('the check at the end of npm test (scripts/test.mjs)', () => {
  const git = (cwd: string, ...args: string[]) => {
    const r = spawnSync('git', args, { cwd, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  it('reports what a run changed in the checkout, and not the uncommitted work that was there before', () => {
    const work = join(scratch, 'checkout');
    mkdirSync(join(work, 'docs'), { recursive: true });
    git(work, 'init', '-q');
    writeFileSync(join(work, '.gitignore'), 'out/\n');
    for (const f of ['a.txt', 'b.txt', 'docs/shot.png']) writeFileSync(join(work, f), 'committed\n');
    git(work, 'add', '.');
    git(work, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'init');
    // A developer's uncommitted work: a change, a new file.
    writeFileSync(join(work, 'a.txt'), 'work in progress\n');
    writeFileSync(join(work, 'notes.txt'), 'mine\n');
    const before = checkoutStatus(work);
    expect(before).toEqual([' M a.txt', '?? notes.txt']);
    expect(changedDuring(before, checkoutStatus(work))).toEqual([]);

    // The "tests": rewrite a tracked file, add a stray file, write to the ignored folder, touch the developer's file again.
    writeFileSync(join(work, 'docs', 'shot.png'), 'rewritten\n');
    writeFileSync(join(work, 'stray.json'), '{}\n');
    mkdirSync(join(work, 'out'));
    writeFileSync(join(work, 'out', 'fine.json'), '{}\n');
    writeFileSync(join(work, 'a.txt'), 'work in progress, edited again\n');
    expect(changedDuring(before, checkoutStatus(work))).toEqual([' M docs/shot.png', '?? stray.json']);
  });

  it('is skipped outside a git checkout', () => {
    expect(checkoutStatus(mkdtempSync(join(scratch, 'not-git-')))).toBeNull();
  });

  it('flags a default-named store on the shared servers only when the run made it', () => {
    expect(leftBehind({ nats: false, pg: true }, { nats: true, pg: true })).toEqual(['nats']);
    expect(leftBehind({ nats: false }, { nats: false })).toEqual([]);
    // A server not reached before (no entry) or after gives no verdict.
    expect(leftBehind({}, { nats: true })).toEqual([]);
    expect(leftBehind({ nats: false }, {})).toEqual([]);
  });
});
