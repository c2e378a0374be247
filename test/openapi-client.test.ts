// /openapi.json as a client author meets it: Redocly's recommended rules find
// nothing in it, and a client generated from it (openapi-typescript types +
// openapi-fetch) type-checks under strict — a call to every operation, and the
// type of every documented response (each error a Problem, each $ref schema the
// component it names, each documented header there); and what the server
// answers, error or not, is a documented response of the operation called.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import createClient from 'openapi-fetch';
import openapiTS, { astToString } from 'openapi-typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../src/server/openapi.js';
import { ADMIN, startServer } from './server-helpers.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const bin = (name: string) => join(repo, 'node_modules', '.bin', name);
const work = mkdtempSync(join(tmpdir(), 'revkit-openapi-'));
symlinkSync(join(repo, 'node_modules'), join(work, 'node_modules'), 'dir');
writeFileSync(join(work, 'openapi.json'), JSON.stringify(openApiDocument, null, 2));
afterAll(() => rmSync(work, { recursive: true, force: true }));

type Json = Record<string, any>;
const doc = JSON.parse(JSON.stringify(openApiDocument)) as Json;
const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

/** A request body for each operation that takes one (a new one fails the test until it has a sample here). */
const BODIES: Record<string, string> = {
  putKey: '{ replicas: 3 }',
  patchKey: '{ replicas: 4 }',
  commitTransaction: "{ ops: [{ op: 'check', key: 'cfg/a', revision: null }, { op: 'set', key: 'cfg/a', value: 1 }, { op: 'delete', key: 'cfg/b' }] }",
};

const sample = (schema: Json | undefined) => (schema?.type === 'integer' || schema?.type === 'number' ? '1' : schema?.type === 'boolean' ? 'true' : "'x'");
const lit = (s: string) => JSON.stringify(s);
/** The TypeScript type openapi-typescript gives a header or parameter schema. */
function tsType(schema: Json | undefined): string {
  if (Array.isArray(schema?.enum)) return (schema.enum as unknown[]).map((v) => JSON.stringify(v)).join(' | ');
  switch (schema?.type) {
    case 'string': return 'string';
    case 'integer':
    case 'number': return 'number';
    case 'boolean': return 'boolean';
    default: throw new Error(`a header schema without a simple type: ${JSON.stringify(schema)}`);
  }
}

/** client.ts: one openapi-fetch call per operation, and one type assertion per documented response, media type and header. */
function clientSource(): string {
  const calls: string[] = [];
  const checks: string[] = [];
  for (const [path, item] of Object.entries(doc.paths as Record<string, Json>)) {
    for (const method of METHODS) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const id = op.operationId as string;
      // Parameters: path ones always, the others when required.
      const params: Record<string, string[]> = {};
      for (const p of [...(item.parameters ?? []), ...(op.parameters ?? [])] as Json[]) {
        if (p.in !== 'path' && !p.required) continue;
        (params[p.in] ??= []).push(`${lit(p.name)}: ${sample(p.schema)}`);
      }
      const init: string[] = [];
      const groups = Object.entries(params).map(([where, list]) => `${where}: { ${list.join(', ')} }`);
      if (groups.length) init.push(`params: { ${groups.join(', ')} }`);
      if (op.requestBody?.required) {
        if (!BODIES[id]) throw new Error(`no sample body for ${id}`);
        init.push(`body: ${BODIES[id]}`);
        // openapi-fetch sends application/json unless told; say the type the operation takes.
        const [type] = Object.keys(op.requestBody.content);
        if (type !== 'application/json') init.push(`headers: { 'content-type': ${lit(type as string)} }`);
      }
      calls.push(`  {\n    const { data, error, response } = await client.${method.toUpperCase()}(${lit(path)}${init.length ? `, { ${init.join(', ')} }` : ''});\n    void data; void error; void response.status;\n  }`);

      for (const [status, declared] of Object.entries(op.responses as Record<string, Json>)) {
        const R = `operations[${lit(id)}]['responses'][${status}]`;
        const named = typeof declared.$ref === 'string' ? (declared.$ref as string).split('/').pop() : undefined;
        const response = named ? (doc.components.responses[named] as Json) : declared;
        if (named) checks.push(`expectType<Equal<${R}, components['responses'][${lit(named)}]>>();`);
        for (const [media, content] of Object.entries((response.content ?? {}) as Record<string, Json>)) {
          const body = `${R}['content'][${lit(media)}]`;
          const ref = typeof content.schema?.$ref === 'string' ? (content.schema.$ref as string).split('/').pop() : undefined;
          if (ref) checks.push(`expectType<Equal<${body}, components['schemas'][${lit(ref)}]>>();`);
          else checks.push(`expectType<Equal<${body}, ${body}>>();`);
          if (Number(status) >= 400) {
            expect(media, `${id} ${status}`).toBe('application/problem+json');
            checks.push(`expectType<Equal<${body}, Problem>>();`);
          }
        }
        if (!response.content) checks.push(`expectType<Equal<${R}['content'], ${R}['content']>>(); // ${id} ${status}: no body`);
        // A documented header has its schema's type (an undocumented one would be unknown).
        for (const [header, spec] of Object.entries((response.headers ?? {}) as Record<string, Json>)) checks.push(`expectType<Equal<NonNullable<${R}['headers'][${lit(header)}]>, ${tsType(spec.schema)}>>();`);
      }
    }
  }
  return `// Generated by test/openapi-client.test.ts from /openapi.json.
import createClient from 'openapi-fetch';
import type { components, operations, paths } from './schema.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): void {}
type Problem = components['schemas']['Problem'];

const client = createClient<paths>({ baseUrl: 'http://127.0.0.1:8787', headers: { authorization: 'Bearer a-token-of-16-characters' } });

export async function callEveryOperation(): Promise<void> {
${calls.join('\n')}
}

// What a caller gets back, and the ways it uses it.
export async function useTheAnswers(): Promise<number | undefined> {
  const put = await client.PUT('/v1/kv/{key}', { params: { path: { key: 'cfg/a' } }, body: { replicas: 2 } });
  if (put.error) return put.error.status satisfies number;
  const page = await client.GET('/v1/kv', { params: { query: { prefix: 'cfg/', limit: 10 } } });
  for (const entry of page.data?.entries ?? []) entry.revision satisfies number;
  const problem = (await client.GET('/v1/kv/{key}', { params: { path: { key: 'cfg/a' } } })).error;
  if (problem) problem.code satisfies string;
  return put.data.revision;
}

${checks.join('\n')}
`;
}

