import { ConflictError, conditionFailure, type AtomicOp, type Condition, type Entry, type FailedCheck, type StoredRecord } from '../core/index.js';
import type { Reply } from './runner.js';

/** ifValue is a compare on the revision read; a concurrent write of an equal value sends it round again, this often at most. */
const IF_VALUE_ROUNDS = 64;

/**
 * Runs a single-key write under its condition. ifValue compares decoded
 * values, which Lua cannot: the value is compared here (on what `read`
 * answers) and the write is guarded by the live revision it was read at; a
 * conflict there means the key moved, so it is compared again.
 */
export async function conditionalWrite(
  key: string,
  cond: Condition,
  write: (mode: string, want: number | '') => Promise<Reply>,
  read: (key: string) => Promise<StoredRecord | null>,
): Promise<Reply> {
  const attempt = async (mode: string, want: number | '') => {
    const reply = await write(mode, want);
    if (reply[0] !== 'CONFLICT') return reply;
    const actual = reply[1] as number;
    throw new ConflictError([{ key, expected: mode === 'absent' ? 'absent' : (want as number), actual: actual < 0 ? null : actual }]);
  };
  if (cond.ifValue === undefined) {
    if (cond.ifAbsent) return attempt('absent', '');
    if (cond.ifRevision !== undefined) return attempt('rev', cond.ifRevision);
    return attempt('', '');
  }
  for (let round = 1; ; round++) {
    const current = await read(key);
    const failure = conditionFailure(key, current, { ifValue: cond.ifValue });
    if (failure) throw new ConflictError([failure]);
    try {
      return await attempt('liverev', (current as Entry).revision);
    } catch (err) {
      if (!ConflictError.is(err)) throw err;
      if (round >= IF_VALUE_ROUNDS) throw new ConflictError([{ key, expected: 'value', actual: err.actual }]);
    }
  }
}

/** The atomic script's arguments after the trim settings: the count, then four per op (kind, key, revision or value, TTL). */
export function atomicArgs(ops: AtomicOp[], encode: (value: unknown) => Buffer): Array<string | number | Buffer> {
  const args: Array<string | number | Buffer> = [ops.length];
  for (const op of ops) {
    if (op.type === 'check') args.push('c', op.key, op.revision === null ? '' : op.revision, 0);
    else if (op.type === 'set') args.push('s', op.key, encode(op.value), op.ttlMs ?? 0);
    else args.push('d', op.key, '', 0);
  }
  return args;
}

/** The failed checks of an atomic commit the script refused: (key, wanted revision or '', actual or -1) triples. */
export function atomicConflict(flat: Array<Buffer | number>): ConflictError {
  const failed: FailedCheck[] = [];
  for (let i = 0; i < flat.length; i += 3) {
    const want = String(flat[i + 1]);
    const actual = Number(flat[i + 2]);
    failed.push({ key: String(flat[i]), expected: want === '' ? 'absent' : Number(want), actual: actual < 0 ? null : actual });
  }
  return new ConflictError(failed);
}
