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
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NatsStore } from '../src/nats/index.js';
import { HistoryGoneError, type WatchEvent } from '../src/core/index.js';
import { startPrivateNats, type PrivateServer } from './support/servers.js';

let nats: PrivateServer;
const stores: NatsStore[] = [];
beforeAll(async () => {
  nats = await startPrivateNats();
}, 60_000);
afterAll(async () => {
  for (const s of stores) await s.close().catch(() => undefined);
  await nats?.stop();
}, 60_000);

it('a watch that passed over a removed change fails before delivering what came after it', async () => {
  const store = await NatsStore.fromUrl(`${nats.url}?bucket=passed&history=2`);
  stores.push(store);
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
