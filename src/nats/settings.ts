/**
 * The bucket stream's config as the server last gave it. An operator may
 * change a live bucket (`nats stream edit KV_<bucket> --replicas 3`), and
 * whether writes need the stream-wide guard (serial.ts), where reads go
 * (reads.ts) and what `capabilities.durability` says all follow
 * `num_replicas`. So the config is taken from every stream info this store
 * fetches (after errors, after a leader change, replication(), headRevision)
 * and fetched again before a write when the last one is older than
 * REFRESH_MS. A change made by an operator reaches a store at the latest
 * REFRESH_MS later (its next write after that); docs/replication-nats.md says
 * what that window means.
 */
import type { StreamConfig, StreamInfo } from '@nats-io/jetstream';
import type { Durability } from '../core/index.js';
import type { BucketClient } from './client.js';
import { capabilitiesOf } from './features.js';

/** How old the stream's config may be when a write decides on its guard. */
export const REFRESH_MS = 2000;

export class StreamSettings {
  private cfg: StreamConfig;
  private fetchedAt: number;
  private pending: Promise<unknown> | undefined;

  constructor(
    private readonly client: BucketClient,
    info: StreamInfo,
    /** The durability the options named (then it is not derived from the config). */
    private readonly namedDurability: Durability | undefined,
    /** Told when the replica count changed (the store's capabilities follow it). */
    private readonly onChange: (cfg: StreamConfig) => void,
  ) {
    this.cfg = info.config;
    this.fetchedAt = Date.now();
    client.onStreamInfo((i) => this.take(i));
    client.onCallError(() => this.invalidate());
  }

  get config(): StreamConfig {
    return this.cfg;
  }

  get replicas(): number {
    return this.cfg.num_replicas ?? 1;
  }

  get durability(): Durability {
    return capabilitiesOf(this.cfg, this.namedDurability).durability;
  }

  /** The config, fetched again first when older than REFRESH_MS (one fetch for all callers meanwhile). */
  async fresh(): Promise<StreamConfig> {
    if (Date.now() - this.fetchedAt >= REFRESH_MS) {
      this.pending ??= this.client.streamInfo().finally(() => {
        this.pending = undefined;
      });
      await this.pending;
    }
    return this.cfg;
  }

  /** Fetch again before the next decision (an error, a leader change: the config may have changed too). */
  invalidate(): void {
    this.fetchedAt = 0;
  }

  private take(info: StreamInfo): void {
    const before = this.cfg.num_replicas ?? 1;
    this.cfg = info.config;
    this.fetchedAt = Date.now();
    if ((info.config.num_replicas ?? 1) !== before) this.onChange(info.config);
  }
}
