import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/**
 * The web console at /ui: a static page and its bundle, built into dist/ui by
 * `npm run build` (ui/build.mjs). The assets are public — they hold no data;
 * every API call the page makes carries the token the user pastes in.
 */

interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
}

/** Files the console consists of, served at /ui/<name> (index.html at /ui/). */
export const CONSOLE_FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'console.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
};

// Same origin only, no inline script or style: a value shown in the console can never run as code.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** dist/ui beside dist/server when built (this file is dist/server/routes/console.js); from the sources (tests run src/ through vitest) the built copy in dist/. */
function assetDir(): string | undefined {
  for (const rel of ['../../ui/', '../../../dist/ui/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  return undefined;
}

function loadAssets(): Map<string, Asset> | undefined {
  const dir = assetDir();
  if (dir === undefined) return undefined;
  const assets = new Map<string, Asset>();
  for (const [name, type] of Object.entries(CONSOLE_FILES)) {
    const body = readFileSync(dir + name);
    assets.set(name, { type, body, gzip: gzipSync(body, { level: 9 }) });
  }
  return assets;
}

/** Registers GET / and GET /ui (redirects to /ui/), /ui/ and the console's files. */
export async function consolePlugin(app: FastifyInstance): Promise<void> {
  const assets = loadAssets();
  const send = (name: string) => async (req: FastifyRequest, reply: FastifyReply) => {
    const asset = assets?.get(name);
    if (!asset) {
      return reply.code(503).type('text/plain; charset=utf-8').send('the console is not built: run `npm run build` (it writes dist/ui)\n');
    }
    reply.header('content-type', asset.type);
    reply.header('cache-control', 'no-cache');
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('vary', 'accept-encoding');
    if (name === 'index.html') reply.header('content-security-policy', CSP);
    if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
      reply.header('content-encoding', 'gzip');
      return reply.code(200).send(asset.gzip);
    }
    return reply.code(200).send(asset.body);
  };
  const config = { public: true };
  // Relative, so the console also works behind a proxy that mounts the server under a path.
  app.get('/ui', { config }, async (_req, reply) => reply.code(308).header('location', 'ui/').send());
  // A browser pointed at the server's root lands on the console rather than on a bare 401; the API lives under /v1.
  // 302, not a permanent redirect: a browser should not remember it for this origin.
  app.get('/', { config }, async (_req, reply) => reply.code(302).header('location', 'ui/').send());
  app.get('/ui/', { config }, send('index.html'));
  for (const name of Object.keys(CONSOLE_FILES)) if (name !== 'index.html') app.get(`/ui/${name}`, { config }, send(name));
}

/**
 * The console's routes: HTML, a script, a stylesheet and redirects to them, for a browser. They are not
 * operations of the JSON API, so /openapi.json leaves them out and says where the console is.
 */
export const CONSOLE_PATHS: readonly string[] = ['/', '/ui', '/ui/', ...Object.keys(CONSOLE_FILES).filter((n) => n !== 'index.html').map((name) => `/ui/${name}`)];
