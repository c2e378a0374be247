import { createServer, connect, type Server, type Socket } from 'node:net';
import { BackendError } from '../../core/index.js';

/**
 * A TCP proxy in front of a revkit server that cuts watch streams: each
 * `GET /v1/watch` response is cut after a random number of bytes — right
 * after the first chunk, or somewhere in the stream, often in the middle of
 * an event — by closing both sides. Everything else passes untouched. The
 * client (HttpStore) must resume after the last whole event it received: no
 * gap, no repeat, no commit split, which `revkit check` verifies from what
 * its watches delivered.
 */
export interface CutProxy {
  /** The server's URL with the proxy's host and port. */
  url: string;
  /** Watch responses cut so far. */
  readonly cuts: number;
  close(): Promise<void>;
}

export async function startCutProxy(target: string, random: () => number): Promise<CutProxy> {
  const upstream = new URL(target);
  const port = Number(upstream.port || (upstream.protocol === 'https:' ? 443 : 80));
  if (upstream.protocol !== 'http:') throw new BackendError(`the stream-cutting proxy speaks plain HTTP only, not ${upstream.protocol}`, { transient: false });
  const sockets = new Set<Socket>();
  let cuts = 0;
  const server: Server = createServer((client) => {
    const server = connect(port, upstream.hostname);
    sockets.add(client).add(server);
    const drop = () => {
      client.destroy();
      server.destroy();
      sockets.delete(client);
      sockets.delete(server);
    };
    client.on('error', drop).on('close', drop);
    server.on('error', drop).on('close', drop);
    // Bytes of the current watch response still allowed through; undefined: not a watch.
    let allowance: number | undefined;
    client.on('data', (chunk: Buffer) => {
      if (chunk.subarray(0, 14).toString('latin1') === 'GET /v1/watch?') allowance = random() < 0.25 ? 1 : 150 + Math.floor(random() * 6000);
      server.write(chunk);
    });
    server.on('data', (chunk: Buffer) => {
      if (allowance === undefined) {
        client.write(chunk);
        return;
      }
      if (allowance === 0) return; // being cut
      // `1`: the first chunk whole (headers, maybe the start id), then the cut.
      const through = allowance === 1 ? chunk.length : Math.min(chunk.length, allowance);
      allowance = allowance === 1 ? 0 : allowance - through;
      client.write(chunk.subarray(0, through), () => {
        if (allowance === 0) {
          cuts++;
          drop();
        }
      });
      if (allowance === 0) server.pause();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const url = new URL(upstream.href);
  url.host = `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return {
    url: url.href,
    get cuts() {
      return cuts;
    },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
