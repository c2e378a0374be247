/**
 * What a PostgreSQL store reports of its replication: which member serves,
 * the standbys the primary streams to (pg_stat_replication), and what an
 * acknowledgement means — from synchronous_commit and
 * synchronous_standby_names, as the serving member has them for this store's
 * sessions:
 *
 * - synchronous_commit = on / remote_write / remote_apply with a non-empty
 *   synchronous_standby_names: a commit is acknowledged only after a
 *   synchronous standby has it (flushed / written to its OS / applied) →
 *   "replicated". With no such standby attached, commits wait (nothing is
 *   acknowledged without one).
 * - local, or no synchronous_standby_names: acknowledged after the primary's
 *   own WAL flush; standbys follow asynchronously → "fsync" (a failover may
 *   lose the last acknowledged commits: lineage.ts detects it).
 * - off (or fsync off): acknowledged before any flush → "os-buffered".
 */
import type { PoolClient } from 'pg';
import type { Durability, ReplicationMember } from '../core/index.js';
import { num, type Row } from './rows.js';

export function durabilityOf(fsync: string, syncCommit: string, standbys: string): Durability {
  if (fsync !== 'on' || syncCommit === 'off') return 'os-buffered';
  if (standbys.trim() !== '' && (syncCommit === 'on' || syncCommit === 'remote_apply' || syncCommit === 'remote_write')) return 'replicated';
  return 'fsync';
}

/** How durabilityOf's answer came about, in words (ReplicationState.note). */
export function durabilityNote(syncCommit: string, standbys: string, attachedSync: number): string {
  const names = standbys.trim();
  if (syncCommit === 'off') return 'synchronous_commit = off: a commit is acknowledged before it is flushed anywhere';
  if (names === '') return `synchronous_commit = ${syncCommit}, synchronous_standby_names empty: standbys are asynchronous, a failover can lose acknowledged commits (revkit detects it: DataLostError)`;
  if (syncCommit === 'local') return `synchronous_commit = local: commits do not wait for the synchronous standbys (${names}); a failover can lose acknowledged commits`;
  const what = syncCommit === 'remote_write' ? "written to a synchronous standby's OS (not yet flushed)" : syncCommit === 'remote_apply' ? 'applied on a synchronous standby' : 'flushed on a synchronous standby';
  return `synchronous_commit = ${syncCommit}, synchronous_standby_names = ${names}: a commit is acknowledged once ${what}; ${attachedSync} synchronous standby(s) attached now${attachedSync === 0 ? ' (commits wait until one is)' : ''}`;
}

export const SETTINGS_SQL = `SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc, current_setting('synchronous_standby_names') AS standbys,
  (SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')) AS attached`;

const STANDBYS_SQL = `SELECT application_name, client_addr::text AS addr, state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag
  FROM pg_stat_replication ORDER BY application_name`;

/** The serving member's settings and standbys, on a connection to it. */
export async function readReplication(client: PoolClient): Promise<{ durability: Durability; note: string; standbys: ReplicationMember[] }> {
  const s = (await client.query<Row>(SETTINGS_SQL)).rows[0] ?? {};
  const sc = String(s.sc);
  const names = String(s.standbys);
  const standbys = (await client.query<Row>(STANDBYS_SQL)).rows.map((r) => ({
    address: `${String(r.application_name || 'standby')}@${String(r.addr ?? 'local')}`,
    role: 'standby',
    state: `${String(r.state)}, ${String(r.sync_state)}${r.lag === null || r.lag === undefined ? '' : `, ${num(r.lag)} bytes behind`}`,
  }));
  return { durability: durabilityOf(String(s.fsync), sc, names), note: durabilityNote(sc, names, num(s.attached)), standbys };
}
