import { tmpdir } from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { BackendError, ConflictError, ForbiddenError, UnauthorizedError } from '../src/core/index.js';
import { EXIT, exitCodeFor } from '../src/cli/main.js';
import { tempDir, uniqueName } from './helpers.js';
import { inProcess } from './support/revkit-process.js';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
// Each test spawns the CLI several times; on a loaded 2-core machine one spawn can take seconds.
vi.setConfig({ testTimeout: 120_000 });
const dir = tempDir('cli');

function revkit(store: string, args: string[], input?: string) {
  const run = spawnSync(process.execPath, [cli, '--store', store, ...args], { input: input ?? '', encoding: 'utf8' });
  return { code: run.status, out: run.stdout.trim(), err: run.stderr.trim() };
}

/** The same, as a process that runs beside others (spawnSync runs one at a time). */
function revkitAsync(store: string | undefined, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...(store === undefined ? [] : ['--store', store]), ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

/** The same in this process, through the CLI's own main() (inProcess): for the tables. */
async function revkitHere(store: string | undefined, args: string[], env: Record<string, string> = {}) {
  const r = await inProcess([...(store === undefined ? [] : ['--store', store]), ...args], env);
  return { code: r.code, out: r.stdout.trim(), err: r.stderr.trim() };
}

/** Runs a command that must succeed and returns its JSON output. */
function json(store: string, args: string[], input?: string) {
  const r = revkit(store, args, input);
  expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(0);
  return JSON.parse(r.out);
}

describe('revkit --version', () => {
  it('prints the version from package.json, and exits 0', async () => {
    const { version } = JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8')) as { version: string };
    const flags = ['--version', '-v'];
    const runs = await Promise.all(flags.map((flag) => revkitAsync(undefined, [flag])));
    for (const [i, flag] of flags.entries()) expect(runs[i], flag).toEqual({ code: 0, out: `${version}\n`, err: '' });
  });
});

describe('revkit CLI against a store URL', () => {
  const store = `sqlite:${join(dir, `${uniqueName('cli')}.db`)}`;

  it('put, get, update, list, history, rm: JSON in and out', () => {
    const put = revkit(store, ['put', 'cfg/a', '{"n":1}']);
    expect(put.code).toBe(0);
    const entry = JSON.parse(put.out);
    expect(entry).toMatchObject({ key: 'cfg/a', value: { n: 1 } });
    expect(json(store, ['get', 'cfg/a'])).toEqual({ n: 1 });
    expect(json(store, ['get', 'cfg/a', '--entry'])).toMatchObject({ revision: entry.revision });
    expect(json(store, ['put', 'cfg/b'], '[1,2]').value).toEqual([1, 2]);
    expect(json(store, ['update', 'cfg/a', '--merge', '{"m":2}']).value).toEqual({ n: 1, m: 2 });
    expect(json(store, ['update', 'count', '--incr', '5']).value).toBe(5);
    const listed = revkit(store, ['list', '--prefix', 'cfg/']).out.split('\n').map((l) => JSON.parse(l).key);
    expect(listed).toEqual(['cfg/a', 'cfg/b']);
    const hist = revkit(store, ['history', 'cfg/a']).out.split('\n').map((l) => JSON.parse(l));
    expect(hist.length).toBe(2);
    const rm = revkit(store, ['rm', 'cfg/b']);
    expect(rm.code).toBe(0);
    expect(revkit(store, ['get', 'cfg/b'])).toMatchObject({ code: 4, err: 'revkit: not found: "cfg/b" (no live value)' });
  });

  it('a failed precondition exits 3 with one line naming the current revision', () => {
    const first = json(store, ['put', 'cond', '1']);
    revkit(store, ['put', 'cond', '2']);
    const stale = revkit(store, ['put', 'cond', '3', '--if-revision', String(first.revision)]);
    expect(stale.code).toBe(3);
    expect(stale.err.split('\n')).toHaveLength(1);
    expect(stale.err).toMatch(/^revkit: ERR_CONFLICT: conflict on "cond": expected revision \d+, found revision \d+$/);
    expect(revkit(store, ['put', 'cond', '4', '--if-absent']).code).toBe(3);
    expect(revkit(store, ['rm', 'cond', '--if-revision', String(first.revision)]).code).toBe(3);
    expect(json(store, ['get', 'cond'])).toBe(2);
  });

  it('bad usage exits 2 with one clear line and no stack trace (in this process, through the CLI\'s main(); a process each for four of them)', async () => {
    const cases = [
      ['put', 'k', '{not json'],
      ['put', 'k', '1', '--if-revision', 'abc'],
      ['put', 'k', '1', '--if-revision', '1', '--if-absent'],
      ['put', '', '1'],
      ['update', 'k'],
      ['update', 'k', '--incr', 'x'],
      ['put', 'k', '1', '--bogus'],
      ['get'],
      ['frobnicate'],
      [],
    ];
    const expectUsage = (r: { code: number | null; out: string; err: string }, args: string[]) => {
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.err, args.join(' ')).toMatch(/^revkit: /);
      expect(r.err).not.toMatch(/Usage:|\n\s+at /);
      expect(r.out, args.join(' ')).toBe('');
    };
    for (const args of cases) expectUsage(await revkitHere(store, args), args);
    expect((await revkitHere(store, ['put', 'k', '{not json'])).err).toBe('revkit: the value is not valid JSON: {not json');
    expect((await revkitHere(store, ['update', 'k', '--incr', 'x'])).err).toMatch(/--incr.*'x'.*must be a number/);
    // A process each: a value refused by the command, a flag by commander, an unknown command, no command.
    const picked = [['put', 'k', '{not json'], ['update', 'k', '--incr', 'x'], ['frobnicate'], []];
    const runs = await Promise.all(picked.map((args) => revkitAsync(store, args)));
    for (const [i, args] of picked.entries()) expectUsage(runs[i] as Awaited<(typeof runs)[0]>, args);
    expect(runs[0]?.err.trim()).toBe('revkit: the value is not valid JSON: {not json');
    expect(runs[1]?.err).toMatch(/--incr.*'x'.*must be a number/);
  });

  it('not found is exit 4, distinct from an outage (exit 1): get of a missing key, rm with nothing to delete', () => {
    expect(revkit(store, ['get', 'never/written'])).toMatchObject({ code: 4, out: '', err: 'revkit: not found: "never/written" (no live value)' });
    expect(revkit(store, ['rm', 'never/written'])).toMatchObject({ code: 4, out: '', err: 'revkit: not found: "never/written" (nothing to delete)' });
    json(store, ['put', 'gone', '1']);
    expect(revkit(store, ['rm', 'gone']).code).toBe(0);
    expect(revkit(store, ['rm', 'gone'])).toMatchObject({ code: 4, err: 'revkit: not found: "gone" (nothing to delete)' });
    expect(revkit(store, ['get', 'gone']).code).toBe(4);
    expect(revkit('sqlite:/dev/null/x/y.db', ['get', 'k']).code).toBe(1);
  });

  it('update --incr adds 1 when no amount is given, n when one is', () => {
    expect(json(store, ['update', 'incr/a', '--incr']).value).toBe(1);
    expect(json(store, ['update', 'incr/a', '--incr']).value).toBe(2);
    expect(json(store, ['update', 'incr/a', '--incr', '5']).value).toBe(7);
    expect(json(store, ['update', 'incr/a', '--incr', '-2.5']).value).toBe(4.5);
  });

  it('watch with both --key and --prefix is refused (exit 2), not one of them ignored (review round 12)', async () => {
    const r = await revkitAsync(store, ['watch', '--key', 'a', '--prefix', 'b', '--from-revision', '0']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^revkit: ERR_INVALID_ARGUMENT: watch\(\) takes a key or a prefix, not both/);
  });

  it('an unknown store URL is one line and exit 2; an unreachable one exit 1', async () => {
    const [unknown, broken] = await Promise.all([revkitAsync('mongodb://x', ['get', 'k']), revkitAsync('sqlite:/dev/null/x/y.db', ['get', 'k'])]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/^revkit: ERR_INVALID_ARGUMENT: unknown store URL/);
    expect(broken.code).toBe(1);
    expect(broken.err).toMatch(/^revkit: ERR_BACKEND: cannot open SQLite database/);
  });
});

