import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';

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
    child.on('exit', (code) => {
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
