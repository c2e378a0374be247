import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, vi } from 'vitest';
import { main } from '../../src/cli/main.js';

// Spawns the built CLI: run `npx tsc -p tsconfig.build.json` first.
export const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** Time budget of a test that starts many processes one after another (a loaded machine is slow, never wrong). */
export const SPAWNS = 180_000;

const children = new Set<ChildProcess>();
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** This process's environment without any REVKIT_* variable, plus `env`: a test sees only the variables it sets. */
function environment(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REVKIT_')) out[k] = v;
  return { ...out, ...env };
}

export type ServeOutcome =
  | { started: true; url: string; token: string | undefined; stdout: string; stderr: () => string; stop: () => Promise<void> }
  | { started: false; code: number | null; stdout: string; stderr: string };

/**
 * Runs `revkit serve …` until it has either started (its `try: curl` line is
 * out) or exited, whichever comes first: a start that should be refused but is
 * not shows up as `started`, never as a hung test.
 */
export function serve(args: string[], env: Record<string, string> = {}): Promise<ServeOutcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, 'serve', ...args], { env: environment(env), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    let started = false;
    const exited = new Promise<void>((r) => child.on('exit', () => (children.delete(child), r())));
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      if (started || !out.includes('try: curl')) return;
      started = true;
      resolve({
        started: true,
        url: /at (http:\/\/\S+)/.exec(out)?.[1] as string,
        token: /admin token[^:]*: (\S+)$/m.exec(out)?.[1],
        stdout: out,
        stderr: () => err,
        stop: async () => {
          child.kill('SIGTERM');
          await exited;
        },
      });
    });
    // 'close', not 'exit': a process can exit before its output has all been read (seen under load: stderr '').
    child.on('close', (code) => {
      if (!started) resolve({ started: false, code, stdout: out, stderr: err });
    });
  });
}

/** Runs `revkit …` to completion. */
export function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: environment(env), timeout: SPAWNS }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/**
 * Calls `fn` in this process as the CLI would run it: process.exit (how
 * `revkit serve` refuses a start) is caught and its code taken, and what was
 * printed before it is kept (what runs after the caught exit prints is not).
 */
export async function captured<T>(fn: () => T | Promise<T>): Promise<{ value: T | undefined; exitCode: number | undefined; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  let exitCode: number | undefined;
  const exit = vi.spyOn(process, 'exit').mockImplementation((code?: string | number | null) => {
    exitCode ??= Number(code ?? 0);
    throw new Error(`process.exit(${String(code)})`);
  });
  const capture = (into: (text: string) => void) => (chunk: unknown) => {
    if (exitCode === undefined) into(String(chunk));
    return true;
  };
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(capture((t) => (stdout += t)) as typeof process.stdout.write);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(capture((t) => (stderr += t)) as typeof process.stderr.write);
  let value: T | undefined;
  try {
    value = await fn();
  } catch (e) {
    if (exitCode === undefined) throw e;
  } finally {
    exit.mockRestore();
    out.mockRestore();
    err.mockRestore();
  }
  return { value, exitCode, stdout, stderr };
}

/**
 * Runs `revkit …` inside this process: the CLI's own main(), with exactly
 * `env` as its REVKIT_* variables. For the value tables: a process per value
 * costs 0.2-0.5 s of CPU, this a few ms. Runs take turns
 * (each sets process.env and catches this process's output). A run expected to be refused must not be able to start a
 * server here: give it a store that cannot be opened (`nope:`), so that a
 * start wrongly let through ends in exit 1, not in a server.
 */
export function inProcess(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  // One at a time, even when called side by side.
  const run = inProcessQueue.then(() => runInProcess(args, env));
  inProcessQueue = run.then(() => undefined, () => undefined);
  return run;
}
let inProcessQueue: Promise<void> = Promise.resolve();

async function runInProcess(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('REVKIT_')) delete process.env[k];
  Object.assign(process.env, env);
  try {
    const r = await captured(() => main([process.execPath, MAIN, ...args]));
    return { code: r.exitCode ?? (r.value as number), stdout: r.stdout, stderr: r.stderr };
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}
