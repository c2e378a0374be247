/**
 * update()'s look for its own write beyond a key's history (core/own-write.ts findWrite): the change log
 * is read from just above `base` for the change of `key` carrying `writer`. It can say "absent" only when
 * the log kept every change above `base` (nothing above it trimmed) and was read to its head.
 */
import type { Reply, ScriptRunner } from './runner.js';
import type { StoreKeys } from './keys.js';
import { unpack, type PackedRecord } from './records.js';
import { SCRIPTS } from './scripts.js';

const PAGE = 1_000;
/** Changes of the whole store read at most: beyond them the answer is "cannot tell". */
const MAX_PAGES = 20;
const MAX_SEQ = '18446744073709551615';

export async function findWriteInLog(
  run: ScriptRunner['run'], keys: StoreKeys, key: string, writer: string, base: number,
): Promise<PackedRecord | 'absent' | undefined> {
  let after = `${base}-${MAX_SEQ}`;
  for (let page = 0; page < MAX_PAGES; page++) {
    const reply: Reply = await run(SCRIPTS.changes, [keys.meta, keys.log], [after, PAGE], 'history', false);
    // WATCHLOST: a gap of revisions a failover skipped (lineage.ts); trimmed above `base`: changes may be gone.
    if (reply[0] !== 'OK' || (reply[1] as number) > base) return undefined;
    const entries = reply[3] as Array<[Buffer, Buffer[]]>;
    for (const [id, fields] of entries) {
      after = id.toString();
      if ((fields[1] as Buffer).toString('utf8') !== key) continue;
      const record = unpack(Buffer.from(fields[3] as Buffer));
      if (record.writer === writer) return record;
    }
    if (entries.length < PAGE) return 'absent';
  }
  return undefined;
}
