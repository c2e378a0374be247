/**
 * A watch behind the per-key history limit must say HistoryGoneError before it
 * delivers anything stored after a change the limit removed (src/nats/passed-over.ts).
 * The shape the replication soak met after leader kills (a lagging watch, hot keys),
 * made deterministic: history=2, and a watch from a revision the writes have left behind.
 *
 *   a0 b0 a1 b1 a2 a3      (a1 removed by a3: key a keeps a2, a3)
 *
 * A watch from a0 gets b0, then its consumer passes over a1 (gone) to b1. The old watch
 * delivered b1 and failed only at a2 (a2 names a1): a caller that goes on from
 * max(last delivered = b1, oldestRevision − 1) never learned that a1 was skipped.
 */
import { expect, it } from 'vitest';
import { NatsStore } from '../src/nats/index.js';
import { HistoryGoneError, type WatchEvent } from '../src/core/index.js';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { completeHistory, type KeptMessage } from '../src/nats/history-chain.js';
import { readOnce, parseAckSubject } from '../src/nats/reader.js';
import type { BucketClient } from '../src/nats/client.js';
import { privateNatsForThisFile } from './support/private-nats.js';

const nats = privateNatsForThisFile();

it('a watch that passed over a removed change fails before delivering what came after it', async () => {
  const store = await nats.open(`bucket=passed&history=2`);
  const rev: Record<string, number> = {};
  for (const [name, key] of [['a0', 'p/a'], ['b0', 'p/b'], ['a1', 'p/a'], ['b1', 'p/b'], ['a2', 'p/a'], ['a3', 'p/a']] as const) {
    rev[name] = (await store.put(key, { name })).revision;
  }
  const delivered: number[] = [];
  let error: unknown;
  try {
    for await (const ev of store.watch({ prefix: 'p/', fromRevision: rev.a0 }) as AsyncIterable<WatchEvent>) {
      delivered.push(ev.revision);
      if (ev.revision === rev.a3) break;
    }
  } catch (err) {
    error = err;
  }
  // What a consumer may take as reported gone: (last delivered, oldestRevision − 1].
  const last = delivered.at(-1) ?? rev.a0!;
  expect(error).toBeInstanceOf(HistoryGoneError);
  const oldest = (error as HistoryGoneError).oldestRevision;
  expect({ delivered, a1Reported: rev.a1! > last && rev.a1! <= Math.max(last, oldest - 1) }).toEqual({ delivered: [rev.b0], a1Reported: true });
});

/*
 * nats-server before 2.9.16 can pass over kept messages under a subject filter
 * (src/nats/features.ts, `filteredReads`): a watch 10–50 revisions short after
 * leader kills on 4 hot keys (test/faults/replication-nats-watch.test.ts). On such
 * a server a watch reads the bucket unfiltered and picks its keys out itself, and
 * history() checks the consumer's answer link by link (src/nats/history-chain.ts).
 * Whether the server passes over a message depends on its block cache, so the
 * skip is simulated here on a real answer: the links are what is tested.
 */
const open = (bucket: string) => nats.open(`bucket=${bucket}&history=8`);
const clientOf = (store: NatsStore) => (store as unknown as { client: BucketClient }).client;

it('on a server before 2.9.16 a prefix watch reads the bucket unfiltered and delivers only its own keys, in order', async () => {
  const store = await open('unfiltered');
  expect(store.features.filteredReads).toBe(false);
  const from = (await store.put('q/0', 0)).revision;
  const events: WatchEvent[] = [];
  const controller = new AbortController();
  const watching = (async () => {
    for await (const ev of store.watch({ prefix: 'p/', fromRevision: from, signal: controller.signal })) {
      events.push(ev);
      if (events.length === 3) break;
    }
  })();
  const written = [];
  for (const key of ['p/a', 'q/b', 'p/a', 'q/b', 'p/c']) written.push({ key, revision: (await store.put(key, key)).revision });
  await watching;
  const nc = await connect({ servers: nats.url.replace('nats://', '') });
  try {
    // The watch's consumer is gone with the watch; a second one shows what the store asks for.
    const second = store.watch({ prefix: 'p/', fromRevision: from, signal: controller.signal })[Symbol.asyncIterator]();
    await second.next();
    const jsm = await jetstreamManager(nc);
    const consumers = await jsm.consumers.list('KV_unfiltered').next();
    expect(consumers.map((c) => c.config.filter_subject ?? '')).toContain('');
    controller.abort();
  } finally {
    await nc.close();
  }
  expect(events.map((e) => [e.key, e.revision])).toEqual(written.filter((w) => w.key.startsWith('p/')).map((w) => [w.key, w.revision]));
});

it('history() puts back the links a filtered answer passed over, and stops at what the per-key limit removed', async () => {
  const store = await open('chain');
  const revisions: number[] = [];
  for (let i = 0; i < 12; i++) revisions.push((await store.put('k', i)).revision);
  await store.put('other', 'x');
  const client = clientOf(store);
  const subject = client.subjectOf('k');
  const answer: KeptMessage[] = (await readOnce(client.readerContext(), subject, { policy: 'all' })).map((msg) => ({
    seq: parseAckSubject(msg.reply)!.streamSeq, headers: msg.headers, data: msg.data, storedAt: undefined,
  }));
  const kept = revisions.slice(-8);
  expect(answer.map((m) => m.seq)).toEqual(kept);
  // What the 2.9.10 consumer did: the oldest kept and two in the middle passed over.
  const short = answer.filter((m) => ![kept[0], kept[3], kept[4]].includes(m.seq));
  expect((await completeHistory(client, subject, short, 8)).map((m) => m.seq)).toEqual(kept);
  expect((await completeHistory(client, subject, answer, 8)).map((m) => m.seq)).toEqual(kept);
  // And through the store: every kept revision, newest first, values as written.
  const history = await store.history<number>('k', {});
  expect(history.map((r) => [r.revision, r.value])).toEqual(kept.map((rev, i) => [rev, 4 + i]).reverse());
});
