import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type RevkitServer } from '../src/server/index.js';

// The request counters are kept per route with series looked up once (src/server/metrics.ts,
// forRoute): every answered request must count exactly once, under its own route, method
// and status — HEAD apart from GET, unmatched requests and refused tokens included.
const TOKEN = 'metrics-admin-token-0123456789';

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('request metrics', () => {
  let server: RevkitServer;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const send = (method: 'GET' | 'HEAD' | 'PUT', url: string, headers: Record<string, string> = auth, payload?: string) =>
    server.app.inject({ method, url, headers: payload === undefined ? headers : { ...headers, 'content-type': 'application/json' }, ...(payload === undefined ? {} : { payload }) });

  beforeAll(async () => {
    server = await createServer({ store: 'memory:', adminToken: TOKEN });
  });
  afterAll(async () => {
    await server.close();
  });

  it('count each request once by route, method and status, and time each one', async () => {
    const created = await send('PUT', '/v1/kv/m%2Fa', { ...auth, 'if-none-match': '*' }, '1');
    expect(created.statusCode).toBe(201);
    expect((await send('PUT', '/v1/kv/m%2Fa', { ...auth, 'if-match': created.headers.etag as string }, '2')).statusCode).toBe(200);
    expect((await send('PUT', '/v1/kv/m%2Fa', { ...auth, 'if-match': created.headers.etag as string }, '3')).statusCode).toBe(412);
    expect((await send('PUT', '/v1/kv/m%2Fa', {}, '4')).statusCode).toBe(401);
    for (let i = 0; i < 3; i++) expect((await send('GET', '/v1/kv/m%2Fa')).statusCode).toBe(200);
    expect((await send('HEAD', '/v1/kv/m%2Fa')).statusCode).toBe(200);
    expect((await send('GET', '/no/such/route')).statusCode).toBe(404);
    expect((await send('GET', '/no/such/route', {})).statusCode).toBe(401);
    expect((await send('GET', '/healthz', {})).statusCode).toBe(200);

    const text = (await send('GET', '/metrics')).body;
    const requests = (route: string, method: string, status: number) => sample(text, `revkit_http_requests_total{route="${route}",method="${method}",status="${status}"}`);
    expect(requests('/v1/kv/*', 'PUT', 201)).toBe(1);
    expect(requests('/v1/kv/*', 'PUT', 200)).toBe(1);
    expect(requests('/v1/kv/*', 'PUT', 412)).toBe(1);
    expect(requests('/v1/kv/*', 'PUT', 401)).toBe(1);
    expect(requests('/v1/kv/*', 'GET', 200)).toBe(3);
    expect(requests('/v1/kv/*', 'HEAD', 200)).toBe(1);
    expect(requests('unmatched', 'GET', 404)).toBe(1);
    expect(requests('unmatched', 'GET', 401)).toBe(1);
    expect(requests('/healthz', 'GET', 200)).toBe(1);
    // GET and HEAD share the route's latency series: 4 PUTs + 3 GETs + 1 HEAD
    expect(sample(text, 'revkit_http_request_duration_seconds_count{route="/v1/kv/*"}')).toBe(8);
    expect(sample(text, 'revkit_http_request_duration_seconds_count{route="unmatched"}')).toBe(2);
    expect(sample(text, 'revkit_conflicts_total')).toBe(1);
  });
});
