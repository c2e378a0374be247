/**
 * How reads go to the stream. A key's current record (`getRecord`, so every
 * `update()` attempt, and the checks of conditional writes) is one round
 * trip for its last message (`last_by_subj`); `list` reads the last message
 * per subject through an ephemeral consumer with the prefix filter
 * (reader.ts) and sorts in the client (NATS has no ordered key index);
 * `history` reads every kept message of the key's subject (checked link by
 * link on a server whose filtered reads may pass over some: history-chain.ts).
 *
 * Which server answers: on a replicated stream (R>1) with `allow_direct`, a
 * direct get is answered by ANY replica, also a lagging follower or a paused
 * ex-leader, so a process could read a revision older than one it had just
 * written, and base a conditional write or a conflict on it. There the read
 * is the JetStream API's STREAM.MSG.GET, which only the stream leader
 * answers. Consumers (list, history, watch) are created by the leader and
 * placed on it (R1). A leader that lost its leadership without knowing yet
 * (paused, cut off) may still answer for a moment, so every read is also
 * checked against the newest revision of the key this store has returned or
 * written (BucketClient.noteReturned): an older answer is asked again, with
 * backoff, within timeoutMs, then a transient BackendError. A replicas=1
 * stream has one server: the direct get stays (it costs less), and an
 * older answer there is no lag but a lost store, which is not detected.
 */
import type { Msg } from '@nats-io/transport-node';
import type { StoredMsg } from '@nats-io/jetstream';
import {
  BackendError, InvalidArgumentError, assertKey, assertLimit, assertAfter, assertPrefix, compareKeys,
  type Codec, type Entry, type HistoryOptions, type ListOptions, type ListPage, type StoredRecord,
} from '../core/index.js';
import { knownOf, type BucketClient } from './client.js';
import { completeHistory, type KeptMessage } from './history-chain.js';
import { filterForPrefix } from './keys.js';
import { parseAckSubject, readOnce } from './reader.js';
import { isDeleteOp, toRecord } from './records.js';

export class BucketReads {
  constructor(
    private readonly client: BucketClient,
    private readonly codec: Codec,
    /** Revisions the bucket keeps per key: the most history() returns. */
    private readonly historyDepth: number,
    /** Reads go to the stream leader (the stream is replicated now). */
    private readonly leaderReads: () => boolean,
    /** The stream's own limits (age, bytes, messages) may remove a key's every message. */
    private readonly mayVanish: boolean,
  ) {}

  async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.client.assertOpen();
    assertKey(key);
    const sm = await this.notOlder(key, () => this.readLast(key), (m) => [[key, m?.seq ?? 0]]);
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
    assertAfter(options.after);
    if (options.after !== undefined && typeof options.after !== 'string') throw new InvalidArgumentError('after must be a key');
    const limit = assertLimit(options.limit, 10_000) ?? 1000;
    const { filter } = filterForPrefix(prefix);
    // The consumer also delivers writes made while it reads (pending counts
    // them), so a key written meanwhile arrives twice: keep its latest.
    const latestOf = (msgs: Array<{ msg: Msg; seq: number }>) => {
      const latest = new Map<string, { msg: Msg; seq: number }>();
      for (const m of msgs) {
        const seen = latest.get(m.msg.subject);
        if (!seen || m.seq > seen.seq) latest.set(m.msg.subject, m);
      }
      return latest;
    };
    const subjects = `${this.client.prefix}.${filter}`;
    const latest = await this.notOlder(
      `prefix ${JSON.stringify(prefix)}`,
      async () => latestOf(await this.readSnapshot(subjects, { policy: 'last_per_subject' })),
      (l) => this.returnedUnder(prefix, l),
    );
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
    const subject = this.client.subjectOf(key);
    const msgs = await this.notOlder(key, () => this.readSnapshot(subject, { policy: 'all' }), (m) => [[key, m[m.length - 1]?.seq ?? 0]]);
    let kept: KeptMessage[] = msgs.map(({ msg, seq }) => {
      const stored = parseAckSubject(msg.reply)?.storedAtMs;
      return { seq, headers: msg.headers, data: msg.data, storedAt: stored ? new Date(stored).toISOString() : undefined };
    });
    if (!this.client.features.filteredReads) kept = await completeHistory(this.client, subject, kept, this.historyDepth);
    const out: StoredRecord<T>[] = [];
    for (let i = kept.length - 1; i >= 0 && out.length < limit; i--) {
      const { seq, headers, data, storedAt } = kept[i] as KeptMessage;
      // A write by another client carries no Revkit-Time: the server's store time stands in.
      out.push(toRecord<T>(this.codec, key, seq, headers, data, storedAt));
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
    if (client.features.directGet && !this.leaderReads()) return client.call(() => client.jsm.direct.getMessage(client.stream, { last_by_subj: subject }), false);
    return client.messageOrNull({ last_by_subj: subject });
  }

  /**
   * Runs `read` until no key it answers for is older than this store already returned or wrote
   * (`revisions` lists them), within timeoutMs; then notes what it returns.
   */
  private async notOlder<R>(what: string, read: () => Promise<R>, revisions: (r: R) => Array<[string, number]>): Promise<R> {
    const { client } = this;
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      const r = await read();
      const pairs = revisions(r);
      // On one replica an older answer is no lag but a lost store (not detected: docs/replication-nats.md); it is returned.
      const stale = this.leaderReads() ? pairs.find(([key, rev]) => client.isOlder(key, rev, this.mayVanish)) : undefined;
      if (stale === undefined) {
        for (const [key, rev] of pairs) if (rev > 0) client.noteReturned(key, rev);
        return r;
      }
      if (Date.now() - started >= client.timeoutMs) {
        throw new BackendError(
          `a read of ${what} was answered by a server behind this store: ${JSON.stringify(stale[0])} at revision ${stale[1]}, `
          + `older than a revision this store already returned or wrote (a lagging replica or a leader that lost its leadership)`,
          { transient: true, ambiguous: false },
        );
      }
      await new Promise((res) => setTimeout(res, Math.min(250, 10 * 2 ** attempt)));
    }
  }

  /**
   * The revision of every key under `prefix` a list snapshot shows (its last message, tombstones
   * too), and 0 for each key under it this store returned before that the snapshot lacks.
   */
  private returnedUnder(prefix: string, latest: Map<string, { msg: Msg; seq: number }>): Array<[string, number]> {
    const out: Array<[string, number]> = [];
    const shown = new Set<string>();
    for (const [subject, { seq }] of latest) {
      const key = this.client.keyOfSubject(subject);
      if (key === null) continue;
      shown.add(key);
      out.push([key, seq]);
    }
    for (const key of this.client.returnedKeys()) if (key.startsWith(prefix) && !shown.has(key)) out.push([key, 0]);
    return out;
  }

  private async readSnapshot(filter: string, from: { policy: 'all' } | { policy: 'last_per_subject' }): Promise<Array<{ msg: Msg; seq: number }>> {
    const msgs = await this.client.call(() => readOnce(this.client.readerContext(), filter, from), false);
    const out = msgs.map((msg) => ({ msg, seq: parseAckSubject(msg.reply)?.streamSeq ?? 0 }));
    for (const m of out) this.client.seen(m.seq);
    return out;
  }
}
