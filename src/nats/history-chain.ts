/**
 * A key's kept history on a server whose filtered reads may pass over kept
 * messages (features.ts, `filteredReads`). The consumer's answer is checked
 * link by link: every revkit write names the message it replaced
 * (records.ts), so a named predecessor that the answer lacks is read by its
 * stream sequence (STREAM.MSG.GET by sequence, no subject filter involved).
 * A predecessor the per-key limit removed ends the walk; a write by another
 * client names none, and the answer is taken as it is there.
 */
import type { MsgHdrs } from '@nats-io/transport-node';
import type { MsgRequest } from '@nats-io/jetstream';
import type { BucketClient } from './client.js';
import { previousOf } from './records.js';

export interface KeptMessage {
  seq: number;
  headers: MsgHdrs | undefined;
  data: Uint8Array;
  /** The server's store time, where the read told it. */
  storedAt: string | undefined;
}

/** `delivered`: the consumer's answer, oldest first. Returns the history oldest first, at most `depth` long. */
export async function completeHistory(client: BucketClient, subject: string, delivered: KeptMessage[], depth: number): Promise<KeptMessage[]> {
  let j = delivered.length - 1;
  let current = delivered[j--];
  if (current === undefined) return [];
  const newestFirst = [current];
  for (let reads = 0; newestFirst.length < depth;) {
    const prev = previousOf(current.headers);
    const older = j >= 0 ? delivered[j] : undefined;
    // Unnamed, or named and delivered (or older than the next delivered: another client's write in between).
    if (prev === undefined || prev === 0 || (older !== undefined && prev <= older.seq)) {
      if (older === undefined) break;
      current = older;
      j--;
    } else {
      if (reads++ >= depth) break;
      const passedOver = await client.messageOrNull({ seq: prev } as MsgRequest);
      // Removed: the limit removes a key's oldest first, so nothing of it before is kept any more
      // (an older message in the answer was removed after the answer was read).
      if (passedOver === null || passedOver.subject !== subject) break;
      current = { seq: passedOver.seq, headers: passedOver.header, data: passedOver.data, storedAt: passedOver.timestamp };
    }
    newestFirst.push(current);
  }
  return newestFirst.reverse();
}

