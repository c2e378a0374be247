// What `revkit serve` sends at /ui: public static files (they hold no data),
// gzip when asked, a strict same-origin CSP on the page; /openapi.json names the console, not its routes.
import { get } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RevkitServer } from '../../src/server/index.js';
import { startServer } from '../server-helpers.js';

describe('/ui', () => {
  let server: RevkitServer;
  let base: string;
  beforeAll(async () => {
    ({ server, url: base } = await startServer({ store: 'memory:' }));
  });
  afterAll(() => server.close());

  it('redirects /ui to /ui/ relatively, and serves the page without a token under a same-origin CSP', async () => {
    const redirect = await fetch(`${base}/ui`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('ui/');
    const page = await fetch(`${base}/ui/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:/);
    const html = await page.text();
    expect(html).toContain('src="console.js"');
    expect(html).not.toMatch(/https?:\/\//);
  });

  it('serves the bundle gzipped when asked, identical to the plain one, with no absolute URL to another origin', async () => {
    const plain = Buffer.from(await (await fetch(`${base}/ui/console.js`, { headers: { 'accept-encoding': 'identity' } })).arrayBuffer());
    // node:http, not fetch: fetch would decompress and hide the encoding.
    const raw = await new Promise<{ headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
      get(`${base}/ui/console.js`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
      }).on('error', reject);
    });
    expect(raw.headers['content-encoding']).toBe('gzip');
    expect(raw.headers['content-type']).toMatch(/^text\/javascript/);
    expect(gunzipSync(raw.body).equals(plain)).toBe(true);
    expect(raw.body.length).toBeLessThan(plain.length / 2);
    expect(plain.toString('utf8')).not.toMatch(/\bfetch\(["'`]https?:/);
    expect((await fetch(`${base}/ui/console.css`)).headers.get('content-type')).toMatch(/^text\/css/);
  });

  it('is named in /openapi.json\'s description, not listed among the API\'s operations; a token is still needed for the API the page calls', async () => {
    const doc = await (await fetch(`${base}/openapi.json`)).json();
    expect(doc.info.description).toContain('`/ui/`');
    for (const path of ['/', '/ui', '/ui/', '/ui/console.js', '/ui/console.css']) expect(doc.paths[path], path).toBeUndefined();
    expect((await fetch(`${base}/v1/info`)).status).toBe(401);
  });
});
