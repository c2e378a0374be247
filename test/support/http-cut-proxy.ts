/**
 * An HTTP proxy in front of a real revkit server that cuts chosen responses
 * at a chosen point — what a proxy, a load balancer or a network drop does to
 * a request the server has already handled:
 *
 *   const proxy = await startHttpCutProxy(serverUrl);
 *   proxy.cutNext((r) => r.method === 'PUT', { at: 'after-headers' });
 *   // an HttpStore on proxy.url …
 *   await proxy.close();
 *
 * Every request not picked by a rule is forwarded as it is. A rule is used
 * once. Cuts happen on the proxy's side only: the server sees a client that
 * went away after it answered, as it would behind a real proxy.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type CutPoint =
  /** The server answered (a write committed); the client gets no byte of the answer. */
  | { at: 'before-response' }
  /** The status line and the headers reach the client, then the connection drops. */
  | { at: 'after-headers' }
  /** The headers and the first `bytes` of the body (default: half of it), then the connection drops. */
  | { at: 'mid-body'; bytes?: number }
  /** An event stream is forwarded until the first event containing `marker`, which is cut in its middle. */
  | { at: 'mid-event'; marker: string }
  /** The connection is reset as soon as the request head arrives: nothing reaches the server, no answer reaches the client. */
  | { at: 'reset-on-request' }
  /** The server's answer is forwarded as soon as it comes and the connection reset at once, while the client may still be sending its body. */
  | { at: 'answer-then-reset' };

export interface SeenRequest {
  method: string;
  path: string;
  /** Where its response was cut, when a rule picked it. */
  cut?: CutPoint['at'];
}

export interface HttpCutProxy {
  /** Base URL to give HttpStore. */
  readonly url: string;
  /** Every request that arrived, in order. */
  readonly seen: SeenRequest[];
  /** Cuts the next request `match` picks at `cut`. */
  cutNext(match: (req: SeenRequest & { headers: http.IncomingHttpHeaders }) => boolean, cut: CutPoint): void;
  /** Rules not used yet. */
  readonly pending: number;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade']);

export async function startHttpCutProxy(target: string): Promise<HttpCutProxy> {
  const upstream = new URL(target);
  const rules: Array<{ match: (req: SeenRequest & { headers: http.IncomingHttpHeaders }) => boolean; cut: CutPoint }> = [];
  const seen: SeenRequest[] = [];
  const sockets = new Set<Socket>();

  const server = http.createServer((req, res) => {
    const record: SeenRequest = { method: req.method ?? 'GET', path: req.url ?? '/' };
    seen.push(record);
    const index = rules.findIndex((r) => r.match({ ...record, headers: req.headers }));
    const cut = index >= 0 ? rules.splice(index, 1)[0]?.cut : undefined;
    if (cut) record.cut = cut.at;
    const client = req.socket;
    if (cut?.at === 'reset-on-request') {
      client.resetAndDestroy();
      return;
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
    const up = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers, agent: false });
    let answered = false;
    up.on('response', () => (answered = true));
    up.on('error', () => {
      // The server hung up before it answered: so does the proxy.
      if (!answered) return void client.destroy();
      // It answered before the body had arrived, then hung up: the answer is forwarded, and the rest
      // of the body is read and dropped, as a well-behaved proxy does (closing now would reset the client).
      req.unpipe(up);
      req.resume();
    });
    client.on('close', () => up.destroy());
    req.pipe(up);
    up.on('response', (upRes) => {
      const status = upRes.statusCode ?? 502;
      const kept: http.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(upRes.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) kept[k] = v;
      const head = (extra: Record<string, string> = {}) => {
        let text = `HTTP/1.1 ${status} ${upRes.statusMessage ?? ''}\r\n`;
        for (const [k, v] of Object.entries({ ...kept, ...extra })) for (const one of [v].flat()) text += `${k}: ${String(one)}\r\n`;
        return `${text}\r\n`;
      };
      const body = (): Promise<Buffer> => new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => resolve(Buffer.concat(chunks)));
        upRes.on('error', reject);
      });
      switch (cut?.at) {
        case undefined: {
          res.writeHead(status, upRes.statusMessage, kept);
          upRes.pipe(res);
          // Answered before the whole body arrived (a 413): the rest is read and dropped, not left to reset the client.
          upRes.on('end', () => {
            if (req.complete) return;
            req.unpipe(up);
            req.resume();
          });
          return;
        }
        case 'before-response':
          client.destroy();
          upRes.resume();
          return;
        case 'after-headers':
          // Written raw, then the connection drops once the kernel has them: the client holds the headers, never the body.
          // A reply of known length is waited for (the server finished it); a stream is cut at once.
          if (upRes.headers['content-length'] !== undefined) void body().then(() => client.write(head(), () => client.destroy()));
          else {
            client.write(head({ 'transfer-encoding': 'chunked' }), () => client.destroy());
            upRes.destroy();
          }
          return;
        case 'mid-body':
          void body().then((b) => {
            const part = b.subarray(0, cut.bytes ?? Math.floor(b.length / 2));
            client.write(Buffer.concat([Buffer.from(head({ 'content-length': String(b.length) })), part]), () => client.destroy());
          });
          return;
        case 'answer-then-reset':
          void body().then((b) => {
            client.write(Buffer.concat([Buffer.from(head({ 'content-length': String(b.length), connection: 'close' })), b]), () => client.resetAndDestroy());
          });
          return;
        case 'mid-event': {
          res.writeHead(status, upRes.statusMessage, kept);
          let text = '';
          upRes.on('data', (c: Buffer) => {
            if (res.destroyed) return;
            const before = text.length;
            text += c.toString('utf8');
            const at = text.indexOf(cut.marker);
            if (at < 0) return void res.write(c);
            // The event holding the marker: its first bytes and the marker's first half go out, the rest never does.
            const stop = at + Math.floor(cut.marker.length / 2);
            res.write(stop > before ? text.slice(before, stop) : '', () => {
              client.destroy();
              upRes.destroy();
            });
          });
          return;
        }
      }
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    cutNext(match, cut) {
      rules.push({ match, cut });
    },
    get pending() {
      return rules.length;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