describe('/openapi.json', () => {
  it('lints clean with Redocly\'s recommended rules: no error, no warning', () => {
    const run = spawnSync(bin('redocly'), ['lint', 'openapi.json', '--extends', 'recommended', '--format', 'json'], {
      cwd: work,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    });
    const report = JSON.parse(run.stdout) as { totals: { errors: number; warnings: number }; problems: Array<{ ruleId: string; message: string; location: Array<{ pointer: string }> }> };
    expect(report.problems.map((p) => `${p.ruleId} ${p.location[0]?.pointer}: ${p.message}`)).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
    expect(run.status).toBe(0);
  }, 90_000);

  it('a client generated from it (openapi-typescript + openapi-fetch) type-checks under strict against every operation and documented response', async () => {
    writeFileSync(join(work, 'schema.d.ts'), astToString(await openapiTS(doc as never)));
    const source = clientSource();
    expect(source.match(/await client\.\w+\(/g)?.length).toBeGreaterThanOrEqual(12);
    writeFileSync(join(work, 'client.ts'), source);
    writeFileSync(join(work, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022', 'DOM'], types: [], skipLibCheck: false, noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true },
      files: ['client.ts', 'schema.d.ts'],
    }));
    const tsc = spawnSync(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(work, 'tsconfig.json')], { cwd: work, encoding: 'utf8', timeout: 120_000 });
    expect(`${tsc.stdout}${tsc.stderr}`).toBe('');
    expect(tsc.status).toBe(0);
  }, 120_000);
});

