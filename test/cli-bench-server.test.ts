import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/memory/index.js';
import type { RevkitServer } from '../src/server/index.js';
import { ADMIN, startServer } from './server-helpers.js';
import { tempDir } from './helpers.js';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const dir = tempDir('cli-bench-server');

/** The CLI, without blocking this process (the server under test runs in it). */
function runCli(args: string[], nodeOptions: string[] = []): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeOptions, cli, ...args], { cwd: dir });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('revkit bench --server', () => {
  const servers: RevkitServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  it('measures the server it names over HTTP (not the default store), with its token, and never prints the token', async () => {
    const store = new MemoryStore();
    const { server, url } = await startServer({ store, closeStore: true });
    servers.push(server);
    const r = await runCli(['bench', '--server', url, '--token', ADMIN, '--increments', '200', '--writers', '8', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { store: string; succeeded: number; lost: number };
    expect(out.store).toContain(new URL(url).host);
    expect(r.stdout + r.stderr).not.toContain(ADMIN);
    expect(out.succeeded).toBe(200);
    expect(out.lost).toBe(0);
    // The increments landed on the server's store: --server was honoured.
    const keys = (await store.list({ prefix: 'bench-' })).entries;
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.reduce((sum, e) => sum + Number(e.value), 0)).toBe(200);
    // A token no bearer header can carry is a usage error, named without the token.
    const bad = await runCli(['bench', '--server', url, '--token', 'tok en']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--token/);
  }, 120_000);

  // CI caught two runs started side by side reporting each other's increments as duplicated: both
  // named their keys after the millisecond they started in. Here both start in the same one, always.
  it('two runs against one server in the same millisecond count only their own increments', async () => {
    const store = new MemoryStore();
    const { server, url } = await startServer({ store, closeStore: true });
    servers.push(server);
    const sameMillisecond = ['--import=data:text/javascript,Date.now=()=>1800000000000'];
    const args = ['bench', '--server', url, '--token', ADMIN, '--increments', '100', '--writers', '4', '--json'];
    const runs = await Promise.all([runCli(args, sameMillisecond), runCli(args, sameMillisecond)]);
    for (const r of runs) {
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { succeeded: number; lost: number; duplicated: number };
      expect(out).toMatchObject({ succeeded: 100, lost: 0, duplicated: 0 });
    }
    expect((await store.list({ prefix: 'bench-' })).entries.reduce((sum, e) => sum + Number(e.value), 0)).toBe(200);
  }, 120_000);
});
