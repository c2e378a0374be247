/**
 * How an atomic() commit is done: one transaction that locks every key of
 * the batch, checks every condition on the locked rows and writes it all
 * with one revision. The statements are in sql/atomic.ts.
 */
import { BackendError, ConflictError, conditionFailure, type AtomicOp, type FailedCheck, type StoredRecord } from '../core/index.js';
import type { Connections } from './connection.js';
import type { WakeUps } from './notify.js';
import type { Revisions } from './revisions.js';
import { num, type Row, type RowCodec } from './rows.js';
import type { Names } from './schema.js';
import { atomicLockSql, atomicPlaceholderSql, atomicUnplaceSql, atomicWriteSql } from './sql/atomic.js';

/**
 * atomic() spans round trips while it holds a revision: a client that stops
 * in between (paused, partitioned, killed without its socket closing) would
 * hold every watch of the store back. The server ends such a transaction
 * after this long idle (idle_in_transaction_session_timeout, set for the
 * transaction only); its caller then gets a transient, ambiguous BackendError.
 */
const ATOMIC_IDLE_TIMEOUT_MS = 10_000;

/** What a commit uses of its store. */
export interface AtomicParts {
  conn: Connections;
  names: Names;
  rows: RowCodec;
  revisions: Revisions;
  wakeUps: Pick<WakeUps, 'signalChange'>;
  /** The store's headRevision(): what a commit that wrote nothing and saw no written key answers. */
  head: () => Promise<number>;
}

/**
 * One transaction: lock every row the batch touches (existing rows in key
 * order, placeholders for missing keys), evaluate every check on the locked
 * rows with conditionFailure() (so the ConflictError lists every failed
 * check), then write everything with one revision drawn after all locks.
 * A placeholder that cannot be inserted (the key was created after our
 * snapshot) or a deadlock restarts the transaction; nothing was written.
 */
export async function commitAtomicBatch(parts: AtomicParts, ops: AtomicOp[]): Promise<{ revision: number }> {
  const { conn, names, rows, revisions } = parts;
  const values = new Map<string, Buffer>();
  for (const op of ops) if (op.type === 'set') values.set(op.key, rows.encode(op.value).bytes);
  const keys = [...new Set(ops.map((op) => op.key))].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (let attempt = 1; ; attempt++) {
    let committing = false;
    let retry = false;
    try {
      const result = await conn.withClient('atomic', 'commit', async (client, call) => {
        // One round trip; the timeout bounds how long a stalled client can hold a revision (ATOMIC_IDLE_TIMEOUT_MS).
        await client.query(`BEGIN; SET LOCAL idle_in_transaction_session_timeout = ${ATOMIC_IDLE_TIMEOUT_MS}`);
        let open = true;
        const rollback = async () => {
          open = false;
          await client.query('ROLLBACK');
        };
        try {
          const locked = new Map<string, Row>();
          let now = Date.now();
          for (const row of (await conn.q(client, 'alock', () => atomicLockSql(names), [keys])).rows) {
            locked.set(row.key as string, row);
            now = num(row.now);
          }
          const missing = keys.filter((k) => !locked.has(k));
          if (missing.length > 0) {
            const placed = await conn.q(client, 'aplace', () => atomicPlaceholderSql(names), [missing]);
            if (placed.rows.length < missing.length) {
              retry = true;
              await rollback();
              return undefined;
            }
          }
          const record = (key: string): StoredRecord | null => {
            const row = locked.get(key);
            if (!row) return null;
            // Checks need only the revision and liveness, not the value.
            return rows.toRecord(key, row, now, true);
          };
          const isLive = (key: string) => {
            const rec = record(key);
            return rec !== null && !('deleted' in rec);
          };
          const failures: FailedCheck[] = [];
          for (const op of ops) {
            if (op.type !== 'check') continue;
            const failure = conditionFailure(op.key, record(op.key), op.revision === null ? { ifAbsent: true } : { ifRevision: op.revision }, now);
            if (failure) failures.push(failure);
          }
          if (failures.length > 0) {
            await rollback();
            throw new ConflictError(failures);
          }
          const wk: string[] = [], wv: (Buffer | null)[] = [], wd: boolean[] = [], wt: (number | null)[] = [], wc: boolean[] = [];
          const written = new Set<string>();
          for (const op of ops) {
            if (op.type === 'set') {
              wk.push(op.key); wv.push(values.get(op.key) as Buffer); wd.push(false); wt.push(op.ttlMs ?? null); wc.push(isLive(op.key));
              written.add(op.key);
            } else if (op.type === 'delete' && isLive(op.key)) {
              wk.push(op.key); wv.push(null); wd.push(true); wt.push(null); wc.push(true);
              written.add(op.key);
            }
          }
          const unused = missing.filter((k) => !written.has(k));
          if (wk.length === 0) {
            // Writes nothing: draw no revision (the next write would get one above it, unseen by a watch from
            // what we answer); answer the highest committed revision the commit saw (DESIGN §3).
            if (unused.length > 0) await conn.q(client, 'aunplace', () => atomicUnplaceSql(names), [unused]);
            committing = true;
            await client.query('COMMIT');
            return { revision: Math.max(0, ...[...locked.values()].map((row) => num(row.revision))), written: [] as string[] };
          }
          const w = await conn.q(client, 'awrite', () => atomicWriteSql(names), [wk, wv, wd, wt, wc, unused]);
          committing = true;
          call.mayCommit = true;
          await client.query('COMMIT');
          return { revision: num(w.rows[0]?.revision), written: wk };
        } catch (err) {
          if (open && !committing) await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      });
      if (retry || result === undefined) {
        if (attempt >= 8) throw new BackendError('atomic commit kept racing concurrent creators; nothing was written', { transient: true, ambiguous: false });
        continue;
      }
      if (result.written.length > 0) parts.wakeUps.signalChange(keys);
      // Wrote nothing and saw no written key: the head, a revision already committed (0 would replay everything before it).
      if (result.written.length === 0 && result.revision === 0) return { revision: await parts.head() };
      // Every key written, sets and deletes (a tombstone is a change a failover can lose too); a delete of a key
      // that was not live wrote nothing to check for.
      for (const key of result.written) revisions.acked(key, result.revision);
      revisions.delivered(result.revision);
      return { revision: result.revision };
    } catch (err) {
      // A deadlock or serialization failure before COMMIT rolled everything back: try again.
      if (BackendError.is(err) && err.transient && !err.ambiguous && !committing && attempt < 8 && /40001|40P01/.test(err.message)) continue;
      throw err;
    }
  }
}
