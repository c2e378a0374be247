/**
 * DNS rebinding (DESIGN §9): a server bound to loopback answers only to
 * loopback names and the hosts it was told to allow; any other Host gets 421
 * before authentication and routing — also with authentication off, where it
 * is the only guard. Raw node:http, since fetch will not send a chosen Host.
 */
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { createServer } from '../src/server/index.js';
import { hostGuard, isLoopbackHost } from '../src/server/host-check.js';
import { ADMIN, startServer } from './server-helpers.js';
import { serve, SPAWNS } from './support/revkit-process.js';

function send(url: string, method: string, path: string, host: string | undefined, body?: string): Promise<{ status: number; type: string | undefined; text: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${ADMIN}` };
    if (host !== undefined) headers.host = host;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const req = http.request({ hostname, port, method, path, headers, setHost: host === undefined ? false : undefined }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('Host check (DNS rebinding)', () => {
  it('bound to loopback: a foreign Host is 421 before anything is read or written; loopback names pass', async () => {
    const { server, url } = await startServer({ store: 'memory:' });
    try {
      const port = new URL(url).port;
      for (const host of ['evil.example', `evil.example:${port}`, `attacker.localhost.evil.example:${port}`, '10.0.0.1', '[fe80::1]', 'bad host']) {
        const res = await send(url, 'PUT', '/v1/kv/rebound', host, '1');
        expect({ host, status: res.status }).toEqual({ host, status: 421 });
        expect(res.type).toMatch(/application\/problem\+json/);
        expect(JSON.parse(res.text)).toMatchObject({ status: 421, code: 'ERR_MISDIRECTED_REQUEST' });
      }
      expect(await server.store.get('rebound')).toBeNull();
      for (const host of ['localhost', `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'LOCALHOST.', `app.localhost:${port}`]) {
        const res = await send(url, 'GET', '/v1/kv/absent', host);
        expect({ host, status: res.status }).toEqual({ host, status: 404 });
      }
    } finally {
      await server.close();
    }
  });

  it('with authentication off the check still holds; --allowed-host names pass', async () => {
    const server = await createServer({ store: 'memory:', allowedHosts: ['revkit.internal'] });
    const url = await server.listen({ host: '127.0.0.1', port: 0 });
    try {
      expect((await send(url, 'PUT', '/v1/kv/a', 'evil.example', '1')).status).toBe(421);
      expect((await send(url, 'PUT', '/v1/kv/a', 'revkit.internal:8080', '1')).status).toBe(201);
      expect((await send(url, 'GET', '/healthz', 'evil.example')).status).toBe(421);
      expect((await server.store.get('a'))?.value).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('revkit serve --allowed-host / REVKIT_ALLOWED_HOSTS add names; a malformed one is refused at start (exit 2)', async () => {
    for (const [args, env] of [[['--allowed-host', 'revkit.internal,kv.example.com']], [[], { REVKIT_ALLOWED_HOSTS: 'kv.example.com, revkit.internal' }]] as Array<[string[], Record<string, string>?]>) {
      const run = await serve(['--store', 'memory:', '--port', '0', '--admin-token', ADMIN, ...args], env);
      expect(run.started, run.started ? '' : run.stderr).toBe(true);
      if (!run.started) continue;
      try {
        expect((await send(run.url, 'GET', '/v1/kv/absent', 'revkit.internal')).status).toBe(404);
        expect((await send(run.url, 'GET', '/v1/kv/absent', 'kv.example.com:443')).status).toBe(404);
        expect((await send(run.url, 'GET', '/v1/kv/absent', 'evil.example')).status).toBe(421);
      } finally {
        await run.stop();
      }
    }
    const bad = await serve(['--store', 'memory:', '--port', '0', '--allowed-host', 'http://evil.example/']);
    expect(bad.started).toBe(false);
    if (!bad.started) expect({ code: bad.code, said: /--allowed-host/.test(bad.stderr) }).toEqual({ code: 2, said: true });
  }, SPAWNS);

  it('the rule itself: which names count as loopback, and a non-loopback bind without allowed hosts checks nothing', () => {
    for (const h of ['localhost', 'a.b.localhost', '127.0.0.1', '127.5.6.7', '::1', '[::1]', '::ffff:127.0.0.1']) expect({ h, loop: isLoopbackHost(h) }).toEqual({ h, loop: true });
    for (const h of ['localhost.evil.example', '128.0.0.1', '0.0.0.0', 'example.com', '::', '127.0.0.1.nip.io']) expect({ h, loop: isLoopbackHost(h) }).toEqual({ h, loop: false });
    expect(hostGuard('0.0.0.0')).toBeUndefined();
    const guard = hostGuard('0.0.0.0', ['kv.example.com']);
    expect([guard?.('kv.example.com:443'), guard?.('KV.Example.com'), guard?.('other.example.com'), guard?.('localhost')]).toEqual([true, true, false, true]);
    const loopback = hostGuard('::1');
    expect([loopback?.('[::1]:80'), loopback?.('[::1]x'), loopback?.('localhost:99999999')]).toEqual([true, false, false]);
  });
});
