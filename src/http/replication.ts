import { clipText, type Durability, type ReplicationMember, type ReplicationState } from '../core/index.js';
import { MAX_DETAIL, lossSpan } from './problems.js';
import type { ReplicaPool } from './replica-pool.js';
import type { ServerInfo } from './transport.js';

/**
 * HttpStore.replication(): two levels seen as one. The revkit servers this
 * client fails over between come first (role `revkit server`, state
 * `serving`, `standby` or `down`), then the members of the replicated store
 * behind them as the serving server reports them. `serving` is the server
 * this client talks to; `failovers` counts the moves of both levels;
 * `durability` and a detected loss are the store's.
 */
export function replicationOf(pool: ReplicaPool, info: ServerInfo, durability: Durability): ReplicationState {
  const servingIndex = pool.pick();
  const servers: ReplicationMember[] = pool.view().map((r, i) => ({
    address: r.server, role: 'revkit server', state: i === servingIndex ? 'serving' : r.down ? 'down' : 'standby',
  }));
  const store = info.replication ?? null;
  const count = servers.length === 1 ? 'one revkit server' : `${servers.length} revkit servers over one store`;
  const state: ReplicationState = {
    serving: servers[servingIndex]?.address ?? null,
    members: [...servers, ...(store?.members ?? [])],
    durability: store?.durability ?? info.capabilities?.durability ?? durability,
    note: store ? `${count}; the store (${info.backend}): ${store.note}` : `${count}; the store (${info.backend}) reports no replication`,
    failovers: pool.failovers + (store?.failovers ?? 0),
  };
  const lost = lostIn(store?.lost);
  if (lost) state.lost = lost;
  return state;
}

/** The server's report of a loss, bounded and checked as a problem's dataLost is (http/problems.ts): an inverted range is none. */
function lostIn(given: unknown): ReplicationState['lost'] {
  if (typeof given !== 'object' || given === null) return undefined;
  const l = given as Record<string, unknown>;
  return {
    message: typeof l.message === 'string' ? clipText(l.message, MAX_DETAIL) : 'the store lost acknowledged writes',
    ...lossSpan(l),
    ...(typeof l.detectedAt === 'string' ? { detectedAt: clipText(l.detectedAt, 64) } : {}),
  };
}
