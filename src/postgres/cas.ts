/**
 * How one conditional put or delete (compare-and-swap) is done: its
 * condition (ifAbsent, ifRevision, ifValue), sent alone or with others by
 * group commit (batch.ts), and an ifValue the server cannot decide compared
 * here. The statements are in sql/cas.ts and sql/batch.ts.
 */
import {
  BackendError, ConflictError, deepEqual, isTombstone, noteWrittenBytes,
  type DeleteOptions, type Entry, type FailedCheck, type PutOptions, type StoredRecord,
} from '../core/index.js';
import { GroupSender, MAX_BATCH, type Write, type WriteRow } from './batch.js';
import type { Connections } from './connection.js';
import type { WakeUps } from './notify.js';
import type { Revisions } from './revisions.js';
import { num, type RowCodec } from './rows.js';
import type { Names } from './schema.js';
import { batchWriteSql } from './sql/batch.js';
import { deleteSql, putRevisionSql, putSql } from './sql/cas.js';
import type { CondKind } from './sql/condition.js';

/** ifValue compared in process is guarded by the live revision; a concurrent write of an equal value sends it round again, this often at most. */
const IF_VALUE_ROUNDS = 64;

export class ConditionalWrites {
  private readonly sender: GroupSender<Write, WriteRow>;

  constructor(
    private readonly conn: Connections,
    private readonly names: Names,
    private readonly rows: RowCodec,
    private readonly revisions: Revisions,
    private readonly wakeUps: Pick<WakeUps, 'signalChange'>,
    /** The store's getRecord: what an ifValue compared here reads. */
    private readonly read: (key: string) => Promise<StoredRecord | null>,
    batchesInFlight: number,
  ) {
    this.sender = new GroupSender({ one: (w) => this.writeOne(w), many: (ws) => this.writeMany(ws) }, batchesInFlight, MAX_BATCH, (w) => w.key);
  }

  /**
   * A conditional put: the entry written, or ConflictError. With `ownWriter`, the condition is 'own': the
   * key holds the write of options.ifRevision by that writer (update() without a read, core/own-writes.ts).
   */
  async put<T>(key: string, value: T, options: PutOptions, ownWriter?: string): Promise<Entry<T>> {
    const { bytes, value: copy } = this.rows.encode(value);
    const [kind, arg, expected] = ownWriter === undefined ? this.condition(options) : ['own' as const, options.ifRevision, options.ifRevision ?? null];
    const write: Write = { key, del: false, value: bytes, ttlMs: options.ttlMs ?? null, writer: options.writer ?? null, kind, arg };
    if (ownWriter !== undefined) write.own = ownWriter;
    const row = kind === 'value' ? await this.byValue(write, options.ifValue) : await this.putRow(write, expected);
    this.wakeUps.signalChange([key]);
    this.revisions.acked(key, num(row.revision));
    const entry = this.rows.toEntry<T>(key, { ...row, writer: options.writer ?? null }, { value: copy });
    noteWrittenBytes(options, entry, bytes);
    return entry;
  }

  /** A put until it is written or fails. */
  private async putRow(write: Write, expected: FailedCheck['expected']): Promise<WriteRow> {
    for (let round = 1; ; round++) {
      // 'never' has no place in the batch statement's conditions: it goes alone.
      const row = write.kind === 'never' ? await this.writeOne(write) : await this.sender.submit(write);
      if (row.revision !== null && row.revision !== undefined) return row;
      if (row.found || (write.kind !== 'none' && write.kind !== 'absent' && write.kind !== 'never')) {
        throw new ConflictError([{ key: write.key, expected, actual: row.found ? num(row.actual) : null }]);
      }
      // The key was created after this statement's snapshot and the
      // condition failed on it: run again so the new snapshot classifies it.
      if (round >= 5) throw new BackendError(`put of ${JSON.stringify(write.key)} kept racing concurrent creators; nothing was written`, { transient: true, ambiguous: false });
    }
  }

  /** A conditional delete: the tombstone's revision, null when there was nothing to delete, or ConflictError. */
  async delete(key: string, options: DeleteOptions): Promise<number | null> {
    const [kind, arg, expected] = this.condition(options);
    const write: Write = { key, del: true, value: null, ttlMs: null, writer: options.writer ?? null, kind, arg };
    const row = kind === 'value' ? await this.byValue(write, options.ifValue) : kind === 'never' ? await this.writeOne(write) : await this.sender.submit(write);
    if (row.revision !== null && row.revision !== undefined) {
      this.wakeUps.signalChange([key]);
      this.revisions.acked(key, num(row.revision));
      return num(row.revision);
    }
    if (row.found ? row.ok !== true : kind === 'rev') {
      throw new ConflictError([{ key, expected, actual: row.found ? num(row.actual) : null }]);
    }
    return null;
  }

