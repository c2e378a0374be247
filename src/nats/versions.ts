/**
 * The nats-server versions of the cluster, as far as a client can learn them
 * without a system account. What matters is the stream leader's: it alone
 * checks `Nats-Expected-Last-Subject-Sequence` (serial.ts), and leadership
 * moves. Stream info names the leader but not its version, and a server's
 * version is only in the INFO line it sends every connecting client (before
 * any authentication). So this store reads the INFO of:
 *
 * - every server its connection is on (at open and after every reconnect);
 * - every server the cluster advertises for clients (INFO `connect_urls`),
 *   with a short raw TCP connection that reads the INFO line and hangs up:
 *   at open, after every reconnect and every leader change, and at most
 *   every PROBE_EVERY_MS before a write.
 *
 * The version a write decides by is the LOWEST any server ever showed this
 * store: a server is kept at the lowest version it showed (safe when a proxy
 * or a half-done upgrade shows two), so after a rolling upgrade the guard
 * stays on until the store is opened again. A server that
 * advertises no client URL (`no_advertise`) and that this client never
 * connected to stays unknown: docs/replication-nats.md.
 */
import net from 'node:net';
import type { NatsConnection } from '@nats-io/transport-node';

const PROBE_TIMEOUT_MS = 1000;
export const PROBE_EVERY_MS = 30_000;
const MAX_INFO_BYTES = 64 * 1024;

interface InfoLine {
  server_name?: string;
  server_id?: string;
  version?: string;
  connect_urls?: string[];
}

export class ServerVersions {
  /** server name (or id, or address) → the version it last showed. */
  private readonly byServer = new Map<string, string>();
  private probing: Promise<void> | undefined;
  private probedAt = 0;
  private stopped = false;
  private statuses: ReturnType<NatsConnection['status']> | undefined;

  private readonly listeners: Array<(lowest: string) => void> = [];

  constructor(
    private readonly nc: NatsConnection,
    /** a < b (features.ts). */
    private readonly lower: (a: string, b: string) => boolean,
  ) {
    this.noteConnected();
    void this.follow();
  }

  /** Tells `listener` the lowest version now and whenever it changes. */
  onLowest(listener: (lowest: string) => void): void {
    this.listeners.push(listener);
    listener(this.lowest);
  }

  /** The lowest version known; '0.0.0' when none is (then every guard is on). */
  get lowest(): string {
    let low: string | undefined;
    for (const v of this.byServer.values()) if (low === undefined || this.lower(v, low)) low = v;
    return low ?? '0.0.0';
  }

  /** Every server this store knows of, with its version. */
  get known(): ReadonlyMap<string, string> {
    return this.byServer;
  }

  /** Probes the advertised servers now (at open, after a leader change); resolves when done. */
  probe(): Promise<void> {
    this.probing ??= this.probeAll().finally(() => {
      this.probing = undefined;
      this.probedAt = Date.now();
    });
    return this.probing;
  }

  /** Waits for a probe under way, or starts one when the last is older than PROBE_EVERY_MS. */
  async settled(): Promise<void> {
    if (this.probing) await this.probing;
    else if (Date.now() - this.probedAt >= PROBE_EVERY_MS) await this.probe();
  }

  stop(): void {
    this.stopped = true;
    // The driver's status iterator has stop() (it unregisters the listener); its type does not say so.
    (this.statuses as { stop?: () => void } | undefined)?.stop?.();
  }

  private note(name: string | undefined, version: string | undefined): void {
    if (!name || !version) return;
    const before = this.lowest;
    const had = this.byServer.get(name);
    if (had !== undefined && !this.lower(version, had)) return;
    this.byServer.set(name, version);
    if (this.lowest !== before) for (const l of this.listeners) l(this.lowest);
  }

  private noteConnected(): void {
    const info = this.nc.info;
    if (info) this.note(info.server_name || info.server_id || this.nc.getServer(), info.version);
  }

  private async follow(): Promise<void> {
    this.statuses = this.nc.status();
    for await (const s of this.statuses) {
      if (this.stopped) return;
      if (s.type === 'reconnect') {
        this.noteConnected();
        void this.probe();
      }
    }
  }

  private async probeAll(): Promise<void> {
    const urls = new Set(this.nc.info?.connect_urls ?? []);
    await Promise.all([...urls].map(async (url) => {
      const info = await readInfo(url).catch(() => undefined);
      if (info) this.note(info.server_name || info.server_id || url, info.version);
    }));
  }
}

/** The INFO line a NATS server sends a new connection (`host:port`, IPv6 in brackets). */
export function readInfo(address: string): Promise<InfoLine> {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  if (!m) return Promise.reject(new Error(`not host:port: ${address}`));
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(m[2]), m[1] as string);
    let buf = '';
    const done = (err: Error | undefined, info?: InfoLine) => {
      socket.destroy();
      if (err) reject(err);
      else resolve(info as InfoLine);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(new Error('timeout')));
    socket.on('error', (err) => done(err));
    socket.on('data', (d) => {
      buf += d.toString('utf8');
      const end = buf.indexOf('\r\n');
      if (end === -1) {
        if (buf.length > MAX_INFO_BYTES) done(new Error('no INFO line'));
        return;
      }
      const line = buf.slice(0, end);
      if (!line.startsWith('INFO ')) return done(new Error('not a NATS server'));
      try {
        done(undefined, JSON.parse(line.slice(5)) as InfoLine);
      } catch (err) {
        done(err as Error);
      }
    });
  });
}
