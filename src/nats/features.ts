/**
 * What the connected server offers, and which of it this backend uses:
 * TTL and atomic() are refused on every server version for now, with the
 * reason (see README.md, "Capabilities and server versions").
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { StreamConfig } from '@nats-io/jetstream';
import { UnsupportedError, type Capabilities, type Durability } from '../core/index.js';

/** What the connected server can do, read from its INFO at open. */
export interface NatsServerFeatures {
  /** The connected server's version at open; `lowestVersion` is what the guard follows. */
  version: string;
  /** The lowest version any server of the cluster showed this store (versions.ts); updated as servers are seen. */
  lowestVersion: string;
  /** Per-message TTL (`Nats-TTL`, stream `allow_msg_ttl`): nats-server 2.11+. */
  perKeyTtl: boolean;
  /** Atomic batch publish (`Nats-Batch-*`, stream `allow_atomic`): nats-server 2.12+. */
  atomicBatch: boolean;
  /** Direct get on this bucket's stream (`allow_direct`). */
  directGet: boolean;
  /** Largest message the server accepts (INFO `max_payload`). */
  maxPayload: number;
  /**
   * `Nats-Expected-Last-Subject-Sequence` holds on a replicated (R>1) stream under concurrent
   * publishes: nats-server 2.9.21+. Before, the check was a pre-check outside the RAFT proposal,
   * so concurrent publishes naming the same sequence could all be stored (nats-io/nats-server#4320,
   * fixed by #4319); seen here on 2.9.10 with three writers. Follows `lowestVersion`.
   */
  replicatedCas: boolean;
  /**
   * A consumer with a subject filter delivers every stored message it matches: nats-server 2.9.16+.
   * Before (as the 2.9.10 source reads), removing a key's oldest message (the per-key history limit) while the block's cache held
   * only its newest part set the key's first sequence too high, and a filtered consumer (or a
   * filtered get) started at or below it passed over the key's kept messages before it without a
   * sign (fixed by nats-server b59748510, which reloads the block). Seen here on 2.9.10: a watch
   * behind 4 hot keys after leader kills skipped 10–50 existing revisions. Follows `lowestVersion`.
   */
  filteredReads: boolean;
}

export function serverFeatures(nc: NatsConnection, cfg: StreamConfig): NatsServerFeatures {
  const version = nc.info?.version ?? '0.0.0';
  return {
    version,
    lowestVersion: version,
    perKeyTtl: versionAtLeast(version, 2, 11),
    atomicBatch: versionAtLeast(version, 2, 12),
    directGet: cfg.allow_direct === true,
    maxPayload: nc.info?.max_payload ?? 1024 * 1024,
    replicatedCas: versionAtLeast(version, 2, 9, 21),
    filteredReads: versionAtLeast(version, 2, 9, 16),
  };
}

/**
 * What this backend does. TTL and atomic() stay refused on every server
 * version for now: the 2.11 per-message TTL (`Nats-TTL`) and 2.12 atomic
 * batch publish paths are not implemented, because they could not be tested
 * against a real server here (v2.9.10). `features` reports what the server
 * offers; `capabilities` reports what this backend does.
 */
export function capabilitiesOf(cfg: StreamConfig, durability: Durability | undefined): Capabilities {
  const detected: Durability = durability
    ?? (cfg.storage === 'memory' ? 'memory' : (cfg.num_replicas ?? 1) > 1 ? 'replicated' : 'os-buffered');
  return { atomic: false, ttl: false, history: true, watch: true, crossProcess: true, durability: detected };
}

/** A refusal of ttl or atomic() with its reason; BaseStore validates first and only says "not supported". */
export function explainRefusal(err: unknown, features: NatsServerFeatures, backend: string): unknown {
  if (!UnsupportedError.is(err) || (err.operation !== 'ttl' && err.operation !== 'atomic')) return err;
  const [offered, needs] = err.operation === 'ttl' ? [features.perKeyTtl, '2.11'] : [features.atomicBatch, '2.12'];
  const version = features.version;
  return new UnsupportedError(err.operation, backend, offered
    ? `this server (${version}) offers it, but revkit's NATS backend does not use it yet`
    : `needs nats-server ${needs} or newer, this server is ${version}`);
}

export function versionAtLeast(version: string, major: number, minor: number, patch = 0): boolean {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(version);
  if (!m) return false;
  const [ma, mi, pa] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  return ma !== major ? ma > major : mi !== minor ? mi > minor : pa >= patch;
}

/**
 * A replicated stream where the per-key guard may not hold (some server of the cluster, so possibly
 * the stream's leader, older than 2.9.21): writes take the stream-wide guard too (serial.ts).
 * `lowestVersion`: the lowest version of any server this store learned of (versions.ts).
 */
export function needsSerialCas(lowestVersion: string, cfg: StreamConfig, unsafe: boolean | undefined): boolean {
  return (cfg.num_replicas ?? 1) > 1 && !versionAtLeast(lowestVersion, 2, 9, 21) && unsafe !== true;
}

/** a < b, by major.minor.patch (an unreadable version counts as lowest). */
export function versionBelow(a: string, b: string): boolean {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(b);
  if (!m) return false;
  return !versionAtLeast(a, Number(m[1]), Number(m[2]), Number(m[3] ?? 0));
}
