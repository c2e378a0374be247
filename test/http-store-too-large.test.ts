import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BackendError, DEFAULT_MAX_VALUE_BYTES, TooLargeError } from '../src/core/index.js';
import { DEFAULT_LIMITS, HttpStore, type RevkitServer } from '../src/server/index.js';
import { ADMIN, startServer } from './server-helpers.js';
import { startHttpCutProxy, type HttpCutProxy } from './support/http-cut-proxy.js';

// A value over the limit sent through HttpStore is TooLargeError — the server's 413 problem
// document — also when the server answers before the body has arrived and the client is
// still sending (it used to be "cannot reach the revkit server: EPIPE").

const BODY_LIMIT = DEFAULT_LIMITS.maxBodyBytes; // 2 MiB
const VALUE_LIMIT = DEFAULT_MAX_VALUE_BYTES; // 1 MiB

let server: RevkitServer | undefined;
let proxy: HttpCutProxy | undefined;
const clients: HttpStore[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const c of clients.splice(0)) await c.close();
  await proxy?.close();
  await server?.close();
  proxy = server = undefined;
});

/** A server over memory with the default limits, and a (pass-through unless told) proxy in front of it. */
async function setUp(): Promise<{ url: string; proxy: HttpCutProxy; client: HttpStore }> {
  const started = await startServer({ store: 'memory:' });
  server = started.server;
  proxy = await startHttpCutProxy(started.url);
  // Built without fromUrl: the client does not know the server's limits.
  const client = new HttpStore({ url: proxy.url, token: ADMIN });
  clients.push(client);
  return { url: started.url, proxy, client };
}

/** A JSON string value whose encoding is exactly `bytes` long. */
const valueOf = (bytes: number) => 'x'.repeat(bytes - 2);

describe('HttpStore: a value or body over the limit is TooLargeError', () => {
  it('a value just over the value limit (its body under the body limit): ERR_TOO_LARGE with the value limit and its size; nothing stored; update() fails at once', async () => {
    const { client } = await setUp();
    const err = await client.put('v', valueOf(VALUE_LIMIT + 1)).catch((e: unknown) => e);
    expect(TooLargeError.is(err), String(err)).toBe(true);
    expect(err).toMatchObject({ code: 'ERR_TOO_LARGE', limit: VALUE_LIMIT, size: VALUE_LIMIT + 1 });
    expect(await client.getRecord('v')).toBeNull();
    const viaUpdate = await client.update('v', () => valueOf(VALUE_LIMIT + 1)).catch((e: unknown) => e);
    expect(TooLargeError.is(viaUpdate), String(viaUpdate)).toBe(true);
  });

  for (const bytes of [Math.round(2.2e6), 20_000_000]) {
    it(`a body of ${bytes} bytes over the body limit, the limit unknown to the client: the server's 413, with its limit and the size`, async () => {
      const { client, proxy: p } = await setUp();
      for (const write of [
        () => client.put('big', valueOf(bytes)),
        () => client.atomic().set('big', valueOf(bytes)).commit(),
      ]) {
        const err = await write().catch((e: unknown) => e);
        expect(TooLargeError.is(err), String(err)).toBe(true);
        expect((err as TooLargeError).limit).toBe(BODY_LIMIT);
        expect((err as TooLargeError).size).toBeGreaterThanOrEqual(bytes);
      }
      // Read from the server's answers: the client never had to ask for the limit.
      expect(p.seen.map((r) => r.method)).toEqual(['PUT', 'POST']);
      expect(await client.getRecord('big')).toBeNull();
    });
  }

  it('the server answers 413 early and resets the connection while the client is still sending: TooLargeError, not EPIPE', async () => {
    const { client, proxy: p } = await setUp();
    for (const bytes of [Math.round(2.2e6), 20_000_000]) {
      p.cutNext((r) => r.method === 'PUT', { at: 'answer-then-reset' });
      const err = await client.put('big', valueOf(bytes)).catch((e: unknown) => e);
      expect(TooLargeError.is(err), String(err)).toBe(true);
      expect(err).toMatchObject({ code: 'ERR_TOO_LARGE', limit: BODY_LIMIT, size: bytes });
    }
    expect(p.pending).toBe(0);
  });

  it('the connection is reset before any answer while an over-limit body is sent: TooLargeError with the limit the server advertises', async () => {
    const { client, proxy: p } = await setUp();
    p.cutNext((r) => r.method === 'PUT', { at: 'reset-on-request' });
    const err = await client.put('big', valueOf(20_000_000)).catch((e: unknown) => e);
    expect(TooLargeError.is(err), String(err)).toBe(true);
    expect(err).toMatchObject({ limit: BODY_LIMIT, size: 20_000_000 });
    // A body under the limit whose connection is reset is what it always was: it may have reached the server.
    p.cutNext((r) => r.method === 'PUT', { at: 'reset-on-request' });
    const small = await client.put('small', valueOf(100)).catch((e: unknown) => e);
    expect(BackendError.is(small), String(small)).toBe(true);
    expect(small).toMatchObject({ transient: true, ambiguous: true });
  });

  it('a client that knows the limit (fromUrl) refuses an over-limit body without sending it, with the error the server would give', async () => {
    const { proxy: p } = await setUp();
    const client = await HttpStore.fromUrl(`${p.url}?token=${ADMIN}`);
    clients.push(client);
    const err = await client.put('big', valueOf(20_000_000)).catch((e: unknown) => e);
    expect(TooLargeError.is(err), String(err)).toBe(true);
    expect(err).toMatchObject({ limit: BODY_LIMIT, size: 20_000_000 });
    const txn = await client.atomic().set('big', valueOf(BODY_LIMIT)).commit().catch((e: unknown) => e);
    expect(TooLargeError.is(txn), String(txn)).toBe(true);
    expect(p.seen.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v1/info']);
    // Just over the value limit but under the body limit: that answer is still the server's.
    const value = await client.put('v', valueOf(VALUE_LIMIT + 1)).catch((e: unknown) => e);
    expect(value).toMatchObject({ code: 'ERR_TOO_LARGE', limit: VALUE_LIMIT, size: VALUE_LIMIT + 1 });
    expect(p.seen.at(-1)?.method).toBe('PUT');
  });
});

// ---- the server side, on the wire: a 413 does not reset a client that is still sending.

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Reads HTTP/1.1 responses (Content-Length framed) off a raw socket, one per call. */
function responses(socket: net.Socket): () => Promise<RawResponse> {
  let buffer = Buffer.alloc(0);
  let ended: Error | undefined;
  let wake: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    buffer = Buffer.concat([buffer, d]);
    wake?.();
  });
  const end = (err?: Error) => {
    ended ??= err ?? new Error('the server closed the connection');
    wake?.();
  };
  socket.on('end', () => end());
  socket.on('error', (err) => end(err));
  socket.on('close', () => end());
  return async () => {
    for (;;) {
      const headEnd = buffer.indexOf('\r\n\r\n');
      if (headEnd >= 0) {
        const lines = buffer.subarray(0, headEnd).toString('latin1').split('\r\n');
        const headers: Record<string, string> = {};
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
        const length = Number(headers['content-length'] ?? 0);
        if (buffer.length >= headEnd + 4 + length) {
          const body = buffer.subarray(headEnd + 4, headEnd + 4 + length).toString('utf8');
          buffer = buffer.subarray(headEnd + 4 + length);
          return { status: Number(lines[0]?.split(' ')[1]), headers, body };
        }
      }
      if (ended) throw ended;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  };
}