describe('the server answers what /openapi.json documents', () => {
  const READER = 'reader-token-0123456789abcdef';
  /** The documented statuses and media types of an operation. */
  const documented = (id: string) => {
    for (const [path, item] of Object.entries(doc.paths as Record<string, Json>)) {
      for (const method of METHODS) {
        if (item[method]?.operationId !== id) continue;
        return { path, method, responses: item[method].responses as Record<string, Json> };
      }
    }
    throw new Error(`no operation ${id}`);
  };
  const mediaOf = (r: Json) => Object.keys(((typeof r.$ref === 'string' ? doc.components.responses[(r.$ref as string).split('/').pop() as string] : r) as Json).content ?? {});

  it('every answer to a call of each operation — successes and refusals — is one of its documented responses, with its media type', async () => {
    const { server, url } = await startServer({ store: 'memory:', tokens: [{ name: 'reader', token: READER, scopes: [{ prefix: 'pub/', access: 'read' }] }], limits: { maxValueBytes: 1024 } });
    try {
      const client = createClient<any>({ baseUrl: url });
      const as = (token: string | null) => (token === null ? {} : { authorization: `Bearer ${token}` });
      const seen: string[] = [];
      const check = async (id: string, init: Json = {}, token: string | null = ADMIN) => {
        const { path, method, responses } = documented(id);
        const { response } = await (client as any)[method.toUpperCase()](path, { ...init, headers: { ...as(token), ...init.headers }, parseAs: 'text' });
        const status = String(response.status);
        expect(Object.keys(responses), `${id} answered ${status}, which it does not document`).toContain(status);
        const media = mediaOf(responses[status] as Json);
        const type = (response.headers.get('content-type') ?? '').split(';')[0];
        if (media.length > 0) expect(media, `${id} ${status} sent ${type}`).toContain(type);
        seen.push(`${id} ${status}`);
        return response as Response;
      };
      const key = { params: { path: { key: 'cfg/a' } } };
      const created = await check('putKey', { ...key, body: { replicas: 1 } });
      const etag = created.headers.get('etag') as string;
      await check('putKey', { ...key, body: { replicas: 2 } });
      await check('putKey', { ...key, body: { replicas: 3 }, headers: { 'if-match': etag } }); // stale: 412
      await check('putKey', { ...key, body: 'x'.repeat(2000) }); // over maxValueBytes: 413
      await check('putKey', { ...key, body: 'a=1', bodySerializer: (b: string) => b, headers: { 'content-type': 'application/x-www-form-urlencoded' } }); // 415
      await check('putKey', { ...key, body: { replicas: 3 } }, null); // 401
      await check('putKey', { params: { path: { key: 'pub/a' } }, body: 1 }, READER); // 403
      await check('getKey', key);
      await check('getKey', { ...key, headers: { 'if-none-match': (await check('getKey', key)).headers.get('etag') } }); // 304
      await check('getKey', { params: { path: { key: 'cfg/none' } } }); // 404
      await check('getKey', { ...key, headers: { 'if-match': '"1"' } }); // 412
      await check('patchKey', { ...key, body: { zones: 2 }, headers: { 'content-type': 'application/merge-patch+json' } });
      await check('patchKey', { ...key, body: { zones: 2 } }); // application/json: 415
      await check('keyHistory', key);
      await check('keyHistory', { ...key, params: { ...key.params, query: { limit: 'many' } } }); // 400
      await check('listKeys', { params: { query: { prefix: 'cfg/' } } });
      await check('listKeys', { params: { query: { prefix: 'cfg/' } } }, READER); // 403
      await check('commitTransaction', { body: { ops: [{ op: 'check', key: 'cfg/a', revision: null }] } }); // 409
      await check('commitTransaction', { body: { ops: [{ op: 'set', key: 'cfg/b', value: 1 }] } });
      await check('deleteKey', key);
      await check('deleteKey', key); // 404
      await check('info');
      await check('info', {}, null); // 401
      await check('healthz', {}, null);
      await check('readyz', {}, null);
      await check('metrics');
      await check('metrics', {}, READER); // 403
      await check('openapi', {}, null);
      await check('watch', { params: { query: { fromRevision: 'soon' } } }); // 400
      // A watch answers 200 with an event stream and stays open: its head is enough.
      const watch = await fetch(`${url}/v1/watch?prefix=cfg/&fromRevision=0`, { headers: as(ADMIN), signal: AbortSignal.timeout(30_000) });
      expect(Object.keys(documented('watch').responses)).toContain(String(watch.status));
      expect(watch.headers.get('content-type')).toMatch(/^text\/event-stream/);
      await watch.body?.cancel();
      // The DNS-rebinding guard answers every route, before anything else (fetch cannot set Host: node:http).
      for (const id of ['getKey', 'healthz', 'openapi']) {
        const { path } = documented(id);
        const status = await new Promise<number>((resolve, reject) => {
          request(`${url}${path.replace('{key}', 'cfg/a')}`, { headers: { host: 'rebound.example', ...as(ADMIN) } }, (res) => {
            res.resume();
            resolve(res.statusCode as number);
          }).on('error', reject).end();
        });
        expect(status).toBe(421);
        expect(Object.keys(documented(id).responses), `${id}: 421`).toContain('421');
      }
      // Each refusal above was the one meant, not a lucky documented status.
      expect(seen).toEqual(expect.arrayContaining([
        'putKey 201', 'putKey 200', 'putKey 412', 'putKey 413', 'putKey 415', 'putKey 401', 'putKey 403', 'getKey 304', 'getKey 404', 'getKey 412',
        'patchKey 200', 'patchKey 415', 'keyHistory 400', 'listKeys 403', 'commitTransaction 409', 'commitTransaction 200', 'deleteKey 404', 'info 401', 'metrics 403', 'watch 400',
      ]));
    } finally {
      await server.close();
    }
  }, 60_000);
});
