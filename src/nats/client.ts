/**
 * A store's bucket on its connection: every request to the server goes
 * through call(), which maps driver errors (errors.ts) and resends what no
 * one received; and what this store has seen of the bucket — the highest
 * stream sequence, the revision each key was last at — for the writes
 * (cas.ts) and a watch "from now" (start.ts).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { JetStreamClient, JetStreamManager, MsgRequest, StoredMsg, StreamInfo } from '@nats-io/jetstream';
import { BackendError, ClosedError, isTombstone, type Entry, type StoredRecord } from '../core/index.js';
import { isNoResponders, jsCode, NO_MESSAGE_FOUND, toBackendError } from './errors.js';
import type { NatsServerFeatures } from './features.js';
import { decodeKey, encodeKey } from './keys.js';
import type { ReaderContext } from './reader.js';

/** The revision a key was at and whether that revision is live; an immutable fact about (key, revision). */
export interface Known {
  revision: number;
  /** createdRevision of the live entry at `revision`; null for a tombstone. */
  created: number | null;
}

export function knownOf(rec: StoredRecord | null): Known {
  if (rec === null) return { revision: 0, created: null };
  return { revision: rec.revision, created: isTombstone(rec) ? null : (rec as Entry).createdRevision };
}

/** Keys whose newest returned revision a store keeps (about 100 bytes each). */
export const HIGH_WATER_KEYS = 65_536;

export interface BucketClientInit {
  backend: string;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  bucket: string;
  stream: string;
  timeoutMs: number;
  features: NatsServerFeatures;
  /** Whether the store was closed (BaseStore.isClosed). */
  isClosed: () => boolean;
}

export class BucketClient {
  readonly backend: string;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly stream: string;
  /** Every key's subject is `<prefix>.<encodeKey(key)>`. */
  readonly prefix: string;
  readonly timeoutMs: number;
  readonly features: NatsServerFeatures;
  private readonly isClosed: () => boolean;
  private readonly known = new Map<string, Known>();
  /** The newest revision of each key this store has returned or written (see noteReturned / isOlder). */
  private readonly highWater = new Map<string, number>();
  private highestSeen = 0;
  /** Told of every stream info this store fetches (the stream's config may have been edited meanwhile). */
  private readonly infoListeners: Array<(info: StreamInfo) => void> = [];
  private readonly errorListeners: Array<() => void> = [];

  constructor(init: BucketClientInit) {
    this.backend = init.backend;
    this.nc = init.nc;
    this.js = init.js;
    this.jsm = init.jsm;
    this.stream = init.stream;
    this.prefix = `$KV.${init.bucket}`;
    this.timeoutMs = init.timeoutMs;
    this.features = init.features;
    this.isClosed = init.isClosed;
  }

  assertOpen(): void {
    if (this.isClosed()) throw new ClosedError(this.backend);
  }

  /**
   * Runs one server call and maps every driver error to a revkit error:
   * timeouts and connection trouble are transient (ambiguous for a publish,
   * whose message may have been stored), JetStream API errors are not
   * (unless the server says 503), and a closed store is ERR_CLOSED.
   */
  async call<R>(fn: () => Promise<R>, write: boolean): Promise<R> {
    this.assertOpen();
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        // A publish may have reached the server before close() cut the connection.
        if (this.isClosed()) throw new ClosedError(this.backend, { ambiguous: write, cause: err });
        // "No responders": nobody took the request (JetStream starting after a restart), so nothing was stored: wait and resend.
        if (isNoResponders(err) && Date.now() - started < this.timeoutMs) {
          await new Promise((r) => setTimeout(r, Math.min(250, 25 * 2 ** attempt)));
          continue;
        }
        const mapped = toBackendError(err, write);
        // A refusal (a conflict, no such message) is an answer; anything else may mean a new leader or config.
        if (BackendError.is(mapped) && mapped.transient) for (const listener of this.errorListeners) listener();
        throw mapped;
      }
    }
  }

  /** One message read by the stream's leader (STREAM.MSG.GET): by sequence, first at or after one, or a subject's last; null when there is none. */
  messageOrNull(request: MsgRequest): Promise<StoredMsg | null> {
    return this.call(() => this.jsm.streams.getMessage(this.stream, request).catch((err) => {
      if (jsCode(err) === NO_MESSAGE_FOUND) return null;
      throw err;
    }), false);
  }

  async streamInfo(): Promise<StreamInfo> {
    const info = await this.call(() => this.jsm.streams.info(this.stream), false);
    for (const listener of this.infoListeners) listener(info);
    return info;
  }

  /** Told of every failed call (the stream's leader or config may have changed). */
  onCallError(listener: () => void): void {
    this.errorListeners.push(listener);
  }

  onStreamInfo(listener: (info: StreamInfo) => void): void {
    this.infoListeners.push(listener);
  }

  readerContext(): ReaderContext {
    return { nc: this.nc, jsm: this.jsm, stream: this.stream, timeoutMs: this.timeoutMs };
  }

  subjectOf(key: string): string {
    return `${this.prefix}.${encodeKey(key)}`;
  }

  /** The key of a subject of the bucket; null for a subject revkit's key encoding did not write. */
  keyOfSubject(subject: string): string | null {
    if (!subject.startsWith(`${this.prefix}.`)) return null;
    return decodeKey(subject.slice(this.prefix.length + 1));
  }

  /** The highest stream sequence this store has seen (written, read): its message was stored already. */
  get knownRevision(): number {
    return this.highestSeen;
  }

  seen(seq: number): void {
    if (seq > this.highestSeen) this.highestSeen = seq;
  }

  /** The revision this store last saw `key` at, if it remembers one. */
  lastKnown(key: string): Known | undefined {
    return this.known.get(key);
  }

  /**
   * A read of `key` answered `revision` (0: no message) although this store already returned or
   * wrote a newer one: the server that answered lags (a follower, a paused ex-leader). False
   * after the stream's own limits may have removed the key (`mayVanish`, then 0 is believed).
   */
  isOlder(key: string, revision: number, mayVanish: boolean): boolean {
    const hw = this.highWater.get(key);
    if (hw === undefined || revision >= hw) return false;
    return !(mayVanish && revision === 0);
  }

  /** The keys noteReturned() holds a revision for. */
  returnedKeys(): IterableIterator<string> {
    return this.highWater.keys();
  }

  /** `key` was returned or written at `revision`: no later read of this store may go back past it. */
  noteReturned(key: string, revision: number): void {
    const hw = this.highWater.get(key);
    if (hw !== undefined && hw >= revision) return;
    this.highWater.delete(key);
    this.highWater.set(key, revision);
    // Bounded memory: the oldest-noted key is forgotten first (then only leader reads stand behind it).
    if (this.highWater.size > HIGH_WATER_KEYS) this.highWater.delete(this.highWater.keys().next().value as string);
  }

  remember(key: string, known: Known): void {
    if (known.revision > 0) this.noteReturned(key, known.revision);
    this.known.delete(key);
    this.known.set(key, known);
    if (this.known.size > 10_000) this.known.delete(this.known.keys().next().value as string);
  }
}
