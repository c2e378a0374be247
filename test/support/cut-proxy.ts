/**
 * A TCP proxy whose `cut()` drops the client side of every open connection
 * while keeping the server side open: to the client its connection is gone;
 * to the server the session is alive, so a statement it was running goes on
 * and may still commit — what a client process's death or a network cut does
 * to a request already inside the server.
 *
 *   const proxy = await startCutProxy(5432);
 *   // connect through 127.0.0.1:proxy.port …
 *   proxy.cut();          // every client connection is reset, its server session keeps running
 *   proxy.retarget(5433); // new connections go elsewhere (a load balancer failing over)
 *   await proxy.close();  // ends the kept server sessions too
 */
import net from 'node:net';

export interface CutProxy {
  readonly port: number;
  /** Connections opened so far (client sides still forwarding). */
  readonly open: number;
  cut(): void;
  /**
   * The next client chunk holding every one of `markers` reaches the server; its reply does not: the
   * connection is reset instead (a lost acknowledgement). Resolves when that chunk went through.
   */
  loseReplyTo(markers: string[]): Promise<void>;
  retarget(port: number): void;
  close(): Promise<void>;
}

export async function startCutProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<CutProxy> {
  const live = new Set<{ client: net.Socket; upstream: net.Socket; cut: boolean }>();
  const orphans = new Set<net.Socket>();
  let target = targetPort;
  let armed: { markers: Buffer[]; sent: () => void } | undefined;
  const server = net.createServer((client) => {
    const upstream = net.connect(target, targetHost);
    const pair = { client, upstream, cut: false, loseReply: false };
    live.add(pair);
    client.on('data', (chunk: Buffer) => {
      if (pair.cut) return;
      if (armed !== undefined && armed.markers.every((m) => chunk.includes(m))) {
        pair.loseReply = true;
        armed.sent();
        armed = undefined;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (pair.cut) return;
      if (pair.loseReply) {
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    const end = () => {
      if (pair.cut) return;
      live.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    client.on('close', end);
    upstream.on('error', end);
    upstream.on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get open() {
      return live.size;
    },
    cut() {
      for (const pair of live) {
        pair.cut = true;
        pair.client.resetAndDestroy();
        orphans.add(pair.upstream);
      }
      live.clear();
    },
    loseReplyTo(markers: string[]) {
      return new Promise<void>((sent) => (armed = { markers: markers.map((m) => Buffer.from(m)), sent }));
    },
    retarget(port: number) {
      target = port;
    },
    async close() {
      for (const pair of live) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      for (const upstream of orphans) upstream.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
