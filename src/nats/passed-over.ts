/**
 * Whether a watch's consumer passed over a message the stream removed, before
 * the watch delivers what comes after it.
 *
 * The per-key history limit (max_msgs_per_subject, H) removes a key's oldest
 * message when the key gets a newer one. A consumer that lags behind skips a
 * removed message without a sign: its delivery sequence stays contiguous. The
 * key's chain (watch.ts) shows the loss only at that key's next kept message,
 * and by then the watch has delivered other keys' later changes. A caller that
 * goes on from max(last delivered, oldestRevision − 1) after the
 * HistoryGoneError then never learns of the removed change: a silent skip (the
 * replication soak: 237 acknowledged revisions, 4 hot keys, leader kills).
 *
 * When a removal can have happened. If a message m of a key A in (after, s)
 * was removed, A had H newer messages kept, all after m; none lay in (m, s),
 * since the consumer found nothing of the filter there, so all H are at or
 * after s (s itself may be one) and the server's pending count at s is at
 * least H − 1. Below that, the jump from `after` to s passed over nothing of
 * the filter that was removed: no reads.
 *
 * At or above it, the sequences in (after, s) are read from the stream leader
 * (STREAM.MSG.GET, first message at or after a sequence): a sequence with no
 * message was removed. Its subject is gone with it, and it may have been a key
 * outside the watch, so then the keys of the filter that are at the limit (H
 * kept, from a subject-filtered stream info) are asked: the first kept message
 * of such a key after `after` names its predecessor; one above `after` was
 * removed, and with it every change of the key in the jump (a message that
 * names none, another client's write, counts as a loss too). A jump that needs more than MAX_READS reads goes to
 * that question at once. More than MAX_KEYS such keys is judged a loss: a
 * HistoryGoneError too many, never a change skipped. On a server whose
 * filtered gets pass over kept messages (before 2.9.16, features.ts) the
 * question walks back from the key's last message instead, by sequence,
 * within the same MAX_READS.
 */
import type { MsgRequest } from '@nats-io/jetstream';
import type { BucketClient } from './client.js';
import { previousOf } from './records.js';

export const MAX_READS = 128;
export const MAX_KEYS = 64;

/**
 * Whether some sequence in (after, before) still holds a message: the first MAX_READS of them read
 * by exact sequence (no subject filter involved), the rest by one read of the first message at or
 * after them. A consumer that reads the whole bucket
 * (no filter) jumps only over removed messages — unless the server passed over kept ones: the
 * replication soak on nats-server 2.9.10 saw a consumer recreated after a leader kill start 3
 * sequences past its start, 21 acknowledged revisions in an hour delivered to no watch.
 */
export async function keptBetween(client: BucketClient, after: number, before: number): Promise<boolean> {
  const end = Math.min(before, after + 1 + MAX_READS);
  for (let seq = after + 1; seq < end; seq++) {
    if ((await client.messageOrNull({ seq } as MsgRequest)) !== null) return true;
  }
  if (end >= before) return false;
  // A longer jump (a purge, a lagging watch over many removals): the first message at or after the
  // rest of it, of any subject ('>' filters nothing).
  const next = await client.messageOrNull({ seq: end, next_by_subj: '>' } as unknown as MsgRequest);
  return next !== null && next.seq < before;
}

/** Whether some sequence in (after, before) holds no message; 'unknown' when MAX_READS reads could not tell. */
export async function removedBetween(client: BucketClient, after: number, before: number): Promise<boolean | 'unknown'> {
  let seq = after + 1;
  for (let reads = 0; seq < before; reads++) {
    if (reads >= MAX_READS) return 'unknown';
    const at = seq;
    const sm = await client.call(() => client.jsm.streams.getMessage(client.stream, { seq: at, next_by_subj: '>' } as unknown as MsgRequest), false);
    if (sm === null || sm.seq > at) return true;
    seq = sm.seq + 1;
  }
  return false;
}

/**
 * Whether the watch of `filter` passed over a removed message of its own between `after` and `before`
 * (see above). `trustFilteredGets` false (a server whose filtered reads pass over kept messages,
 * features.ts): a key's first kept message after `after` is found from its last one, link by link,
 * by sequence (firstKeptAfter).
 */
export async function lostBetween(
  client: BucketClient, filter: string, after: number, before: number, historyDepth: number, trustFilteredGets = true,
): Promise<boolean> {
  if ((await removedBetween(client, after, before)) === false) return false;
  const info = await client.call(() => client.jsm.streams.info(client.stream, { subjects_filter: filter }), false);
  const atLimit = Object.entries(info.state.subjects ?? {}).filter(([, n]) => n >= historyDepth).map(([subject]) => subject);
  if (atLimit.length > MAX_KEYS) return true;
  const budget = { reads: MAX_READS };
  for (const subject of atLimit) {
    const prev = trustFilteredGets ? await namedByFirstAfter(client, subject, after) : await firstKeptAfter(client, subject, after, budget);
    // A named predecessor above `after` is not kept (the message naming it is the first kept one):
    // inside the jump it was passed over; after it, so was every change of the key in the jump.
    if (prev === 'unknown' || (prev !== undefined && prev > after)) return true;
  }
  return false;
}

/**
 * The predecessor named by the first kept message of `subject` after `after` (a filtered get);
 * 'unknown' when that message names none (another client's write).
 */
async function namedByFirstAfter(client: BucketClient, subject: string, after: number): Promise<number | undefined | 'unknown'> {
  const sm = await client.call(() => client.jsm.streams.getMessage(client.stream, { seq: after + 1, next_by_subj: subject } as unknown as MsgRequest), false);
  return sm === null ? undefined : previousOf(sm.header) ?? 'unknown';
}

/**
 * The same without a filtered get: from the key's last message (last_by_subj, exact on every
 * version) back along the predecessors each revkit write names, read by sequence. 'unknown' when
 * the reads left in `budget` run out or a message names none (another client's write).
 */
async function firstKeptAfter(client: BucketClient, subject: string, after: number, budget: { reads: number }): Promise<number | undefined | 'unknown'> {
  const get = (req: Record<string, unknown>) => client.messageOrNull(req as unknown as MsgRequest);
  let current = await get({ last_by_subj: subject });
  while (current !== null && current.seq > after) {
    const prev = previousOf(current.header);
    if (prev === undefined) return 'unknown';
    if (prev <= after) return prev;
    if (--budget.reads < 0) return 'unknown';
    const older = await get({ seq: prev });
    if (older === null || older.subject !== subject) return prev;
    current = older;
  }
  return undefined;
}

/**
 * Whether a delivery with `pending` messages after it can have passed over a removed one (see
 * above): the delivery itself can be one of the H newer messages of the removed one's key.
 */
export function mayHavePassedOver(pending: number, historyDepth: number): boolean {
  return historyDepth > 0 && pending >= historyDepth - 1;
}
