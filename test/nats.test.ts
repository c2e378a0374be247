import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { NatsStore, decodeKey, encodeKey, filterForPrefix, MAX_ENCODED_KEY_CHARS } from '../src/nats/index.js';
import { ConflictError, HistoryGoneError, UnsupportedError, isTombstone, type Store, type WatchEvent } from '../src/core/index.js';
// The conformance suite comes from dist/: its multi-process part spawns the
// compiled counter worker next to it (run `npm run build` first).
import { describeConformance } from '../dist/testing/vitest.js';
import { open } from '../src/open.js';

const NATS_URL = process.env.REVKIT_NATS_URL ?? 'nats://127.0.0.1:4222';

/** Buckets this test file created; dropped by dropBuckets(). */
const made = new Set<string>();

function freshBucket(tag = 't'): string {
  const name = `rk_${tag}_${process.pid}_${randomBytes(4).toString('hex')}`;
  made.add(name);
  return name;
}

function urlFor(bucket: string, extra = ''): string {
  return `${NATS_URL}?bucket=${bucket}${extra}`;
}

async function adminConnection(): Promise<NatsConnection> {
  return connect({ servers: NATS_URL.replace(/^nats:\/\//, ''), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
}

async function dropBuckets(): Promise<void> {
  if (made.size === 0) return;
  const nc = await adminConnection();
  try {
    const jsm = await jetstreamManager(nc);
    for (const b of made) await jsm.streams.delete(`KV_${b}`).catch(() => undefined);
    made.clear();
  } finally {
    await nc.close();
  }
}

afterAll(dropBuckets, 60_000);

describeConformance({
  name: 'nats',
  create: async () => NatsStore.fromUrl(urlFor(freshBucket('c'))),
  url: async () => urlFor(freshBucket('mp')),
  timeoutMs: 30_000,
});

async function collect(iter: AsyncIterable<WatchEvent>, n: number, timeoutMs = 10_000): Promise<WatchEvent[]> {
  const seen: WatchEvent[] = [];
  const done = (async () => {
    for await (const ev of iter) {
      seen.push(ev);
      if (seen.length >= n) break;
    }
  })();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([done, new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`saw ${seen.length} of ${n}: ${JSON.stringify(seen.map((e) => [e.key, e.revision]))}`)), timeoutMs)))]);
  clearTimeout(timer);
  return seen;
}

