/**
 * Waits until `n` PostgreSQL backends wait on a lock in a statement naming a
 * store's tables (`prefix`), or sent by a pool with `applicationName` (a
 * group-commit batch names its tables through arrays). A state, not a time:
 * `tries` (20 ms apart) only bounds a hang, and the error lists what ran.
 */
import pg from 'pg';
import { PG_URL } from './postgres-pool.js';

export async function lockWaiters(n: number, prefix: string, options: { tries: number; applicationName?: string }): Promise<void> {
  const watcher = new pg.Client(PG_URL);
  await watcher.connect();
  try {
    for (let i = 0; i < options.tries; i++) {
      const { rows } = await watcher.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND (query LIKE '%' || $1 || '%' OR application_name = $2)`,
        [prefix, options.applicationName ?? null]);
      if ((rows[0]?.n ?? 0) >= n) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    const { rows } = await watcher.query(`SELECT state, wait_event_type, wait_event, left(query, 60) AS q FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle'`);
    throw new Error(`${n} statements never waited on the row lock: ${JSON.stringify(rows)}`);
  } finally {
    await watcher.end();
  }
}
