/**
 * update()'s look for its own write beyond a key's history (core/own-write.ts findWrite): the change log
 * is searched from just above `base` for the change of `key` carrying `writer`, on the server (scripts.ts
 * FIND_WRITE): only a match comes back, not the values it passes over. It says "absent" only when the log
 * kept every change above `base` (nothing above it trimmed) and was searched to its head.
 */
import type { ScriptRunner } from './runner.js';
import type { StoreKeys } from './keys.js';
import { unpack, type PackedRecord } from './records.js';
import { SCRIPTS } from './scripts.js';
import { MAX_SEQ } from './watch.js';

const PAGE = 1_000;
/** Changes of the whole store searched at most: beyond them the answer is "cannot tell". */
const MAX_PAGES = 20;

export async function findWriteInLog(
  run: ScriptRunner['run'], keys: StoreKeys, key: string, writer: string, base: number,
): Promise<PackedRecord | 'absent' | undefined> {
  let after = `${base}-${MAX_SEQ}`;
  for (let page = 0; page < MAX_PAGES; page++) {
    const reply = await run(SCRIPTS.findWrite, [keys.meta, keys.log], [after, base, key, writer, PAGE], 'history', false);
    if (reply[0] === 'FOUND') return unpack(Buffer.from(reply[1] as Buffer));
    if (reply[0] === 'ABSENT') return 'absent';
    if (reply[0] !== 'MORE') return undefined;
    after = String(reply[1]);
  }
  return undefined;
}
