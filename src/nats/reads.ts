/**
 * How reads go to the stream. A key's current record (`getRecord`, so every
 * `update()` attempt) is one direct-get round trip (`last_by_subj`); `list`
 * reads the last message per subject through an ephemeral consumer with the
 * prefix filter (reader.ts) and sorts in the client (NATS has no ordered key
 * index); `history` reads every kept message of the key's subject.
 */
import type { Msg } from '@nats-io/transport-node';
import type { StoredMsg } from '@nats-io/jetstream';
import {
  InvalidArgumentError, assertKey, assertLimit, assertPrefix, compareKeys,
  type Codec, type Entry, type HistoryOptions, type ListOptions, type ListPage, type StoredRecord,
} from '../core/index.js';
import { knownOf, type BucketClient } from './client.js';
import { jsCode, NO_MESSAGE_FOUND } from './errors.js';
import { filterForPrefix } from './keys.js';
import { parseAckSubject, readOnce } from './reader.js';
import { isDeleteOp, toRecord } from './records.js';

export class BucketReads {
  constructor(
    private readonly client: BucketClient,
    private readonly codec: Codec,
    /** Revisions the bucket keeps per key: the most history() returns. */
    private readonly historyDepth: number,
  ) {}

  async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.client.assertOpen();
    assertKey(key);
    const sm = await this.readLast(key);
    if (sm === null) return null;
    this.client.seen(sm.seq);
    const rec = toRecord<T>(this.codec, key, sm.seq, sm.header, sm.data, sm.timestamp);
    this.client.remember(key, knownOf(rec));
    return rec;
  }

  async list<T = unknown>(options: ListOptions): Promise<ListPage<T>> {
    this.client.assertOpen();
    const prefix = options.prefix ?? '';
    assertPrefix(prefix);
    if (options.after !== undefined && typeof options.after !== 'string') throw new InvalidArgumentError('after must be a key');
    const limit = assertLimit(options.limit, 10_000) ?? 1000;
    const { filter } = filterForPrefix(prefix);
    const msgs = await this.readSnapshot(`${this.client.prefix}.${filter}`, { policy: 'last_per_subject' });
    // The consumer also delivers writes made while it reads (pending counts
    // them), so a key written meanwhile arrives twice: keep its latest.
    const latest = new Map<string, { msg: Msg; seq: number }>();
    for (const m of msgs) {
      const seen = latest.get(m.msg.subject);
      if (!seen || m.seq > seen.seq) latest.set(m.msg.subject, m);
    }
    const live: Array<{ key: string; msg: Msg; seq: number }> = [];
    for (const { msg, seq } of latest.values()) {
      if (isDeleteOp(msg.headers)) continue;
      const key = this.client.keyOfSubject(msg.subject);
      if (key === null || !key.startsWith(prefix)) continue;
      if (options.after !== undefined && compareKeys(key, options.after) <= 0) continue;
      live.push({ key, msg, seq });
    }
    live.sort((a, b) => compareKeys(a.key, b.key));
    const page = live.slice(0, limit);
    const entries = page.map(({ key, msg, seq }) => toRecord<T>(this.codec, key, seq, msg.headers, msg.data, undefined) as Entry<T>);
    return live.length > limit ? { entries, cursor: (page[page.length - 1] as { key: string }).key } : { entries };
  }

  async history<T = unknown>(key: string, options: HistoryOptions): Promise<StoredRecord<T>[]> {
    this.client.assertOpen();
    assertKey(key);
    const limit = assertLimit(options.limit, this.historyDepth) ?? this.historyDepth;
    const msgs = await this.readSnapshot(this.client.subjectOf(key), { policy: 'all' });
    const out: StoredRecord<T>[] = [];
    for (let i = msgs.length - 1; i >= 0 && out.length < limit; i--) {
      const { msg, seq } = msgs[i] as { msg: Msg; seq: number };
      // A write by another client carries no Revkit-Time: the server's store time stands in.
      const stored = parseAckSubject(msg.reply)?.storedAtMs;
      out.push(toRecord<T>(this.codec, key, seq, msg.headers, msg.data, stored ? new Date(stored).toISOString() : undefined));
    }
    return out;
  }

  /** JetStream numbers a message as it stores it: the stream's last sequence has committed. */
  async headRevision(): Promise<number> {
    this.client.assertOpen();
    const info = await this.client.streamInfo();
    this.client.seen(info.state.last_seq);
    return info.state.last_seq;
  }

  private async readLast(key: string): Promise<StoredMsg | null> {
    const { client } = this;
    const subject = client.subjectOf(key);
    return client.call(() => (client.features.directGet
      ? client.jsm.direct.getMessage(client.stream, { last_by_subj: subject })
      : client.jsm.streams.getMessage(client.stream, { last_by_subj: subject }).catch((err) => {
        if (jsCode(err) === NO_MESSAGE_FOUND) return null;
        throw err;
      })), false);
  }

  private async readSnapshot(filter: string, from: { policy: 'all' } | { policy: 'last_per_subject' }): Promise<Array<{ msg: Msg; seq: number }>> {
    const msgs = await this.client.call(() => readOnce(this.client.readerContext(), filter, from), false);
    const out = msgs.map((msg) => ({ msg, seq: parseAckSubject(msg.reply)?.streamSeq ?? 0 }));
    for (const m of out) this.client.seen(m.seq);
    return out;
  }
}
