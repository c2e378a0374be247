// End-to-end tests of the web console in headless Chromium against a real
// `revkit serve` on SQLite (a child process). Every wait is on a condition in
// the page or the store, never on time. Screenshots go to tmp/console/ (ignored);
// REVKIT_UPDATE_DOCS=1 npx vitest run test/ui/console.test.ts replaces the README's in docs/console/.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/memory/index.js';
import { open } from '../../src/open.js';
import { startServer } from '../server-helpers.js';
import { freePort, launchBrowser, SCREENSHOTS, serve, signIn, type Served } from './support.js';

const ADMIN = 'console-admin-token-0123456789';
const VIEWER = 'console-viewer-token-0123456789';
const APP_WRITER = 'console-app-writer-token-012345';
const WAIT = { timeout: 30_000 };

const dir = mkdtempSync(join(tmpdir(), 'revkit-console-'));
const storeUrl = `sqlite:${join(dir, 'console.db')}`;
const tokensFile = join(dir, 'tokens.json');
writeFileSync(tokensFile, JSON.stringify([
  { name: 'admin', token: ADMIN, scopes: [{ prefix: '', access: 'admin' }] },
  { name: 'viewer', token: VIEWER, scopes: [{ prefix: '', access: 'read' }] },
  { name: 'app-writer', token: APP_WRITER, scopes: [{ prefix: 'app/', access: 'write' }] },
]));

let browser: Browser;
let server: Served;
let port: number;
let base: string;
const pages: Page[] = [];

const start = async () => {
  server = await serve(['--store', storeUrl, '--port', String(port), '--tokens', tokensFile]);
  base = server.url;
};

