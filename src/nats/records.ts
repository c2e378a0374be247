/**
 * How a revkit record is written as a NATS message and read back.
 *
 * Every write is a JetStream publish guarded by
 * `Nats-Expected-Last-Subject-Sequence`, also the "unconditional" ones (they
 * read, then CAS, and retry on conflict), so every stored message names the
 * revision it replaced. Headers carry what the KV format has no room for:
 *
 * - `Revkit-Writer`  the writer token (update() recognises its own write after a lost ack);
 *                    a token with spaces at either end, which a header value loses, goes
 *                    percent-encoded in `Revkit-Writer-Encoded` instead;
 * - `Revkit-Created` the createdRevision when the write continues a live entry
 *                    (absent: the entry was created by this very message);
 * - `Revkit-Time`    updatedAt in ms (absent on foreign writes: the server's timestamp is used);
 * - `KV-Operation: DEL` for a delete, exactly as `@nats-io/kv` writes it, so
 *   the bucket stays readable by any NATS KV client. `PURGE` markers written
 *   by other clients are read as tombstones too, and guard writes the same way.
 */
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { BackendError, writerFromPercentEncoding, type Codec, type Entry, type StoredRecord, type Tombstone } from '../core/index.js';

const OP = 'KV-Operation';
const H_WRITER = 'Revkit-Writer';
const H_WRITER_ENCODED = 'Revkit-Writer-Encoded';
const H_CREATED = 'Revkit-Created';
const H_TIME = 'Revkit-Time';
const H_EXPECTED = 'Nats-Expected-Last-Subject-Sequence';
const H_EXPECTED_SUBJECT = 'Nats-Expected-Last-Subject-Sequence-Subject';

/** The headers of a put that replaces revision `expected` (0: none); `created` is null when it starts a new entry. */
export function putHeaders(expected: number, created: number | null, time: number, writer: string | undefined): MsgHdrs {
  const h = natsHeaders();
  h.set(H_EXPECTED, String(expected));
  if (created !== null) h.set(H_CREATED, String(created));
  h.set(H_TIME, String(time));
  setWriter(h, writer);
  return h;
}

/** The headers of a delete marker that replaces revision `expected`. */
export function deleteHeaders(expected: number, time: number, writer: string | undefined): MsgHdrs {
  const h = natsHeaders();
  h.set(OP, 'DEL');
  h.set(H_EXPECTED, String(expected));
  h.set(H_TIME, String(time));
  setWriter(h, writer);
  return h;
}

/** A header value is trimmed on the wire: a token that would lose its outer spaces is sent percent-encoded. */
function setWriter(h: MsgHdrs, writer: string | undefined): void {
  if (writer === undefined) return;
  if (writer.trim() === writer) h.set(H_WRITER, writer);
  else h.set(H_WRITER_ENCODED, encodeURIComponent(writer));
}

function writerOf(h: MsgHdrs | undefined): string | undefined {
  const encoded = h?.get(H_WRITER_ENCODED);
  return encoded ? writerFromPercentEncoding(encoded) : h?.get(H_WRITER) || undefined;
}

/** What the headers add to a message's size, as the server counts it against max_payload. */
export function headerBytes(h: MsgHdrs): number {
  let n = 'NATS/1.0\r\n\r\n'.length;
  for (const k of h.keys()) for (const v of h.values(k)) n += k.length + 2 + Buffer.byteLength(v) + 2;
  return n;
}

export function isDeleteOp(h: MsgHdrs | undefined): boolean {
  const op = h?.get(OP);
  return op === 'DEL' || op === 'PURGE';
}

/** The revision a message replaced, when it was written with a subject-sequence guard on its own subject. */
export function previousOf(h: MsgHdrs | undefined): number | undefined {
  if (!h || h.get(H_EXPECTED_SUBJECT)) return undefined;
  const v = h.get(H_EXPECTED);
  if (!v) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** The record a message of `key` at stream sequence `seq` holds; `timestamp`: the server's store time, if known. */
export function toRecord<T>(codec: Codec, key: string, seq: number, h: MsgHdrs | undefined, data: Uint8Array, timestamp: string | undefined): StoredRecord<T> {
  const writer = writerOf(h);
  const time = Number(h?.get(H_TIME) || NaN);
  const stamp = timestamp ?? h?.get('Nats-Time-Stamp') ?? '';
  const updatedAt = Number.isFinite(time) ? time : Date.parse(stamp) || 0;
  if (isDeleteOp(h)) {
    const t: Tombstone = { key, revision: seq, deleted: true };
    if (writer) t.writer = writer;
    if (updatedAt > 0) t.updatedAt = updatedAt;
    return t as StoredRecord<T>;
  }
  let value: T;
  try {
    value = codec.decode(data) as T;
  } catch (cause) {
    throw new BackendError(`the stored value of ${JSON.stringify(key)} at revision ${seq} cannot be decoded by the ${codec.name} codec`, { transient: false, cause });
  }
  const created = Number(h?.get(H_CREATED) || seq);
  const entry: Entry<T> = {
    key, value, revision: seq,
    createdRevision: Number.isSafeInteger(created) && created > 0 ? created : seq,
    updatedAt,
  };
  if (writer) entry.writer = writer;
  return entry;
}
