/**
 * How a write is done: one JetStream publish guarded by
 * `Nats-Expected-Last-Subject-Sequence` (compare-and-swap on the key's last
 * stream sequence), for every put and delete, conditional or not.
 *
 * - **ifRevision** is a CAS on that revision (read first when this store does
 *   not know the key to be at it).
 * - **ifValue** is a read, a deep-equal check and a CAS on the revision read,
 *   repeated while the value still matches.
 * - **ifAbsent** publishes with expected sequence 0 (never written); when the
 *   key has a tombstone the CAS is repeated on the tombstone's revision.
 * - **Unconditional** writes CAS on the revision this store believes current
 *   and, on a conflict, read and try again.
 *
 * Conflicts are recognised by the JetStream error codes (errors.ts), never by
 * text alone; the current revision comes from the error when the server gives
 * it, else from one read.
 */
import {
  BackendError, ConflictError, TooLargeError, conditionFailure, encodeForWrite, isTombstone, newWriterToken,
  type Codec, type EncodedWrite, type DeleteOptions, type Entry, type FailedCheck, type PutOptions, type StoredRecord,
} from '../core/index.js';
import type { MsgHdrs } from '@nats-io/transport-node';
import { knownOf, type BucketClient, type Known } from './client.js';
import { jsCode, WRONG_LAST_SEQUENCE, WRONG_LAST_SEQUENCE_CONSTANT } from './errors.js';
import { deleteHeaders, headerBytes, putHeaders } from './records.js';
import type { StreamTail } from './serial.js';

const H_EXPECTED_KEY = 'Nats-Expected-Last-Subject-Sequence';
const H_EXPECTED_STREAM = 'Nats-Expected-Last-Sequence';
/** The longest backoff (ms) between two sends of a write that lost the stream-wide race (after several losses). */
const MAX_RACE_BACKOFF_MS = 8;

/** Internal read-then-CAS loops (unconditional writes, ifValue, ifAbsent over a tombstone). */
const MAX_INTERNAL_ATTEMPTS = 1000;

/** Thrown inside the backend when the server refused a CAS; turned into ConflictError by the caller. */
class CasRejected extends Error {
  constructor(readonly actual: number | null | undefined, cause: unknown) {
    super('wrong last sequence', { cause });
  }
}

export class CasWriter {
  /** The largest message (value, headers and subject) the stream and the server accept. */
  private readonly maxMessageBytes: number;
  /** Whether the last write took the stream-wide guard (its header counts toward the message limit). */
  private guarded = false;

  constructor(
    private readonly client: BucketClient,
    private readonly codec: Codec,
    private readonly maxValueBytes: number,
    /** The stream's `max_msg_size` (-1: no limit of its own). */
    maxMsgSize: number,
    /** The store's getRecord(): one read of a key's last message, remembered by the client. */
    private readonly read: (key: string) => Promise<StoredRecord | null>,
    /**
     * The stream-wide guard a write needs now (serial.ts), or undefined: decided before every
     * write, from the stream's current replica count and the cluster's lowest server version.
     */
    private readonly guard: () => Promise<StreamTail | undefined> = async () => undefined,
  ) {
    const { maxPayload } = client.features;
    this.maxMessageBytes = maxMsgSize > 0 ? Math.min(maxMsgSize, maxPayload) : maxPayload;
  }

