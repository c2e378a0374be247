import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RevkitServer } from '../src/server/index.js';
import { HTTP_ERROR_CODES } from '../src/server/index.js';
import { CONSOLE_PATHS } from '../src/server/routes/console.js';
import { startServer } from './server-helpers.js';

describe('/openapi.json', () => {
  let server: RevkitServer;
  let base: string;
  beforeAll(async () => {
    ({ server, url: base } = await startServer({ store: 'memory:' }));
  });
  afterAll(() => server.close());

  it('is a valid OpenAPI 3 document, served without a token', async () => {
    const res = await fetch(`${base}/openapi.json`);
    expect(res.status).toBe(200);
    const doc = await res.json();
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toMatch(/^3\./);
  });

  it('describes every route the server has, with every method', async () => {
    const doc = await (await fetch(`${base}/openapi.json`)).json();
    const documented = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      for (const m of ['get', 'put', 'post', 'delete', 'patch']) if (item[m]) documented.add(`${m.toUpperCase()} ${path}`);
    }
    const actual = new Set<string>();
    for (const r of server.routes) {
      const [method, path] = r.split(' ') as [string, string];
      // The web console's HTML and assets are for a browser, not operations of the API (the description names /ui/).
      if (method !== 'HEAD' && !CONSOLE_PATHS.includes(path)) actual.add(`${method} ${path === '/v1/kv/*' ? '/v1/kv/{key}' : path}`);
    }
    expect(CONSOLE_PATHS.every((p) => server.routes.includes(`GET ${p}`))).toBe(true);
    expect(Object.keys(doc.paths).filter((p) => CONSOLE_PATHS.includes(p))).toEqual([]);
    expect(actual.size).toBeGreaterThan(8);
    for (const r of actual) expect(documented, r).toContain(r);
    expect(documented).toContain('GET /v1/kv/{key}/history');
  });

  it('documents every HTTP-level error code and the revkit codes', async () => {
    const text = await (await fetch(`${base}/openapi.json`)).text();
    for (const code of Object.values(HTTP_ERROR_CODES)) expect(text, code).toContain(code);
    for (const code of ['ERR_CONFLICT', 'ERR_VALIDATION', 'ERR_TOO_LARGE', 'ERR_INVALID_KEY', 'ERR_HISTORY_GONE', 'ERR_UNSUPPORTED', 'ERR_BACKEND', 'ERR_OUTCOME_UNKNOWN']) expect(text).toContain(code);
  });

  it('points at nothing a user does not have (no design-document references)', async () => {
    const text = await (await fetch(`${base}/openapi.json`)).text();
    expect(text).not.toMatch(/DESIGN|shared\/|§/);
  });

  it('documents that PATCH takes application/merge-patch+json only: application/json is 415 with Accept-Patch', async () => {
    const doc = await (await fetch(`${base}/openapi.json`)).json();
    const patch = doc.paths['/v1/kv/{key}'].patch;
    expect(Object.keys(patch.requestBody.content)).toEqual(['application/merge-patch+json']);
    expect(patch.description).toMatch(/`application\/json` included.*415.*Accept-Patch: application\/merge-patch\+json/);
    expect(patch.responses['415'].headers['Accept-Patch'].schema.enum).toEqual(['application/merge-patch+json']);
  });

  it('documents SSE event ids as <revision>.<index>, and a failed /v1/txn as 409', async () => {
    const doc = await (await fetch(`${base}/openapi.json`)).json();
    expect(doc.paths['/v1/watch'].get.description).toContain('`<revision>.<index>`');
    expect(Object.keys(doc.paths['/v1/txn'].post.responses)).toContain('409');
  });
});