describe('nats specifics', () => {
  const weird = ['a', 'a/b', 'a//b', 'a/', '/', '//', '/a', 'emoji/😀', 'dots.and.more', 'star*', '*', '>', 'gt>', 'sp ace', 'x=y', '=', '=abc', 'é/日本/%2F/+', '__proto__', '-_-', '🙂'.repeat(256), 'x'.repeat(1024), '/'.repeat(1023), ' /'.repeat(512)];

  it('keys encode reversibly into valid subject tokens, one token per level, within the subject length budget', () => {
    for (const k of weird) {
      const enc = encodeKey(k);
      expect(enc).toMatch(/^[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)*$/);
      expect(enc.split('.').length).toBe(k.split('/').length);
      expect(decodeKey(enc)).toBe(k);
      expect(enc.length).toBeLessThanOrEqual(MAX_ENCODED_KEY_CHARS);
    }
    expect(new Set(weird.map(encodeKey)).size).toBe(weird.length);
    // Foreign KV keys that revkit did not encode are not mistaken for revkit keys.
    expect(decodeKey('a/b')).toBeNull();
    expect(decodeKey('=abc=')).toBeNull();
    expect(decodeKey('a..b')).toBeNull();
    expect(filterForPrefix('p/')).toEqual({ filter: 'p.>', exact: true });
    expect(filterForPrefix('p/q/r')).toEqual({ filter: 'p.q.>', exact: false });
    expect(filterForPrefix('pq')).toEqual({ filter: '>', exact: false });
    expect(filterForPrefix('')).toEqual({ filter: '>', exact: true });
  });

  it('every awkward key round-trips through the server: put, get, list, watch, history', async () => {
    const s = await NatsStore.fromUrl(urlFor(freshBucket('keys')));
    try {
      const controller = new AbortController();
      const watching = collect(s.watch({ prefix: '', fromRevision: 0, signal: controller.signal }), weird.length);
      for (const [i, k] of weird.entries()) await s.put(k, i);
      for (const [i, k] of weird.entries()) {
        expect((await s.get(k))?.value).toBe(i);
        expect((await s.history(k)).map((r) => r.revision)).toHaveLength(1);
      }
      const listed = (await s.list({ limit: 100 })).entries.map((e) => e.key);
      expect(listed).toEqual([...weird].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
      expect((await s.list({ prefix: 'a/' })).entries.map((e) => e.key)).toEqual(['a/', 'a//b', 'a/b']);
      expect((await s.list({ prefix: '/' })).entries.map((e) => e.key)).toEqual(['/', '//', '/'.repeat(1023), '/a']);
      const events = await watching;
      controller.abort();
      expect(events.map((e) => e.key)).toEqual(weird);
    } finally {
      await s.close();
    }
  });

  it('prefix list and watch use subject filters, so other keys never reach the client (a watch only where the server keeps filtered reads whole, 2.9.16+)', async () => {
    const bucket = freshBucket('filter');
    const s = await NatsStore.fromUrl(urlFor(bucket));
    const nc = await adminConnection();
    try {
      for (let i = 0; i < 20; i++) await s.put(`noise/${i}`, i);
      await s.put('tenant/a/x', 1);
      await s.put('tenant/a/y', 2);
      await s.put('tenant/ab', 3);
      // The consumer the store creates carries the subject filter of the prefix's complete levels.
      const jsm = await jetstreamManager(nc);
      const filters: string[] = [];
      const controller = new AbortController();
      const iter = s.watch({ prefix: 'tenant/a/', fromRevision: 0, signal: controller.signal })[Symbol.asyncIterator]();
      const events = [(await iter.next()).value as WatchEvent, (await iter.next()).value as WatchEvent];
      for await (const ci of jsm.consumers.list(`KV_${bucket}`)) filters.push(ci.config.filter_subject ?? '');
      controller.abort();
      expect(events.map((e) => e.key)).toEqual(['tenant/a/x', 'tenant/a/y']);
      // Before 2.9.16 a filtered consumer can pass over kept messages (src/nats/features.ts): the watch reads unfiltered.
      expect(filters).toContain(s.features.filteredReads ? `$KV.${bucket}.tenant.a.>` : '');
      expect((await s.list({ prefix: 'tenant/a/' })).entries.map((e) => e.key)).toEqual(['tenant/a/x', 'tenant/a/y']);
      expect((await s.list({ prefix: 'tenant/a' })).entries.map((e) => e.key)).toEqual(['tenant/a/x', 'tenant/a/y', 'tenant/ab']);
    } finally {
      await s.close();
      await nc.close();
    }
  });

  it('conflicts come from JetStream codes and carry the current revision; a raw KV writer is guarded too', async () => {
    const bucket = freshBucket('cas');
    const s = await NatsStore.fromUrl(urlFor(bucket));
    const nc = await adminConnection();
    try {
      const kv = await new Kvm(nc).open(bucket);
      const a = await s.put('k', 1);
      const foreign = await kv.put(encodeKey('k'), new TextEncoder().encode('2'));
      const err = await s.put('k', 3, { ifRevision: a.revision }).catch((x) => x);
      expect(ConflictError.is(err)).toBe(true);
      expect(err).toMatchObject({ expected: a.revision, actual: foreign });
      expect((err.cause as { code?: number } | undefined)?.code).toBeUndefined();
      // The raw driver's CAS reports the same code the store recognises.
      const raw = await kv.update(encodeKey('k'), new TextEncoder().encode('4'), a.revision).catch((x) => x);
      expect([10071, 10164]).toContain(raw.code);
      // ifAbsent on a live key: conflict with its revision.
      expect(await s.put('k', 5, { ifAbsent: true }).catch((x) => x.actual)).toBe(foreign);
      expect((await s.get('k'))?.value).toBe(2);
    } finally {
      await s.close();
      await nc.close();
    }
  });

  it('delete and purge markers keep guarding later writes; a writer racing a delete loses', async () => {
    const bucket = freshBucket('tomb');
    const s = await NatsStore.fromUrl(urlFor(bucket));
    const nc = await adminConnection();
    try {
      const kv = await new Kvm(nc).open(bucket);
      const read = await s.put('d', 'v1');
      // Racing writers: one deletes, the other writes guarded by what it read. Exactly one wins.
      const [del, put] = await Promise.allSettled([s.delete('d', { ifRevision: read.revision }), s.put('d', 'v2', { ifRevision: read.revision })]);
      expect([del.status, put.status].sort()).toEqual(['fulfilled', 'rejected']);
      // A PURGE marker written by the raw KV client is a tombstone that guards like a delete.
      const live = await s.put('p', 'x');
      await kv.purge(encodeKey('p'));
      const rec = await s.getRecord('p');
      expect(isTombstone(rec)).toBe(true);
      expect(rec!.revision).toBeGreaterThan(live.revision);
      expect(await s.put('p', 'y', { ifRevision: live.revision }).catch((x) => x.code)).toBe('ERR_CONFLICT');
      expect(await s.get('p')).toBeNull();
      expect((await s.put('p', 'z', { ifAbsent: true })).createdRevision).toBeGreaterThan(rec!.revision);
      // update() on a purged key starts from the default, guarded by the purge marker.
      await kv.purge(encodeKey('p'));
      expect((await s.update<number>('p', (n) => (n ?? 0) + 1, { default: 10 }))?.value).toBe(11);
    } finally {
      await s.close();
      await nc.close();
    }
  });

  it('writer token, createdRevision and updatedAt survive a re-read and history', async () => {
    const s = await NatsStore.fromUrl(urlFor(freshBucket('hdr')));
    try {
      const a = await s.put('w', 1, { writer: 'tok-1' });
      const b = await s.put('w', 2, { ifRevision: a.revision, writer: 'tok-2' });
      const r = await s.getRecord('w');
      expect(r).toMatchObject({ revision: b.revision, createdRevision: a.revision, writer: 'tok-2', updatedAt: b.updatedAt });
      const h = await s.history('w');
      expect(h.map((x) => x.writer)).toEqual(['tok-2', 'tok-1']);
      // A second store (no cache) computes createdRevision from the server too.
      const s2 = await NatsStore.fromUrl(urlFor(s.bucket));
      const c = await s2.put('w', 3);
      expect(c.createdRevision).toBe(a.revision);
      await s2.close();
    } finally {
      await s.close();
    }
  });

  it('watch from a revision whose changes the bucket no longer keeps throws HistoryGoneError', async () => {
    const s = await NatsStore.fromUrl(urlFor(freshBucket('gone'), '&history=3'));
    try {
      const first = await s.put('g', 0);
      for (let i = 1; i <= 6; i++) await s.put('g', i);
      const it = s.watch({ key: 'g', fromRevision: first.revision })[Symbol.asyncIterator]();
      const err = await it.next().catch((e) => e);
      expect(HistoryGoneError.is(err)).toBe(true);
      // From a revision that is still covered, everything arrives.
      const h = await s.history('g');
      expect(h).toHaveLength(3);
      const ok = await collect(s.watch({ key: 'g', fromRevision: (h[2]!.revision) }), 2);
      expect(ok.map((e) => e.revision)).toEqual([h[1]!.revision, h[0]!.revision]);
    } finally {
      await s.close();
    }
  });

  it('watch resumes after the connection drops without loss or duplicates', async () => {
    const s = await NatsStore.fromUrl(urlFor(freshBucket('resume')));
    const writer = await NatsStore.fromUrl(urlFor(s.bucket));
    try {
      const base = await writer.put('r/0', 0);
      const controller = new AbortController();
      const seen: number[] = [];
      const iter = s.watch({ prefix: 'r/', fromRevision: base.revision, signal: controller.signal });
      const watching = (async () => {
        for await (const ev of iter) {
          seen.push(ev.revision);
          if (seen.length === 60) break;
        }
      })();
      const revs: number[] = [];
      for (let i = 0; i < 30; i++) revs.push((await writer.put(`r/${i % 3}`, i)).revision);
      // Drop the watcher's connection under it (the client reconnects by itself).
      const nc = (s as unknown as { nc: NatsConnection }).nc;
      await (nc as unknown as { reconnect(): Promise<void> }).reconnect();
      for (let i = 30; i < 60; i++) revs.push((await writer.put(`r/${i % 3}`, i)).revision);
      await Promise.race([watching, new Promise((_, rej) => setTimeout(() => rej(new Error(`saw ${seen.length}`)), 20_000))]);
      controller.abort();
      expect(seen).toEqual(revs);
    } finally {
      await s.close();
      await writer.close();
    }
  }, 30_000);

  it('capabilities come from the connected server; ttl and atomic are refused with UnsupportedError', async () => {
    const s = await NatsStore.fromUrl(urlFor(freshBucket('caps')));
    try {
      const nc = await adminConnection();
      const version = nc.info!.version;
      await nc.close();
      expect(s.features.version).toBe(version);
      const [major, minor] = version.split('.').map(Number) as [number, number];
      expect(s.features.perKeyTtl).toBe(major > 2 || minor >= 11);
      expect(s.features.atomicBatch).toBe(major > 2 || minor >= 12);
      expect(s.capabilities).toMatchObject({ ttl: false, atomic: false, history: true, watch: true, crossProcess: true, durability: 'os-buffered' });
      expect(UnsupportedError.is(await s.put('t', 1, { ttlMs: 1000 }).catch((x) => x))).toBe(true);
      expect(UnsupportedError.is(await s.atomic().set('t', 1).commit().catch((x) => x))).toBe(true);
      const mem = await NatsStore.fromUrl(urlFor(freshBucket('mem'), '&storage=memory'));
      expect(mem.capabilities.durability).toBe('memory');
      await mem.close();
    } finally {
      await s.close();
    }
  });

  it('open() by URL and the constructor over an existing connection share one bucket', async () => {
    const bucket = freshBucket('open');
    const byUrl: Store = await open(urlFor(bucket));
    const nc = await adminConnection();
    try {
      const shared = await NatsStore.open(nc, { bucket });
      const e = await byUrl.put('x', { a: 1 });
      expect(await shared.get('x')).toMatchObject({ value: { a: 1 }, revision: e.revision });
      await shared.close();
      expect(nc.isClosed()).toBe(false);
      const si = await (await jetstreamManager(nc)).streams.info(`KV_${bucket}`);
      expect(si.config).toMatchObject({ max_msgs_per_subject: 64, allow_direct: true, storage: 'file', num_replicas: 1 });
    } finally {
      await byUrl.close();
      await nc.close();
    }
  });

  it('a value over the server max_payload (with headers) is TooLargeError, not a driver error', async () => {
    const s = await NatsStore.fromUrl(urlFor(freshBucket('big')), { maxValueBytes: 4 * 1024 * 1024 });
    try {
      const err = await s.put('big', 'x'.repeat(s.features.maxPayload)).catch((x) => x);
      expect(err.code).toBe('ERR_TOO_LARGE');
      expect(err.limit).toBe(s.features.maxPayload);
      expect(await s.getRecord('big')).toBeNull();
    } finally {
      await s.close();
    }
  });

  it('a raw publish without revkit headers still reads as an entry', async () => {
    const bucket = freshBucket('raw');
    const s = await NatsStore.fromUrl(urlFor(bucket));
    const nc = await adminConnection();
    try {
      const js = jetstream(nc);
      const h = natsHeaders();
      h.set('X', '1');
      const ack = await js.publish(`$KV.${bucket}.${encodeKey('plain key')}`, new TextEncoder().encode('"hi"'), { headers: h });
      expect(await s.getRecord('plain key')).toMatchObject({ value: 'hi', revision: ack.seq, createdRevision: ack.seq });
    } finally {
      await s.close();
      await nc.close();
    }
  });

  it('list() under concurrent writers returns every key exactly once', async () => {
    const s = await NatsStore.fromUrl(urlFor(freshBucket('lst')));
    try {
      const KEYS = 600;
      for (let i = 0; i < KEYS; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => s.put(`l/${i + j}`, 0)));
      let writing = true;
      const writers = Array.from({ length: 8 }, async (_, w) => {
        for (let n = 0; writing; n++) await s.put(`l/${(n * 8 + w) % KEYS}`, n);
      });
      try {
        for (let round = 0; round < 5; round++) {
          const { entries } = await s.list({ prefix: 'l/', limit: 10_000 });
          const keys = entries.map((e) => e.key);
          expect(new Set(keys).size).toBe(keys.length);
          expect(keys.length).toBe(KEYS);
        }
      } finally {
        writing = false;
        await Promise.all(writers);
      }
    } finally {
      await s.close();
    }
  });

  it('ttl and atomic() are refused with the reason: the server version they need and the one connected', async () => {
    const s = await NatsStore.fromUrl(urlFor(freshBucket('why')));
    try {
      const version = s.features.version;
      const ttl = await s.put('t', 1, { ttlMs: 1000 }).catch((x) => x);
      const viaUpdate = await s.update('t', () => 1, { ttlMs: 1000 }).catch((x) => x);
      const atomic = await s.atomic().set('t', 1).commit().catch((x) => x);
      for (const err of [ttl, viaUpdate, atomic]) expect(UnsupportedError.is(err)).toBe(true);
      if (!s.features.perKeyTtl) expect(ttl.message).toContain(`needs nats-server 2.11 or newer, this server is ${version}`);
      if (!s.features.atomicBatch) expect(atomic.message).toContain(`needs nats-server 2.12 or newer, this server is ${version}`);
      expect(viaUpdate.message).toBe(ttl.message);
      expect(await s.getRecord('t')).toBeNull();
    } finally {
      await s.close();
    }
  });

  it('a delete by another KV client shows in history with the time the server stored it', async () => {
    const bucket = freshBucket('ftomb');
    const s = await NatsStore.fromUrl(urlFor(bucket));
    const nc = await adminConnection();
    try {
      const put = await s.put('k', 1);
      await (await new Kvm(nc).open(bucket)).delete(encodeKey('k'));
      const [tomb] = await s.history('k');
      expect(tomb).toMatchObject({ key: 'k', deleted: true });
      expect(tomb!.updatedAt!).toBeGreaterThanOrEqual(put.updatedAt - 5_000);
      expect(tomb!.updatedAt!).toBeLessThan(put.updatedAt + 60_000);
    } finally {
      await s.close();
      await nc.close();
    }
  });
});
