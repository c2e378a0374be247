// The README's CLI commands, exactly as written (`npx revkit …`), in a fresh
// copy of this repository after nothing but `npm install`: no dist/ to start
// with, no global install. npm runs a project's own `bin` for `npx <name>`;
// the `prepare` script is what builds dist/ for it. Slow by nature (two builds
// of a fresh copy): minutes on a loaded machine.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(join(repo, 'README.md'), 'utf8');
const version = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;
const work = mkdtempSync(join(tmpdir(), 'revkit-clone-'));
const clone = join(work, 'revkit');
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The shell commands of the README's CLI section. */
const commands = (/^## CLI\n+```sh\n([\s\S]*?)^```$/m.exec(readme)?.[1] ?? '').split('\n').filter((l) => l.trim() !== '');

/** This process's environment without REVKIT_* variables; npx may run only what is already here, never fetch a package. */
const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REVKIT_') && !k.startsWith('npm_')));
env.npm_config_yes = 'false';
/**
 * npx runs a project's own bin by linking the project into npm's npx cache (keyed by its path) the
 * first time, which runs its prepare script once more. A cache of the test's own keeps that link
 * out of the user's ~/.npm; npm install above used the user's cache, read only (--offline).
 */
const npxEnv: NodeJS.ProcessEnv = { ...env, npm_config_cache: join(work, 'npm-cache') };

/** Runs one README line in the clone, as a shell would. */
function sh(line: string, timeout = 60_000) {
  const run = spawnSync('sh', ['-c', line], { cwd: clone, env: npxEnv, encoding: 'utf8', timeout });
  return { code: run.status, out: run.stdout.trim(), err: run.stderr.trim() };
}

describe('npx revkit after npm install in a fresh copy of the repository', () => {
  let install: { code: number | null; out: string };
  beforeAll(() => {
    // What a clone has: the tracked files (and new ones not ignored), no dist/. The dependencies
    // are copied in so that npm install has nothing to fetch; it still runs the project's lifecycle.
    const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: repo, encoding: 'utf8' }).split('\0').filter(Boolean);
    for (const f of files) if (existsSync(join(repo, f))) cpSync(join(repo, f), join(clone, f));
    expect(existsSync(join(clone, 'dist'))).toBe(false);
    execFileSync('cp', ['-a', join(repo, 'node_modules'), join(clone, 'node_modules')]);
    const run = spawnSync('npm', ['install', '--offline', '--no-audit', '--no-fund'], { cwd: clone, env, encoding: 'utf8', timeout: 600_000 });
    install = { code: run.status, out: `${run.stdout}${run.stderr}` };
  }, 660_000);

  it('npm install builds the CLI', () => {
    expect(install.code, install.out).toBe(0);
    expect(existsSync(join(clone, 'dist', 'cli', 'main.js'))).toBe(true);
  });

  it('the README\'s CLI commands are npx revkit commands, and they run as written', async () => {
    expect(commands.length).toBeGreaterThan(5);
    for (const line of commands) expect(line).toMatch(/^npx revkit /);
    const run = (pattern: RegExp, timeout?: number) => sh(commands.find((l) => pattern.test(l)) as string, timeout);

    // The first call links the project into the npx cache and builds it once more: minutes on a loaded machine.
    expect(run(/--version/, 300_000)).toEqual({ code: 0, out: version, err: '' });
    expect(run(/ put .*--if-absent/)).toMatchObject({ code: 0 });
    expect(JSON.parse(run(/ update /).out)).toMatchObject({ value: { replicas: 3 }, revision: 2 });
    expect(JSON.parse(run(/ get .*--entry/).out)).toMatchObject({ key: 'cfg/a', value: { replicas: 3 }, revision: 2 });
    expect(run(/--if-revision 2/)).toMatchObject({ code: 0 });
    // Again: someone else (the line before) wrote first.
    expect(run(/--if-revision 2/)).toMatchObject({ code: 3 });
    expect(run(/ list /).out.split('\n').map((l) => JSON.parse(l).key)).toEqual(['cfg/a']);

    // watch follows until stopped: read the three changes so far, then stop it.
    const watch = spawn('sh', ['-c', `exec ${commands.find((l) => / watch /.test(l))}`], { cwd: clone, env: npxEnv, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      watch.stdout.on('data', (d) => {
        out += d;
        if (out.split('\n').filter(Boolean).length >= 3) resolve();
      });
      watch.on('exit', (code) => reject(new Error(`watch exited with ${code} after ${JSON.stringify(out)}`)));
    });
    process.kill(-(watch.pid as number), 'SIGTERM');
    expect(out.trim().split('\n').map((l) => JSON.parse(l).revision)).toEqual([1, 2, 3]);
  }, 600_000);
});
