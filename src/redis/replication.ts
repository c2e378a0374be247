import type { Redis } from 'ioredis';
import type { ReplicationMember, ReplicationState } from '../core/index.js';
import type { DataLostError, Durability } from '../core/index.js';

/**
 * Follows which server this client's connection serves from: a change of
 * address (Sentinel handed over to a promoted replica) counts as a failover.
 */
export class ServingMember {
  private current: string | null = null;
  failovers = 0;
  private readonly onReady = () => {
    const now = this.address();
    if (now !== null && this.current !== null && now !== this.current) this.failovers++;
    if (now !== null) this.current = now;
  };

  constructor(private readonly client: Redis) {
    client.on('ready', this.onReady);
    if (client.status === 'ready') this.onReady();
  }

  /** host:port of the server the connection is open to, or null. */
  address(): string | null {
    if (this.client.status !== 'ready') return null;
    const stream = (this.client as unknown as { stream?: { remoteAddress?: string; remotePort?: number } }).stream;
    if (!stream?.remoteAddress || !stream.remotePort) return null;
    return `${stream.remoteAddress.includes(':') ? `[${stream.remoteAddress}]` : stream.remoteAddress}:${stream.remotePort}`;
  }

  detach(): void {
    this.client.off('ready', this.onReady);
  }
}

/**
 * The replication state as this client sees it now: the serving master (its
 * INFO replication names its replicas, with state and lag), the sentinels it
 * was given, what an acknowledgement means, and a detected loss.
 */
export async function replicationState(
  call: (...args: string[]) => Promise<unknown>, client: Redis, serving: ServingMember, durability: Durability, note: string, lost: DataLostError | undefined,
): Promise<ReplicationState> {
  const members: ReplicationMember[] = [];
  const address = serving.address();
  let role = 'master';
  try {
    const text = String(await call('INFO', 'replication'));
    const fields = new Map(text.split('\r\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)] as [string, string]));
    role = fields.get('role') ?? 'unknown';
    for (const [name, value] of fields) {
      if (!/^slave\d+$/.test(name)) continue;
      const r = new Map(value.split(',').map((kv) => kv.split('=') as [string, string]));
      members.push({ address: `${r.get('ip') ?? '?'}:${r.get('port') ?? '?'}`, role: 'replica', state: `${r.get('state') ?? '?'}, offset ${r.get('offset') ?? '?'}, lag ${r.get('lag') ?? '?'} s` });
    }
  } catch {
    role = 'unreachable';
  }
  if (address !== null) members.unshift({ address, role, state: 'serving' });
  const sentinels = (client.options as { sentinels?: Array<{ host?: string; port?: number }> | null }).sentinels ?? [];
  for (const s of sentinels) members.push({ address: `${s.host ?? 'localhost'}:${s.port ?? 26379}`, role: 'sentinel' });
  const state: ReplicationState = { serving: address, members, durability, note, failovers: serving.failovers };
  if (lost) state.lost = { ...pick(lost.details), message: lost.message };
  return state;
}

function pick(d: DataLostError['details']): { after?: number; upTo?: number; detectedAt?: string } {
  const out: { after?: number; upTo?: number; detectedAt?: string } = {};
  if (d.after !== undefined) out.after = d.after;
  if (d.upTo !== undefined) out.upTo = d.upTo;
  if (d.detectedAt !== undefined) out.detectedAt = d.detectedAt;
  return out;
}
