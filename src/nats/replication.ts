/**
 * Store.replication() for a bucket in a JetStream cluster: the server this
 * client is connected to, the bucket stream's RAFT leader and replicas as
 * JetStream reports them (current or lagging), what an acknowledgement means
 * for this bucket, and the leader changes this client has seen.
 *
 * Leader changes are counted from JetStream's own advisory
 * (`$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.<stream>`), subscribed to for a
 * replicated stream only, and from a different leader seen by replication()
 * itself (an advisory sent while this client was reconnecting is missed).
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { StreamConfig } from '@nats-io/jetstream';
import type { Durability, ReplicationMember, ReplicationState } from '../core/index.js';
import type { BucketClient } from './client.js';
import type { StreamSettings } from './settings.js';

export class BucketReplication {
  private leader: string | undefined;
  private changes = 0;
  private readonly advisories: Subscription;

  constructor(
    private readonly nc: NatsConnection,
    private readonly client: BucketClient,
    /** The stream's config, kept current (an operator may edit the replica count). */
    private readonly settings: StreamSettings,
    leader: string | undefined,
    /** Told of every leader change seen. */
    private readonly onLeaderChange: () => void = () => undefined,
    /** Writes carry the stream-wide guard too now (serial.ts). */
    private readonly serial: () => boolean = () => false,
  ) {
    this.leader = leader;
    // Subscribed for any bucket: a replicas=1 stream may be edited to R3 under this store.
    {
      this.advisories = nc.subscribe(`$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.${settings.config.name}`, {
        callback: (err, msg) => {
          if (err) return;
          try {
            this.sawLeader((msg.json() as { leader?: string }).leader);
          } catch {
            // not an advisory we can read: ignore it
          }
        },
      });
    }
  }

  private sawLeader(name: string | undefined): void {
    if (!name || name === this.leader) return;
    if (this.leader !== undefined) this.changes++;
    this.leader = name;
    this.onLeaderChange();
  }

  async state(): Promise<ReplicationState> {
    const info = await this.client.streamInfo();
    const cluster = info.cluster;
    this.sawLeader(cluster?.leader);
    const members: ReplicationMember[] = [];
    if (cluster?.leader) members.push({ address: cluster.leader, role: 'leader', state: 'current' });
    for (const r of cluster?.replicas ?? []) {
      const state = r.offline ? 'offline' : r.current ? 'current' : `lagging ${r.lag} operations`;
      members.push({ address: r.name, role: 'follower', state });
    }
    const cfg = this.settings.config;
    const durability = this.settings.durability;
    const server = this.nc.info?.server_name;
    const connected = this.nc.isClosed() ? null : this.nc.getServer();
    return {
      serving: connected === null ? null : server ? `${connected} (${server})` : connected,
      members,
      durability,
      note: durabilityNote(cfg, durability, cluster?.name)
        + (this.serial() ? ' Writes to the bucket are serialised (the stream-wide guard nats-server < 2.9.21 needs for compare-and-swap on a replicated stream).' : ''),
      failovers: this.changes,
    };
  }

  close(): void {
    this.advisories.unsubscribe();
  }
}

/** What an acknowledged write of this bucket has survived, in words (see docs/replication-nats.md). */
export function durabilityNote(cfg: StreamConfig, durability: Durability, clusterName: string | undefined): string {
  const r = cfg.num_replicas ?? 1;
  const where = `stream ${cfg.name}, ${cfg.storage} storage, replicas=${r}${clusterName ? ` in cluster ${clusterName}` : ''}`;
  const disk = cfg.storage === 'memory' ? 'in memory' : 'written to the OS (JetStream syncs files to disk every 2 minutes by default)';
  if (r >= 3) {
    return `${where}: JetStream acknowledges a write once a majority (${Math.floor(r / 2) + 1} of ${r}) has it ${disk}; `
      + `it survives the loss of ${Math.floor((r - 1) / 2)} server(s), data and service, and a leader change. Reported: ${durability}.`;
  }
  if (r === 2) {
    return `${where}: JetStream acknowledges a write once both servers have it ${disk}; it survives the loss of one server's data, `
      + `but writes stop while either server is down. Reported: ${durability}.`;
  }
  return `${where}: one server holds the bucket; losing that server's store loses acknowledged writes, and while it is down `
    + `the bucket is unavailable, cluster or not (use replicas=3). Reported: ${durability}.`;
}