async function api(method: string, key: string, body?: unknown, headers: Record<string, string> = {}, ttlMs?: number): Promise<Response> {
  return fetch(`${base}/v1/kv/?key=${encodeURIComponent(key)}${ttlMs ? `&ttlMs=${ttlMs}` : ''}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'revkit-writer': 'script', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}
const valueOf = async (key: string) => (await api('GET', key)).json();
const revisionOf = async (key: string) => Number(((await api('GET', key)).headers.get('etag') ?? '').replace(/"/g, ''));

async function newPage(width = 1280, height = 860): Promise<Page> {
  const page = await browser.newPage({ viewport: { width, height } });
  page.setDefaultTimeout(WAIT.timeout);
  pages.push(page);
  return page;
}

async function openKey(page: Page, key: string): Promise<void> {
  const parts = key.split('/');
  for (const folder of parts.slice(0, -1)) await page.getByRole('button', { name: `Folder ${folder}/`, exact: true }).click();
  await page.locator(`button.row.key[data-key="${key}"]`).click();
  await page.getByRole('heading', { name: `Key ${key}` }).waitFor();
}

const editor = (page: Page) => page.getByLabel('Value (JSON)');

beforeAll(async () => {
  port = await freePort();
  // Enough keys for three pages of one folder, written through the library into the SQLite file.
  const store = await open(storeUrl);
  for (let i = 0; i < 120; i++) await store.put(`many/item-${String(i).padStart(3, '0')}`, { i });
  await store.close();
  await start();
  browser = await launchBrowser();
}, 120_000);

afterEach(async () => {
  for (const p of pages.splice(0)) await p.close();
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe('web console (headless Chromium, revkit serve on SQLite)', { timeout: 180_000 }, () => {
  it('creates a key with If-None-Match: *, shows JSON syntax errors before saving, and saves an edit with If-Match', async () => {
    const page = await newPage();
    await signIn(page, base, ADMIN);
    await page.getByRole('button', { name: 'New key' }).click();
    await page.getByLabel('Key', { exact: true }).fill('app/config');
    await page.getByLabel('Value (JSON)').fill('{"color": "red", "size": 1}');
    await page.getByRole('button', { name: /^Create/ }).click();
    await page.getByRole('heading', { name: 'Key app/config' }).waitFor();
    expect(await valueOf('app/config')).toEqual({ color: 'red', size: 1 });
    await expect.poll(() => page.getByTestId('writer').textContent(), WAIT).toBe('console-admin');

    // Creating it again is refused by the server (412), nothing is overwritten.
    await page.getByRole('button', { name: 'New key' }).click();
    await page.getByLabel('Key', { exact: true }).fill('app/config');
    await page.getByLabel('Value (JSON)').fill('{"color": "green"}');
    await page.getByRole('button', { name: /^Create/ }).click();
    await page.getByText('Not created: app/config already exists').waitFor();
    expect(await valueOf('app/config')).toEqual({ color: 'red', size: 1 });
    await page.getByRole('button', { name: 'Open app/config' }).click();

    // A syntax error is shown with its place, and Save stays disabled.
    await editor(page).fill('{"color": "red", "size": 2,}');
    await page.getByTestId('json-error').filter({ hasText: /JSON syntax error at line 1, column \d+/ }).waitFor();
    expect(await page.getByRole('button', { name: /^Save/ }).isDisabled()).toBe(true);
    // On a later line too, for errors the browser's own message gives no position for (Chromium: "Unexpected token").
    await editor(page).fill('{\n  "color": "red",\n  "size": ,\n  "shape": "round"\n}');
    const jsonError = page.getByTestId('json-error');
    await jsonError.filter({ hasText: /^JSON syntax error at line 3, column 11: .*found ','/ }).waitFor();
    expect(await jsonError.getAttribute('role')).toBe('alert');
    expect(await editor(page).getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByRole('button', { name: /^Save/ }).isDisabled()).toBe(true);
    await editor(page).fill('{\n  "color": "red",\n  "size": 2\n  "shape": "round"\n}');
    await jsonError.filter({ hasText: /^JSON syntax error at line 4, column 3: ',' or '\}' was expected after a member/ }).waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'json-error.png') });

    const before = await revisionOf('app/config');
    await editor(page).fill('{"color": "red", "size": 2}');
    await page.getByRole('button', { name: `Save (If-Match "${before}")` }).click();
    await page.getByText(/^Saved as revision \d+\.$/).waitFor();
    expect(await valueOf('app/config')).toEqual({ color: 'red', size: 2 });
    expect(await revisionOf('app/config')).toBeGreaterThan(before);
    await expect.poll(() => page.getByTestId('revision').textContent(), WAIT).toBe(String(await revisionOf('app/config')));
    await page.screenshot({ path: join(SCREENSHOTS, 'key.png') });
  });

  it('a conflicting edit made through the API meanwhile: the save gets 412, the console shows the diff and re-applies the edit on top', async () => {
    await api('PUT', 'app/flags', { beta: false, limit: 10, owner: 'ops' });
    const page = await newPage();
    await signIn(page, base, ADMIN);
    await openKey(page, 'app/flags');
    const seen = await revisionOf('app/flags');
    await editor(page).fill(JSON.stringify({ beta: true, limit: 10, owner: 'ops' }, null, 2));

    // Someone else changes another field meanwhile.
    const other = await api('PUT', 'app/flags', { beta: false, limit: 20, owner: 'ops' }, { 'if-match': `"${seen}"`, 'revkit-writer': 'deployer' });
    expect(other.status).toBe(200);
    const theirs = await revisionOf('app/flags');

    await page.getByRole('button', { name: `Save (If-Match "${seen}")` }).click();
    const conflict = page.getByTestId('conflict');
    await conflict.waitFor();
    await conflict.getByTestId('version-now-meta').filter({ hasText: `Revision ${theirs} · by deployer` }).waitFor();
    const mine = await conflict.getByTestId('diff-mine').locator('pre').innerText();
    expect(mine).toMatch(/removed:\s*−\s*"beta": false/);
    expect(mine).toMatch(/added:\s*\+\s*"beta": true/);
    const result = await conflict.getByTestId('diff-result').locator('pre').innerText();
    expect(result).toMatch(/removed:\s*−\s*"beta": false[\s\S]*added:\s*\+\s*"beta": true/);
    expect(result).toMatch(/unchanged:\s*"limit": 20/);
    expect(await valueOf('app/flags')).toEqual({ beta: false, limit: 20, owner: 'ops' });

    await page.getByRole('button', { name: `Re-apply my edit on top of revision ${theirs}` }).click();
    await page.getByText(/^Re-applied your edit on top; saved as revision \d+\.$/).waitFor();
    // Both changes survive: theirs (limit 20) and the user's (beta true).
    expect(await valueOf('app/flags')).toEqual({ beta: true, limit: 20, owner: 'ops' });
    expect(await revisionOf('app/flags')).toBeGreaterThan(theirs);

    // Discarding instead leaves the other writer's value alone.
    const now = await revisionOf('app/flags');
    await editor(page).fill('{"beta": false}');
    await api('PUT', 'app/flags', { beta: true, limit: 30, owner: 'ops' }, { 'if-match': `"${now}"` });
    await page.getByRole('button', { name: `Save (If-Match "${now}")` }).click();
    await conflict.waitFor();
    await page.getByRole('button', { name: 'Discard my edit' }).click();
    await page.getByText('Your edit was discarded').waitFor();
    expect(await valueOf('app/flags')).toEqual({ beta: true, limit: 30, owner: 'ops' });
    expect(JSON.parse(await editor(page).inputValue())).toEqual({ beta: true, limit: 30, owner: 'ops' });

    // Deleted meanwhile: the diff is against nothing, and the user's whole value can be written back (If-Match: the deletion).
    const last = await revisionOf('app/flags');
    await expect.poll(() => page.getByTestId('revision').textContent(), WAIT).toBe(String(last));
    await editor(page).fill('{"beta": true, "limit": 1}');
    await api('DELETE', 'app/flags');
    await page.getByRole('button', { name: `Save (If-Match "${last}")` }).click();
    await conflict.waitFor();
    await conflict.getByTestId('version-now-meta').filter({ hasText: /^Deleted at revision \d+ · by script/ }).waitFor();
    await page.getByRole('button', { name: /^Write my value again \(deleted at revision \d+\)$/ }).click();
    await page.getByText(/saved as revision \d+\.$/).waitFor();
    expect(await valueOf('app/flags')).toEqual({ beta: true, limit: 1 });
  });

  it('a conflict shows three versions with their revisions and writers, follows the key while shown, and writes only over what it shows', async () => {
    await api('PUT', 'app/three', { color: 'red', size: 1, owner: 'ops' });
    const start = await revisionOf('app/three');
    const page = await newPage();
    const cspViolations: string[] = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
    await signIn(page, base, ADMIN);
    await openKey(page, 'app/three');
    await expect.poll(() => page.getByTestId('revision').textContent(), WAIT).toBe(String(start));
    await editor(page).fill(JSON.stringify({ color: 'blue', size: 1, owner: 'ops' }, null, 2));

    // Another writer, through the HTTP API with its own Revkit-Writer, changes another member meanwhile.
    expect((await api('PUT', 'app/three', { color: 'red', size: 2, owner: 'ops' }, { 'if-match': `"${start}"`, 'revkit-writer': 'deployer' })).status).toBe(200);
    const theirs = await revisionOf('app/three');
    await page.getByRole('button', { name: `Save (If-Match "${start}")` }).click();
    const conflict = page.getByTestId('conflict');
    const meta = (v: 'base' | 'now' | 'mine') => conflict.getByTestId(`version-${v}-meta`);
    const shown = async (v: 'base' | 'now' | 'mine') => JSON.parse(await conflict.getByTestId(`version-${v}`).locator('pre').innerText());
    const changes = (d: 'theirs' | 'mine' | 'result') => conflict.getByTestId(`diff-${d}`).locator('pre').innerText();
    await meta('now').filter({ hasText: `Revision ${theirs} · by deployer · ` }).waitFor();

    // The three versions, each under its heading with its revision, writer and time.
    for (const name of ['What you started from', 'What is stored now', 'What you typed']) await conflict.getByRole('heading', { name, exact: true }).waitFor();
    expect(await meta('base').textContent()).toMatch(new RegExp(`^Revision ${start} · by script · \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC$`));
    expect(await meta('now').textContent()).toMatch(new RegExp(`^Revision ${theirs} · by deployer · \\d{4}-`));
    expect(await meta('mine').textContent()).toBe('Not saved · would be written by console-admin');
    expect(await shown('base')).toEqual({ color: 'red', size: 1, owner: 'ops' });
    expect(await shown('now')).toEqual({ color: 'red', size: 2, owner: 'ops' });
    expect(await shown('mine')).toEqual({ color: 'blue', size: 1, owner: 'ops' });
    // Whose change is whose: the other writer's is the size, the user's the colour.
    await conflict.getByRole('heading', { name: `What the other writer changed (revision ${start} → ${theirs})` }).waitFor();
    const theirChange = await changes('theirs');
    expect(theirChange).toMatch(/removed:\s*−\s*"size": 1,[\s\S]*added:\s*\+\s*"size": 2,/);
    expect(theirChange).toMatch(/unchanged:\s*"color": "red"/);
    const myChange = await changes('mine');
    expect(myChange).toMatch(/removed:\s*−\s*"color": "red",[\s\S]*added:\s*\+\s*"color": "blue",/);
    expect(myChange).toMatch(/unchanged:\s*"size": 1/);
    expect(await conflict.getByRole('figure').first().getByText(`revision ${theirs} (stored now, by deployer)`).count()).toBe(1);
    await page.screenshot({ path: join(SCREENSHOTS, 'conflict.png'), fullPage: true });
    // On a phone the three versions stack; nothing is wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await expect.poll(() => page.evaluate(() => document.documentElement.scrollWidth), WAIT).toBeLessThanOrEqual(390);
    await page.setViewportSize({ width: 1280, height: 860 });

    // A third writer changes it while the conflict is shown: "stored now" and its metadata follow, the rest stays.
    await conflict.getByTestId('conflict-status').filter({ hasText: /^Watching this key/ }).waitFor();
    expect((await api('PUT', 'app/three', { color: 'red', size: 2, owner: 'sre' }, { 'if-match': `"${theirs}"`, 'revkit-writer': 'auditor' })).status).toBe(200);
    const third = await revisionOf('app/three');
    await meta('now').filter({ hasText: `Revision ${third} · by auditor · ` }).waitFor();
    expect(await shown('now')).toEqual({ color: 'red', size: 2, owner: 'sre' });
    expect(await shown('base')).toEqual({ color: 'red', size: 1, owner: 'ops' });
    expect(await meta('base').textContent()).toMatch(new RegExp(`^Revision ${start} · by script`));
    expect(await changes('theirs')).toMatch(/added:\s*\+\s*"owner": "sre"/);
    expect(await conflict.getByTestId('conflict-status').textContent()).toContain(`Refreshed: what is stored now is revision ${third}, by auditor.`);
    const reapplyButton = conflict.getByRole('button', { name: /^Re-apply my edit on top of revision \d+$/ });
    expect(await reapplyButton.textContent()).toBe(`Re-apply my edit on top of revision ${third}`);

    // Re-applied over the newest revision (If-Match: it), every writer's change kept.
    await reapplyButton.click();
    await page.getByText(/^Re-applied your edit on top; saved as revision \d+\.$/).waitFor();
    expect(await valueOf('app/three')).toEqual({ color: 'blue', size: 2, owner: 'sre' });
    expect(await revisionOf('app/three')).toBe(third + 1);
    expect((await api('GET', 'app/three')).headers.get('revkit-writer')).toBe('console-admin');

    // A re-apply that meets yet another change is refused: the newest version is shown, nothing overwritten.
    const saved = third + 1;
    await expect.poll(() => page.getByTestId('revision').textContent(), WAIT).toBe(String(saved));
    await editor(page).fill(JSON.stringify({ color: 'blue', size: 2, owner: 'sre', tag: 'mine' }));
    await api('PUT', 'app/three', { color: 'blue', size: 3, owner: 'sre' }, { 'revkit-writer': 'deployer' });
    await page.getByRole('button', { name: `Save (If-Match "${saved}")` }).click();
    const fourth = await revisionOf('app/three');
    await meta('now').filter({ hasText: `Revision ${fourth} · by deployer` }).waitFor();
    // The re-apply's PUT is held back until yet another writer has changed the key.
    let raced: number | null = null;
    await page.route((url) => url.pathname === '/v1/kv/', async (route) => {
      if (route.request().method() === 'PUT' && raced === null) {
        await api('PUT', 'app/three', { color: 'green', size: 3, owner: 'sre' }, { 'revkit-writer': 'racer' });
        raced = await revisionOf('app/three');
      }
      await route.continue();
    });
    await conflict.getByRole('button', { name: `Re-apply my edit on top of revision ${fourth}` }).click();
    await conflict.getByRole('alert').filter({ hasText: /^Not saved: the key changed again before your write arrived/ }).waitFor();
    await page.unroute((url) => url.pathname === '/v1/kv/');
    expect(raced).toBe(fourth + 1);
    expect(await valueOf('app/three')).toEqual({ color: 'green', size: 3, owner: 'sre' });
    await meta('now').filter({ hasText: `Revision ${raced} · by racer` }).waitFor();
    expect(await shown('now')).toEqual({ color: 'green', size: 3, owner: 'sre' });
    expect(await shown('mine')).toEqual({ color: 'blue', size: 2, owner: 'sre', tag: 'mine' });
    expect(await meta('base').textContent()).toMatch(new RegExp(`^Revision ${saved} · by console-admin`));
    await conflict.getByRole('button', { name: `Re-apply my edit on top of revision ${raced}` }).click();
    await page.getByText(/^Re-applied your edit on top; saved as revision \d+\.$/).waitFor();
    expect(await valueOf('app/three')).toEqual({ color: 'green', size: 3, owner: 'sre', tag: 'mine' });
    expect(await revisionOf('app/three')).toBe(fourth + 2);

    // Deleted from outside while the conflict is shown: "stored now" says so, with the deletion's revision and writer.
    const last = fourth + 2;
    await expect.poll(() => page.getByTestId('revision').textContent(), WAIT).toBe(String(last));
    await editor(page).fill(JSON.stringify({ color: 'white' }));
    await api('PUT', 'app/three', { color: 'black', size: 3, owner: 'sre', tag: 'mine' }, { 'revkit-writer': 'deployer' });
    await page.getByRole('button', { name: `Save (If-Match "${last}")` }).click();
    await meta('now').filter({ hasText: `Revision ${last + 1} · by deployer` }).waitFor();
    await conflict.getByTestId('conflict-status').filter({ hasText: /^Watching this key/ }).waitFor();
    const removed = await api('DELETE', 'app/three', undefined, { 'revkit-writer': 'cleaner' });
    expect(removed.status).toBe(200);
    const deletedAt = ((await removed.json()) as { revision: number }).revision;
    await meta('now').filter({ hasText: new RegExp(`^Deleted at revision ${deletedAt} · by cleaner · \\d{4}-`) }).waitFor();
    expect(await conflict.getByTestId('version-now').locator('pre').innerText()).toBe(`(deleted at revision ${deletedAt})`);
    await conflict.getByRole('heading', { name: `What the other writer changed (deleted it at revision ${deletedAt})` }).waitFor();
    await conflict.getByRole('button', { name: `Write my value again (deleted at revision ${deletedAt})` }).click();
    await page.getByText(/^Wrote your value again; saved as revision \d+\.$/).waitFor();
    expect(await valueOf('app/three')).toEqual({ color: 'white' });
    expect(await revisionOf('app/three')).toBe(deletedAt + 1);
    expect(cspViolations).toEqual([]);
  });

  it('history: newest first with tombstones, a diff between two revisions, revert as a guarded write; delete is guarded', async () => {
    await api('PUT', 'app/plan', { tier: 'free' });
    await api('PUT', 'app/plan', { tier: 'pro' });
    await api('DELETE', 'app/plan');
    await api('PUT', 'app/plan', { tier: 'team' });
    const page = await newPage();
    await signIn(page, base, ADMIN);
    await openKey(page, 'app/plan');
    await page.getByRole('tab', { name: 'History' }).click();
    const rows = page.locator('[data-testid="history"] tbody tr');
    await expect.poll(() => rows.count(), WAIT).toBe(4);
    const revisions = (await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.getAttribute('data-revision')))));
    expect(revisions).toEqual([...revisions].sort((a, b) => b - a));
    expect(await rows.evaluateAll((trs) => trs.map((tr) => tr.children[1]?.textContent))).toEqual(['created', 'deleted', 'updated', 'created']);
    const [team, deleted, pro, free] = revisions as [number, number, number, number];
    expect(deleted).toBeLessThan(team);

    await page.getByLabel(`Compare from revision ${free}`).check();
    await page.getByLabel(`Compare to revision ${pro}`).check();
    const diff = page.locator('#history-diff pre');
    await expect.poll(() => diff.innerText(), WAIT).toMatch(/removed:\s*−\s*"tier": "free"[\s\S]*added:\s*\+\s*"tier": "pro"/);
    await page.screenshot({ path: join(SCREENSHOTS, 'history.png'), fullPage: true });

    await page.getByRole('button', { name: `Revert to revision ${pro}` }).click();
    await page.getByText(/^Reverted: saved as revision \d+\.$/).waitFor();
    expect(await valueOf('app/plan')).toEqual({ tier: 'pro' });
    expect(await revisionOf('app/plan')).toBe(team + 1);

    // A revert over a change made meanwhile is refused and nothing is written.
    await page.getByRole('tab', { name: 'History' }).click();
    await expect.poll(() => rows.count(), WAIT).toBe(5);
    await api('PUT', 'app/plan', { tier: 'enterprise' });
    await page.getByRole('button', { name: `Revert to revision ${free}` }).click();
    await page.getByText(/^Not reverted: the key changed meanwhile/).waitFor();
    expect(await valueOf('app/plan')).toEqual({ tier: 'enterprise' });

    // Delete asks first, then sends If-Match; a stale delete is refused.
    await page.getByRole('tab', { name: 'Value' }).click();
    const at = await revisionOf('app/plan');
    await expect.poll(() => page.getByTestId('revision').textContent(), WAIT).toBe(String(at));
    // Escape closes the confirmation and deletes nothing.
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('dialog').waitFor();
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'hidden' });
    expect(await revisionOf('app/plan')).toBe(at);
    await api('PUT', 'app/plan', { tier: 'changed' });
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByText(/^Not deleted: the key changed/).waitFor();
    expect(await valueOf('app/plan')).toEqual({ tier: 'changed' });
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByText(/^Deleted at revision \d+\.$/).waitFor();
    expect((await api('GET', 'app/plan')).status).toBe(404);

    // A deleted key comes back from its history, guarded by the deletion's revision.
    await page.getByRole('tab', { name: 'History' }).click();
    await expect.poll(() => rows.first().innerText(), WAIT).toMatch(/deleted/);
    const changed = Number(await rows.nth(1).getAttribute('data-revision'));
    await page.getByRole('button', { name: `Revert to revision ${changed}` }).click();
    await page.getByText(/^Reverted: saved as revision \d+\.$/).waitFor();
    expect(await valueOf('app/plan')).toEqual({ tier: 'changed' });
  });

  it('the live tail pauses and counts, filters, and resumes across a server restart without a gap', async () => {
    const page = await newPage();
    await signIn(page, base, ADMIN);
    await page.getByRole('tab', { name: 'Live tail' }).click();
    await page.getByLabel('Prefix').fill('live/');
    await page.getByRole('button', { name: 'Start' }).click();
    const status = page.getByTestId('live-status');
    await status.filter({ hasText: /^Live under "live\/"/ }).waitFor();
    const shownKeys = () => page.locator('[data-testid="events"] li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-key')).reverse());

    for (const i of [1, 2, 3]) await api('PUT', `live/${i}`, { i });
    await expect.poll(shownKeys, WAIT).toEqual(['live/1', 'live/2', 'live/3']);

    await page.getByRole('button', { name: 'Pause' }).click();
    await api('PUT', 'live/4', { i: 4 });
    await api('PUT', 'other/not-watched', { i: 0 });
    await page.getByTestId('held-count').filter({ hasText: 'Paused: 1 new change waiting.' }).waitFor();
    expect(await shownKeys()).toEqual(['live/1', 'live/2', 'live/3']);
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(shownKeys, WAIT).toEqual(['live/1', 'live/2', 'live/3', 'live/4']);

    // The server goes away; changes made while it is down (straight into the SQLite file) must still arrive.
    await server.stop();
    await status.filter({ hasText: /^Connection lost/ }).waitFor();
    const store = await open(storeUrl);
    await store.put('live/5', { i: 5 });
    await store.delete('live/1');
    await store.put('live/6', { i: 6 });
    await store.close();
    await start();
    await status.filter({ hasText: /resumed after \d+ reconnects? from event id \d+\.\d+\.$/ }).waitFor();
    await api('PUT', 'live/7', { i: 7 });
    const expected = ['live/1', 'live/2', 'live/3', 'live/4', 'live/5', 'live/1', 'live/6', 'live/7'];
    await expect.poll(shownKeys, WAIT).toEqual(expected);
    const ids = await page.locator('[data-testid="events"] li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-id')).reverse());
    expect(new Set(ids).size).toBe(expected.length);
    expect(await page.locator('[data-testid="events"] li.delete').count()).toBe(1);
    await page.screenshot({ path: join(SCREENSHOTS, 'live.png') });

    await page.getByLabel(/^Filter shown changes/).fill('live/6');
    await expect.poll(shownKeys, WAIT).toEqual(['live/6']);
  });

  it('pages through a folder, searches by prefix, and is operable with the keyboard', async () => {
    const page = await newPage();
    await signIn(page, base, ADMIN);
    // Enter on a folder opens it and puts the focus in its search box.
    await page.getByRole('button', { name: 'Folder many/' }).focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate(() => document.activeElement?.id), WAIT).toBe('key-search');
    const keys = () => page.locator('button.row.key').evaluateAll((bs) => bs.map((b) => b.getAttribute('data-key')));
    await expect.poll(async () => (await keys())[0], WAIT).toBe('many/item-000');
    expect(await keys()).toHaveLength(50);
    await page.getByRole('button', { name: 'Next →' }).click();
    await expect.poll(async () => (await keys())[0], WAIT).toBe('many/item-050');
    await page.getByRole('button', { name: 'Next →' }).click();
    await expect.poll(async () => (await keys()).length, WAIT).toBe(20);
    expect(await page.getByRole('button', { name: 'Next →' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: '← Previous' }).click();
    await expect.poll(async () => (await keys())[0], WAIT).toBe('many/item-050');

    await page.getByLabel('Keys in this folder starting with').fill('item-11');
    await expect.poll(keys, WAIT).toEqual(Array.from({ length: 10 }, (_, i) => `many/item-11${i}`));

    // Keyboard only: arrows move through the rows, Enter opens a key.
    await page.getByLabel('Keys in this folder starting with').press('Tab');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-key'))).toBe('many/item-112');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Key many/item-112' }).waitFor();

    // Every control has an accessible name.
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, textarea, select')]
      .filter((el) => !(el as HTMLElement).hidden && (el as HTMLElement).offsetParent !== null)
      .filter((el) => {
        const labelled = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (el as HTMLInputElement).labels?.length;
        return !labelled && !(el.textContent ?? '').trim();
      }).map((el) => el.outerHTML.slice(0, 80)));
    expect(unnamed).toEqual([]);
  });

  it('a read-only token gets a read-only console, usable at 390 px', async () => {
    await api('PUT', 'app/readme', { hello: 'world' });
    const page = await newPage(390, 844);
    await signIn(page, base, VIEWER);
    await expect.poll(() => page.getByTestId('access').textContent(), WAIT).toBe('read-only');
    expect(await page.getByRole('button', { name: 'New key' }).count()).toBe(0);
    await openKey(page, 'app/readme');
    expect(await editor(page).getAttribute('readonly')).not.toBeNull();
    expect(JSON.parse(await editor(page).inputValue())).toEqual({ hello: 'world' });
    expect(await page.getByRole('button', { name: /^Save/ }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Delete…' }).count()).toBe(0);
    await page.getByRole('tab', { name: 'History' }).click();
    await page.getByTestId('history').waitFor();
    expect(await page.getByRole('button', { name: /^Revert/ }).count()).toBe(0);
    // Nothing is wider than the screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(SCREENSHOTS, 'read-only-390.png'), fullPage: true });
    await page.getByRole('tab', { name: 'Live tail' }).click();
    await page.getByRole('button', { name: 'Start' }).click();
    await page.getByTestId('live-status').filter({ hasText: /^Live under/ }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    // The server agrees: this token cannot write.
    const denied = await fetch(`${base}/v1/kv/?key=app%2Freadme`, { method: 'PUT', headers: { authorization: `Bearer ${VIEWER}`, 'content-type': 'application/json' }, body: '1' });
    expect(denied.status).toBe(403);
  });

  it('a token scoped to a prefix sees that prefix as its root and can write there', async () => {
    await api('PUT', 'app/scoped', { v: 1 });
    await api('PUT', 'app/session', { user: 'u1' }, {}, 600_000);
    const page = await newPage();
    await page.goto(`${base}/ui`);
    await page.getByLabel('Bearer token').fill(APP_WRITER);
    await page.getByRole('button', { name: 'Open' }).click();
    await expect.poll(() => page.getByTestId('access').textContent(), WAIT).toBe('write app/');
    const rows = page.locator('[data-testid="key-list"] button.row');
    await expect.poll(() => rows.evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-label'))), WAIT).toEqual(['Folder app/']);
    await openKey(page, 'app/session');
    await expect.poll(() => page.getByTestId('expires').textContent(), WAIT).toMatch(/^in (\d+ s|\d+ min) \(\d{4}-/);
    await page.getByText('Saving without a TTL makes the key permanent.').waitFor();
    await page.locator('button.row.key[data-key="app/scoped"]').click(); // already inside app/
    await page.getByRole('heading', { name: 'Key app/scoped' }).waitFor();
    const at = await revisionOf('app/scoped');
    await editor(page).fill('{"v": 2}');
    await page.getByRole('button', { name: `Save (If-Match "${at}")` }).click();
    await page.getByText(/^Saved as revision \d+\.$/).waitFor();
    expect(await valueOf('app/scoped')).toEqual({ v: 2 });
    expect((await api('GET', 'app/scoped')).headers.get('revkit-writer')).toBe('console-app-writer');
  });

  it('keeps the token in session storage only, and asks again for a bad one', async () => {
    const page = await newPage();
    await signIn(page, base, ADMIN);
    expect(await page.evaluate(() => sessionStorage.getItem('revkit.console.token'))).toBe(ADMIN);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    await page.reload();
    await page.locator('[data-testid="key-list"][aria-busy="false"]').waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Bearer token').fill('not-a-valid-token-at-all');
    await page.getByRole('button', { name: 'Open' }).click();
    await page.getByText(/The server refused the token/).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('revkit.console.token'))).toBeNull();
  });
});

describe('web console: the replication panel', { timeout: 180_000 }, () => {
  it('a store without replication (SQLite) says so', async () => {
    const page = await newPage();
    await signIn(page, base, ADMIN);
    await expect.poll(() => page.getByTestId('replication').textContent(), WAIT).toBe('replication: none (sqlite)');
  });

  it('a replicated store: the serving member, members and roles, durability, failovers, and a detected loss as an alert', async () => {
    // A memory store given the state a replicated engine reports (the engines' real states are their suites' business).
    const store = new MemoryStore();
    store.replication = async () => ({
      serving: '10.0.0.2:5432',
      members: [{ address: '10.0.0.2:5432', role: 'primary' }, { address: '10.0.0.1:5432', role: 'standby', state: 'streaming' }],
      durability: 'replicated', note: 'synchronous_commit=on with a synchronous standby', failovers: 2,
      lost: { after: 41, upTo: 57, message: 'the new primary lacks revisions 42..57' },
    });
    const { server: replicated, url } = await startServer({ store, adminToken: ADMIN });
    try {
      const page = await newPage();
      await signIn(page, url, ADMIN);
      const panel = page.getByRole('region', { name: 'Replication' });
      await expect.poll(() => panel.getByTestId('serving').textContent(), WAIT).toBe('10.0.0.2:5432');
      expect(await panel.locator('summary').textContent()).toContain('replicated · 2 failovers');
      await panel.locator('summary').click();
      const rows = await panel.locator('tbody tr').allTextContents();
      expect(rows).toEqual(['10.0.0.2:5432primary—', '10.0.0.1:5432standbystreaming']);
      expect(await page.getByTestId('data-lost').textContent()).toContain('revisions 42–57');
      expect(await page.getByRole('alert').count()).toBeGreaterThan(0);
      await page.screenshot({ path: join(SCREENSHOTS, 'replication.png') });
    } finally {
      await replicated.close();
    }
  });
});
