/**
 * A proxy in front of nats-server that understands the client side of the
 * NATS protocol well enough to hold back one publish: armed with
 * `holdNextPublish(prefix)`, it keeps the next PUB/HPUB whose subject starts
 * with `prefix` instead of forwarding it, and sends it on just before the next
 * publish to such a subject (or at `release()`). The client times out waiting
 * for its acknowledgement; the server applies the message later — a publish
 * that a cluster commits after the client gave up on it (a leader change).
 * Everything else, and all traffic from the server, passes unchanged.
 */
import net from 'node:net';

export interface NatsHoldProxy {
  readonly port: number;
  /** How many held publishes were sent on to the server. */
  readonly released: number;
  holdNextPublish(subjectPrefix: string): void;
  release(): void;
  close(): Promise<void>;
}

export async function startNatsHoldProxy(targetPort: number): Promise<NatsHoldProxy> {
  let armed: string | undefined;
  let held: { upstream: net.Socket; bytes: Buffer; prefix: string } | undefined;
  let released = 0;
  const sockets = new Set<net.Socket>();
  const release = () => {
    if (!held) return;
    held.upstream.write(held.bytes);
    held = undefined;
    released++;
  };

  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk) => client.write(chunk));
    client.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const command = nextCommand(pending);
        if (!command) break;
        pending = pending.subarray(command.length);
        const bytes = Buffer.from(command.bytes);
        if (command.publishTo !== undefined) {
          if (armed !== undefined && command.publishTo.startsWith(armed)) {
            held = { upstream, bytes, prefix: armed };
            armed = undefined;
            continue;
          }
          if (held && command.publishTo.startsWith(held.prefix)) release();
        }
        upstream.write(bytes);
      }
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get released() {
      return released;
    },
    holdNextPublish(prefix) {
      armed = prefix;
    },
    release,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** One complete client command at the start of `buf`: its bytes, and the subject when it is a publish. */
function nextCommand(buf: Buffer): { length: number; bytes: Buffer; publishTo?: string } | undefined {
  const eol = buf.indexOf('\r\n');
  if (eol < 0) return undefined;
  const line = buf.subarray(0, eol).toString('latin1');
  const words = line.trim().split(/\s+/);
  const op = (words[0] ?? '').toUpperCase();
  if (op !== 'PUB' && op !== 'HPUB') return { length: eol + 2, bytes: buf.subarray(0, eol + 2) };
  const total = Number(words[words.length - 1]);
  const length = eol + 2 + total + 2;
  if (buf.length < length) return undefined;
  return { length, bytes: buf.subarray(0, length), publishTo: words[1] };
}