describe('exit codes and messages', () => {
  it('an authentication failure is one line that says what to do', () => {
    const unauthorized = exitCodeFor(new UnauthorizedError());
    expect(unauthorized.code).toBe(EXIT.error);
    expect(unauthorized.message).toMatch(/^ERR_UNAUTHORIZED: .*--token or REVKIT_TOKEN/);
    const forbidden = exitCodeFor(new ForbiddenError('forbidden: write on "cfg/" needed', 'write on cfg/'));
    expect(forbidden.code).toBe(EXIT.error);
    expect(forbidden.message).toMatch(/^ERR_FORBIDDEN: forbidden: write on "cfg\/" needed \(the token lacks the scope/);
    for (const m of [unauthorized.message, forbidden.message]) expect(m).not.toContain('\n');
  });

  it('EXIT is the documented table: 0 ok, 1 error, 2 usage, 3 precondition failed, 4 not found, 5 lock lost', () => {
    expect(EXIT).toEqual({ ok: 0, error: 1, usage: 2, precondition: 3, notFound: 4, lockLost: 5 });
    expect(exitCodeFor(new ConflictError([{ key: 'k', expected: 1, actual: 2 }])).code).toBe(3);
    expect(exitCodeFor(new BackendError('down', { transient: true })).code).toBe(1);
  });
});

describe('flags that contradict each other are refused (exit 2), never quietly dropped', () => {
  const BOTH = [['--store', 'memory:', '--server', 'http://127.0.0.1:9', 'get', 'k'], ['bench', '--server', 'http://127.0.0.1:9', '--store', 'memory:'], ['check', '--store', 'memory:', '--server', 'http://127.0.0.1:9']];
  const TOKEN_ALONE = [['--store', 'memory:', '--token', 'a-token-of-some-length', 'get', 'k'], ['bench', '--store', 'memory:', '--token', 't0ken'], ['check', '--token', 't0ken']];
  const expectBoth = (r: { code: number | null; err: string }, args: string[]) => expect({ code: r.code, err: r.err.trim() }, args.join(' ')).toEqual({ code: 2, err: 'revkit: give --store or --server, not both' });
  const expectTokenAlone = (r: { code: number | null; err: string }, args: string[]) => {
    expect(r.code, args.join(' ')).toBe(2);
    expect(r.err).toMatch(/^revkit: --token goes with --server/);
    expect(r.err).not.toContain('t0ken');
  };

  it('--store with --server; --token without --server — for every command, check and bench included (in this process, through the CLI\'s main())', async () => {
    // With REVKIT_STORE, REVKIT_SERVER and REVKIT_TOKEN set empty, as in the processes below.
    const env = { REVKIT_STORE: '', REVKIT_SERVER: '', REVKIT_TOKEN: '' };
    for (const args of BOTH) expectBoth(await revkitHere(undefined, args, env), args);
    for (const args of TOKEN_ALONE) expectTokenAlone(await revkitHere(undefined, args, env), args);
  });

  it('the same, a process each for one of each', async () => {
    const options = { cwd: tmpdir(), env: { ...process.env, REVKIT_STORE: '', REVKIT_SERVER: '', REVKIT_TOKEN: '' } };
    const [both, alone] = await Promise.all([revkitAsync(undefined, BOTH[2] as string[], options), revkitAsync(undefined, TOKEN_ALONE[1] as string[], options)]);
    expectBoth(both, BOTH[2] as string[]);
    expectTokenAlone(alone, TOKEN_ALONE[1] as string[]);
  });
});

describe('revkit --help', () => {
  it('points at nothing a user does not have (no design-document references; in this process, and --help and serve --help in a process each)', async () => {
    const expectHelp = (r: { code: number | null; out: string }, args: string[]) => {
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.out).toMatch(/Usage: revkit/);
      expect(r.out).not.toMatch(/DESIGN|shared\/|§/);
    };
    const all = [['--help'], ['serve', '--help'], ['check', '--help'], ['bench', '--help']];
    for (const args of all) expectHelp(await revkitHere('memory:', args), args);
    const spawned = all.slice(0, 2);
    const runs = await Promise.all(spawned.map((args) => revkitAsync('memory:', args)));
    for (const [i, args] of spawned.entries()) expectHelp(runs[i] as Awaited<(typeof runs)[0]>, args);
  });
});

describe('revkit bench', () => {
  it('reports goodput and 0 lost on a real store; exits 1 when the canary loses updates', async () => {
    const [good, bad] = await Promise.all([
      revkitAsync(`sqlite:${join(dir, `${uniqueName('bench')}.db`)}`, ['bench', '--increments', '400', '--writers', '16', '--json']),
      revkitAsync('canary:memory:', ['bench', '--increments', '400', '--writers', '16', '--no-combine', '--json']),
    ]);
    expect(good.code, good.err).toBe(0);
    expect(JSON.parse(good.out)).toMatchObject({ succeeded: 400, lost: 0, duplicated: 0, failed: 0 });
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.out).lost).toBeGreaterThan(0);
  });
});