  /**
   * A put or delete under ifValue. The statement compares the values as
   * jsonb where it can (one round trip, group commit as usual). Where it
   * cannot — a `\u` escape on either side: jsonb refuses `\u0000` and lone
   * surrogates, which JSON.stringify writes —, or with the escape in the
   * condition already, the decoded values are compared here with deepEqual,
   * as the memory store does, and the write is guarded by the live revision
   * that was read; a conflict there means the key moved: compare again.
   * Answers the written row, or throws ConflictError.
   */
  private async byValue(write: Write, ifValue: unknown): Promise<WriteRow> {
    const conflict = (actual: number | null) => new ConflictError([{ key: write.key, expected: 'value', actual }]);
    if (!(this.rows.json && hasUnicodeEscape(write.arg))) {
      const row = await this.sender.submit(write);
      if (row.revision !== null && row.revision !== undefined) return row;
      if (!row.found) throw conflict(null);
      if (row.ok !== null && row.ok !== undefined) throw conflict(num(row.actual));
      // NULL: undecided by the statement (nothing was written); compare here.
    }
    for (let round = 1; ; round++) {
      const current = await this.read(write.key);
      if (current === null || isTombstone(current) || !deepEqual(current.value, ifValue)) throw conflict(current?.revision ?? null);
      const row = await this.sender.submit({ ...write, kind: 'liverev', arg: current.revision });
      if (row.revision !== null && row.revision !== undefined) return row;
      if (round >= IF_VALUE_ROUNDS) throw conflict(row.found ? num(row.actual) : null);
    }
  }

  /** A write in its own statement: what a lone writer sends. */
  private async writeOne(w: Write): Promise<WriteRow> {
    const tail = w.kind === 'none' || w.kind === 'absent' || w.kind === 'never' ? [] : [w.arg];
    const what = w.del ? 'delete' : 'put';
    const name = `${w.del ? 'del' : 'put'}_${w.kind}${this.rows.json ? 'j' : 'b'}`;
    if (w.del) {
      return (await this.conn.withClient(what, true, (c) => this.conn.q(c, name, () => deleteSql(this.names, w.kind, this.rows.json), [w.key, w.writer, ...tail]))).rows[0] as WriteRow;
    }
    const params = [w.key, w.value, w.ttlMs, w.writer, ...tail];
    if (w.kind === 'own') {
      return (await this.conn.withClient(what, true, (c) => this.conn.q(c, 'put_own', () => putRevisionSql(this.names, true), [...params, w.own]))).rows[0] as WriteRow;
    }
    if (w.kind === 'rev') {
      const lean = (await this.conn.withClient(what, true, (c) => this.conn.q(c, 'put_lean', () => putRevisionSql(this.names), params))).rows[0] as WriteRow;
      // Not written although the snapshot held the expected revision: a concurrent writer came first; see putRevisionSql.
      if (lean.revision !== null || !lean.found || num(lean.actual) !== w.arg) return lean;
    }
    return (await this.conn.withClient(what, true, (c) => this.conn.q(c, name, () => putSql(this.names, w.kind, this.rows.json), params))).rows[0] as WriteRow;
  }

  /** Writes of distinct keys in one statement (group commit); a row per write. */
  private async writeMany(ws: Write[]): Promise<WriteRow[]> {
    const col = <V>(f: (w: Write) => V): V[] => ws.map(f);
    const r = await this.conn.withClient('batched write', true, (c) => this.conn.q(c, `batch${this.rows.json ? 'j' : 'b'}`, () => batchWriteSql(this.names, this.rows.json), [
      col((w) => w.key), col((w) => w.value), col((w) => w.ttlMs), col((w) => w.writer), col((w) => w.kind),
      col((w) => (w.kind === 'rev' || w.kind === 'liverev' || w.kind === 'own' ? w.arg : null)), col((w) => (w.kind === 'value' ? w.arg : null)), col((w) => w.del),
      col((w) => w.own ?? null),
    ]));
    const byKey = new Map(r.rows.map((row) => [row.key as string, row]));
    return ws.map((w) => {
      const row = byKey.get(w.key);
      if (!row) throw new BackendError(`postgres batched write returned no row for ${JSON.stringify(w.key)}`, { transient: false });
      return row;
    });
  }

  private condition(options: PutOptions): [CondKind, unknown, FailedCheck['expected']] {
    if (options.ifAbsent) return ['absent', null, 'absent'];
    if (options.ifRevision === 0) return ['never', null, 0];
    if (options.ifRevision !== undefined) return ['rev', options.ifRevision, options.ifRevision];
    if (options.ifValue !== undefined) return ['value', this.rows.encodeCondition(options.ifValue), 'value'];
    return ['none', null, null];
  }
}

/** Whether encoded JSON holds the bytes `\u` (a unicode escape, or a backslash before a u). */
function hasUnicodeEscape(bytes: unknown): boolean {
  const b = bytes as Uint8Array;
  for (let i = 0; i + 1 < b.byteLength; i++) if (b[i] === 0x5c && b[i + 1] === 0x75) return true;
  return false;
}