/** Writes and resolves once the kernel took it; rejects when the connection is gone (EPIPE, reset). */
function send(socket: net.Socket, data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed || !socket.writable) return reject(new Error('the connection is closed'));
    socket.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

describe('server: a body refused for its size is read to its end, not answered with a reset', () => {
  const LIMIT = 64 * 1024;
  async function connect(): Promise<{ socket: net.Socket; next: () => Promise<RawResponse>; host: string; closed: Promise<{ hadError: boolean; errors: string[] }> }> {
    const started = await startServer({ store: 'memory:', limits: { maxBodyBytes: LIMIT } });
    server = started.server;
    const { port } = new URL(started.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    sockets.push(socket);
    const errors: string[] = [];
    socket.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
    const closed = new Promise<{ hadError: boolean; errors: string[] }>((resolve) => socket.on('close', (hadError) => resolve({ hadError, errors })));
    const next = responses(socket);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return { socket, next, host: `127.0.0.1:${port}`, closed };
  }
  const head = (host: string, extra: string) =>
    `PUT /v1/kv/big HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\n${extra}\r\n`;

  it('Content-Length over the limit: 413 with the limit and the size at once; the rest of the body is read and the connection serves the next request', async () => {
    const { socket, next, host } = await connect();
    const size = 16 * LIMIT;
    await send(socket, head(host, `Content-Length: ${size}\r\n`));
    const refused = await next(); // answered before a byte of the body was sent
    expect(refused.status).toBe(413);
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'ERR_PAYLOAD_TOO_LARGE', limit: LIMIT, size });
    expect(refused.headers.connection).not.toBe('close');
    // The client goes on sending, as a client writing its body does: no reset, no EPIPE.
    await send(socket, `"${'x'.repeat(size - 2)}"`);
    await send(socket, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    expect((await next()).status).toBe(200);
  });

  it('the same from a client that asked to close (Connection: close): the connection is closed in stages — no reset while the body is still coming', async () => {
    const { socket, next, host, closed } = await connect();
    const size = 16 * LIMIT;
    await send(socket, head(host, `Content-Length: ${size}\r\nConnection: close\r\n`));
    const refused = await next();
    expect(refused.status).toBe(413);
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'ERR_PAYLOAD_TOO_LARGE', limit: LIMIT, size });
    expect(refused.headers.connection).toBe('close');
    await send(socket, `"${'x'.repeat(size - 2)}"`);
    socket.end();
    expect(await closed).toEqual({ hadError: false, errors: [] });
  });

  it('a chunked body that grows over the limit while it is sent: 413, and the connection serves the next request once the body ends', async () => {
    const { socket, next, host } = await connect();
    await send(socket, head(host, 'Transfer-Encoding: chunked\r\n'));
    const chunk = `"${'x'.repeat(LIMIT)}`;
    await send(socket, `${Buffer.byteLength(chunk).toString(16)}\r\n${chunk}\r\n`);
    const refused = await next();
    expect(refused.status).toBe(413);
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'ERR_PAYLOAD_TOO_LARGE', limit: LIMIT });
    for (let i = 0; i < 8; i++) await send(socket, `${LIMIT.toString(16)}\r\n${'y'.repeat(LIMIT)}\r\n`);
    await send(socket, '1\r\n"\r\n0\r\n\r\n');
    await send(socket, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    expect((await next()).status).toBe(200);
  });
});
