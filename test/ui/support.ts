// For the browser tests: a real `revkit serve` child process and a headless Chromium.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
export const CHROMIUM = process.env.REVKIT_CHROMIUM ?? '/usr/bin/chromium';
/**
 * Where the console tests put their screenshots: tmp/console/ (ignored by git)
 * unless REVKIT_UPDATE_DOCS=1 asks for the README's copies in docs/console/ to be
 * replaced. A test run leaves the checkout as it found it.
 */
export const SCREENSHOTS = screenshotDir(process.env.REVKIT_UPDATE_DOCS);

export function screenshotDir(updateDocs: string | undefined): string {
  const dir = fileURLToPath(new URL(updateDocs === '1' ? '../../docs/console/' : '../../tmp/console/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)`);
  if (!existsSync(MAIN)) throw new Error('dist/ is missing: run npm run build');
  return chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
}

/** A port free right now, so a restarted server can come back on the same one. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Served { child: ChildProcess; url: string; exited: Promise<number | null>; stop(): Promise<void> }

/** Starts `revkit serve` and resolves once it prints its start-up lines. */
export function serve(args: string[]): Promise<Served> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    child.stdout.on('data', (d) => {
      out += d;
      const url = /at (http:\/\/\S+)/.exec(out)?.[1];
      if (url && out.includes('try: curl')) {
        resolve({ child, url, exited, stop: async () => { if (child.exitCode === null) child.kill('SIGTERM'); await exited; } });
      }
    });
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => reject(new Error(`revkit serve exited with ${code} before starting: ${err}`)));
  });
}

/** Opens the console and signs in with `token`; resolves once the key list has rendered. */
export async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/ui`);
  await page.getByLabel('Bearer token').fill(token);
  await page.getByRole('button', { name: 'Open' }).click();
  await page.locator('[data-testid="key-list"][aria-busy="false"]').waitFor();
}