  async put<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    const encoded = encodeForWrite(this.codec, value, this.maxValueBytes);
    const writer = options.writer;
    if (options.ifRevision !== undefined) {
      const expected = options.ifRevision;
      let known = this.client.lastKnown(key);
      if (known?.revision !== expected || expected === 0) {
        const rec = await this.read(key);
        // ifRevision 0: never written (no message on the subject); JetStream's expected last sequence 0 means just that.
        if ((rec?.revision ?? 0) !== expected) throw new ConflictError([{ key, expected, actual: rec?.revision ?? null }]);
        known = knownOf(rec);
      }
      try {
        return await this.publishPut<T>(key, encoded, known, writer);
      } catch (err) {
        if (err instanceof CasRejected) throw new ConflictError([{ key, expected, actual: await this.actualOf(key, err) }]);
        throw err;
      }
    }
    if (options.ifValue !== undefined) {
      for (let attempt = 0; ; attempt++) {
        const rec = await this.read(key);
        const failure = conditionFailure(key, rec, { ifValue: options.ifValue });
        if (failure) throw new ConflictError([failure], rec ?? undefined);
        try {
          return await this.publishPut<T>(key, encoded, knownOf(rec), writer);
        } catch (err) {
          if (!(err instanceof CasRejected) || attempt >= MAX_INTERNAL_ATTEMPTS) throw rethrow(err, key, 'value');
        }
      }
    }
    if (options.ifAbsent) {
      // Fast path: never written (expected last subject sequence 0). Else it must be a tombstone, guarded by its revision.
      let known: Known = this.client.lastKnown(key)?.created === null ? (this.client.lastKnown(key) as Known) : { revision: 0, created: null };
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.publishPut<T>(key, encoded, known, writer);
        } catch (err) {
          if (!(err instanceof CasRejected) || attempt >= MAX_INTERNAL_ATTEMPTS) throw rethrow(err, key, 'absent');
        }
        const rec = await this.read(key);
        if (rec !== null && !isTombstone(rec)) throw new ConflictError([{ key, expected: 'absent', actual: rec.revision }], rec);
        known = knownOf(rec);
      }
    }
    // Unconditional: CAS on the revision we believe current; on a conflict read and try again.
    let known: Known = this.client.lastKnown(key) ?? { revision: 0, created: null };
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.publishPut<T>(key, encoded, known, writer);
      } catch (err) {
        if (!(err instanceof CasRejected) || attempt >= MAX_INTERNAL_ATTEMPTS) throw rethrow(err, key, null);
      }
      if (attempt > 2) await jitter(attempt);
      known = knownOf(await this.read(key));
    }
  }

  async delete(key: string, options: DeleteOptions): Promise<number | null> {
    for (let attempt = 0; ; attempt++) {
      const rec = await this.read(key);
      const failure = conditionFailure(key, rec, options);
      if (failure) throw new ConflictError([failure], rec ?? undefined);
      if (rec === null || isTombstone(rec)) return null;
      const h = deleteHeaders(rec.revision, Date.now(), options.writer);
      try {
        const seq = await this.publish(key, new Uint8Array(0), h);
        this.client.remember(key, { revision: seq, created: null });
        return seq;
      } catch (err) {
        if (!(err instanceof CasRejected)) throw err;
        if (options.ifRevision !== undefined) throw new ConflictError([{ key, expected: options.ifRevision, actual: await this.actualOf(key, err) }]);
        if (attempt >= MAX_INTERNAL_ATTEMPTS) throw rethrow(err, key, options.ifValue !== undefined ? 'value' : options.ifAbsent ? 'absent' : null);
        if (attempt > 2) await jitter(attempt);
      }
    }
  }

  /**
   * Checks `value` as an update()'s write of it would be checked, writing nothing. NATS' own message
   * limit counts the headers: those that write would carry (the revision this store last saw the key
   * at, as the attempt read it; a writer token; the stream-wide guard as the last write took it).
   */
  checkValue(value: unknown, key: string): unknown {
    const encoded = encodeForWrite(this.codec, value, this.maxValueBytes);
    const known = this.client.lastKnown(key) ?? { revision: 0, created: null };
    this.assertFits(encoded.bytes, this.client.subjectOf(key), putHeaders(known.revision, known.created, Date.now(), newWriterToken()), this.guarded);
    return encoded.value;
  }

  private assertFits(data: Uint8Array, subject: string, h: MsgHdrs, guarded: boolean): void {
    // With the stream-wide guard (serial.ts) one more header goes out: `Nats-Expected-Last-Sequence: <n>\r\n`.
    const size = data.byteLength + headerBytes(h) + subject.length + (guarded ? H_EXPECTED_STREAM.length + 20 : 0);
    if (size > this.maxMessageBytes) throw new TooLargeError('the encoded value with its NATS headers', size, this.maxMessageBytes);
  }

  private async publishPut<T>(key: string, encoded: EncodedWrite, known: Known, writer: string | undefined): Promise<Entry<T>> {
    const now = Date.now();
    const revision = await this.publish(key, encoded.bytes, putHeaders(known.revision, known.created, now, writer));
    const createdRevision = known.created ?? revision;
    this.client.remember(key, { revision, created: createdRevision });
    const entry: Entry<T> = { key, value: encoded.value as T, revision, createdRevision, updatedAt: now };
    if (writer !== undefined) entry.writer = writer;
    return entry;
  }

  /** One guarded write; resolves to the stream sequence, rejects with CasRejected on a wrong last sequence. */
  private async publish(key: string, data: Uint8Array, h: MsgHdrs): Promise<number> {
    const client = this.client;
    client.assertOpen();
    const subject = client.subjectOf(key);
    const tail = await this.guard();
    this.guarded = tail !== undefined;
    this.assertFits(data, subject, h, this.guarded);
    if (!tail) return this.publishOnce(subject, data, h);
    const until = Date.now() + client.timeoutMs;
    return tail.exclusive(() => this.racePublish(key, subject, data, h, tail, until));
  }

  /**
   * A write with the stream-wide guard: sent with the stream's last sequence L as the leader last
   * told it, and again with the new L after losing to a write of another key, until `until` (the
   * store's timeoutMs from the call). Losing that race says nothing about the key, so it is never a
   * conflict: a key that did not move ends in a transient BackendError that is not ambiguous (no
   * send was stored).
   *
   * Which guard refused (both answer 10071 with a number): the stream's names its last sequence,
   * above the L sent (L comes from the leader, so it is not ahead of it — but a new leader may
   * not have applied all of it yet); the key's names the key's last sequence. A number above L is
   * taken as the new L (if it is the key's, having moved since, the next send tells): the loser
   * sends again at once, so that it races the winner's next write on equal terms (a read and a
   * backoff first starved some writers for seconds), with a small jitter only after several lost
   * races, and a read every 8th loss. Any other refusal is decided by a read of the key (from the
   * leader, reads.ts), as is the end of the time.
   */
  private async racePublish(key: string, subject: string, data: Uint8Array, h: MsgHdrs, tail: StreamTail, until: number): Promise<number> {
    const expectedKey = Number(h.get(H_EXPECTED_KEY));
    for (let race = 0; ; race++) {
      // Right after this process won, let the others' resends in first (see StreamTail.yieldMs).
      const yieldMs = race === 0 ? tail.yieldMs() : 0;
      if (yieldMs > 0) await new Promise((r) => setTimeout(r, yieldMs));
      const sent = await tail.current();
      h.set(H_EXPECTED_STREAM, String(sent));
      const sentAt = performance.now();
      try {
        const seq = await this.publishOnce(subject, data, h);
        tail.saw(seq);
        tail.won(seq, performance.now() - sentAt, race > 0);
        return seq;
      } catch (err) {
        if (!(err instanceof CasRejected)) {
          tail.forget();
          throw err;
        }
        const actual = err.actual ?? 0;
        const streamMoved = err.actual !== undefined && actual > sent;
        tail.refusedAt(streamMoved ? actual : undefined);
        const timeUp = Date.now() >= until;
        if (!streamMoved || timeUp || race % 8 === 7) {
          const rec = await this.read(key);
          if ((rec?.revision ?? 0) !== expectedKey) throw new CasRejected(rec?.revision ?? null, err.cause);
        }
        if (timeUp) {
          throw new BackendError(
            `the write of ${JSON.stringify(key)} lost the race for the stream's next sequence to writes of other keys for ${this.client.timeoutMs} ms `
            + `(${race + 1} sends, none stored; the key did not move): the bucket is serialised on this nats-server (docs/replication-nats.md)`,
            { transient: true, ambiguous: false, cause: err.cause },
          );
        }
        if (race >= 4) await raceBackoff(race);
      }
    }
  }

  private async publishOnce(subject: string, data: Uint8Array, h: MsgHdrs): Promise<number> {
    const client = this.client;
    try {
      const ack = await client.call(() => client.js.publish(subject, data, { headers: h, timeout: client.timeoutMs }), true);
      client.seen(ack.seq);
      return ack.seq;
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause ?? err;
      const code = jsCode(cause);
      if (code === WRONG_LAST_SEQUENCE || code === WRONG_LAST_SEQUENCE_CONSTANT) {
        // The code decides; the number in the 10071 text only saves a read.
        const m = code === WRONG_LAST_SEQUENCE ? /wrong last sequence: (\d+)/.exec(String((cause as Error).message)) : null;
        const actual = m ? Number(m[1]) : undefined;
        throw new CasRejected(actual === 0 ? null : actual, cause);
      }
      throw err;
    }
  }

  /** The current revision after a refused CAS: from the error when the server said it, else one read. */
  private async actualOf(key: string, err: CasRejected): Promise<number | null> {
    if (err.actual !== undefined) return err.actual;
    const rec = await this.read(key);
    return rec?.revision ?? null;
  }
}

function rethrow(err: unknown, key: string, expected: FailedCheck['expected']): unknown {
  if (err instanceof CasRejected) return new ConflictError([{ key, expected, actual: err.actual ?? null }]);
  return err;
}

/** Full jitter, growing with the races lost, at most MAX_RACE_BACKOFF_MS. */
function raceBackoff(race: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.random() * Math.min(MAX_RACE_BACKOFF_MS, 2 ** (race - 4))));
}

function jitter(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.random() * Math.min(64, 2 ** Math.min(attempt, 6))));
}
