/**
 * Back-pressure of the watches that read a change log by cursor (PostgreSQL, SQLite, Redis, memory, file, NATS) and of HttpStore: a consumer
 * that does not read keeps at most WATCH_BACKLOG_LIMIT events plus one page queued, not the whole
 * backlog (issue 25's review round 11: 100,000 changes of 1 kB queued, +126 MB), and when it reads
 * on it gets every change, in order, exactly once. The verdict is taken when a second, reading watch
 * of the same store has had the last change: the hub served both in the same rounds, so a hub without
 * back-pressure has pushed everything to the idle one too (the canary: it fails on the code before).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WATCH_BACKLOG_LIMIT, type Store, type WatchEvent } from '../src/core/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { FileStore } from '../src/file/index.js';
import { HttpStore } from '../src/server/index.js';
import { ADMIN, startServer } from './server-helpers.js';
import { Redis } from 'ioredis';
import { RedisStore, dropRedisStore } from '../src/redis/index.js';
import { NatsStore } from '../src/nats/index.js';
import { NATS_PORT, natsBucketsThisFileMakes } from './support/nats-buckets.js';
import { postgresStoresThisFileMakes } from './support/postgres-stores.js';

const CHANGES = 6000;
const { freshPrefix, store: pgStore } = postgresStoresThisFileMakes('rk_wbp_', 1);
const natsBuckets = natsBucketsThisFileMakes();
const dir = mkdtempSync(join(tmpdir(), 'revkit-backpressure-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function verdict(s: Store, page: number): Promise<void> {
  const idleController = new AbortController();
  const idle = s.watch({ prefix: 'k/', fromRevision: 0, signal: idleController.signal }) as AsyncIterable<WatchEvent> & { backlog: number };
  let last = 0;
  const written: number[] = [];
  for (let i = 0; i < CHANGES; i += 100) {
    if (!s.capabilities.atomic) {
      // One change per revision (NATS 2.9 has no multi-key commit).
      for (let j = i; j < i + 100; j++) written.push((last = (await s.put(`k/${j % 100}`, { j })).revision));
      continue;
    }
    const batch = s.atomic();
    for (let j = i; j < i + 100; j++) batch.set(`k/${j % 100}`, { j });
    const { revision } = await batch.commit();
    written.push(revision);
    last = revision;
  }
  const readingController = new AbortController();
  for await (const e of s.watch({ prefix: 'k/', fromRevision: 0, signal: readingController.signal })) if (e.revision === last) break;
  readingController.abort();
  // It was handed events too (a state, not a time: the deadline only bounds a hang).
  for (const end = Date.now() + 30_000; idle.backlog === 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
  expect(idle.backlog).toBeGreaterThan(0);
  expect(idle.backlog, 'events queued for a consumer that does not read').toBeLessThanOrEqual(WATCH_BACKLOG_LIMIT + page);
  // It reads on: every change, in order, once.
  const got: number[] = [];
  let prev = 0;
  for await (const e of idle) {
    expect(e.revision).toBeGreaterThanOrEqual(prev);
    prev = e.revision;
    got.push(e.revision);
    if (got.length === CHANGES) break;
  }
  idleController.abort();
  expect(got.length).toBe(CHANGES);
  expect([...new Set(got)]).toEqual(written);
}

describe('a watch whose consumer does not read: bounded queue, then every change', () => {
  it('sqlite', async () => {
    const s = new SqliteStore(join(dir, 'bp.db'));
    try {
      await verdict(s, 1000);
    } finally {
      await s.close();
    }
  });

  it('postgres', async () => {
    await verdict(await pgStore(freshPrefix(), { watchPollMs: 20 }), 500);
  });

  it('file', async () => {
    const s = new FileStore(join(dir, 'bp.json'), { changeLogSize: 10_000 });
    try {
      await verdict(s, 0);
    } finally {
      await s.close();
    }
  });

  it('file: a watch paused for its backlog ends when the store closes (after what it had queued)', async () => {
    const s = new FileStore(join(dir, 'bp-close.json'));
    const watch = s.watch({ prefix: 'k/', fromRevision: 0 }) as AsyncIterable<WatchEvent> & { backlog: number };
    for (let i = 0; i < 1200; i += 100) {
      const batch = s.atomic();
      for (let j = i; j < i + 100; j++) batch.set(`k/${j % 100}`, { j });
      await batch.commit();
    }
    for (const end = Date.now() + 30_000; watch.backlog < WATCH_BACKLOG_LIMIT && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    expect(watch.backlog).toBe(WATCH_BACKLOG_LIMIT);
    await s.close();
    // Ended without its consumer reading (before, it waited for the consumer to make room first).
    const ended = watch as unknown as { closed: boolean };
    for (const end = Date.now() + 30_000; !ended.closed && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    expect(ended.closed).toBe(true);
    let n = 0;
    for await (const _ of watch) n++;
    expect(n).toBe(WATCH_BACKLOG_LIMIT);
  });

  it('memory', async () => {
    const s = new MemoryStore();
    try {
      await verdict(s, 0);
    } finally {
      await s.close();
    }
  });

  it('memory: a watch from a revision not written yet delivers only what commits after it', async () => {
    const s = new MemoryStore();
    try {
      const got: number[] = [];
      const controller = new AbortController();
      const watching = (async () => {
        for await (const e of s.watch({ prefix: 'k/', fromRevision: 3, signal: controller.signal })) {
          got.push(e.revision);
          if (e.revision === 5) controller.abort();
        }
      })();
      for (let i = 1; i <= 5; i++) await s.put(`k/${i}`, i);
      await watching;
      expect(got).toEqual([4, 5]);
    } finally {
      await s.close();
    }
  });

  it('memory: a watch created while a commit is handed out (a codec hook) gets that commit whole or not at all, never a change twice', async () => {
    let store: MemoryStore | undefined;
    let armed = false;
    let decodes = 0;
    const made: AsyncIterator<WatchEvent>[] = [];
    const controller = new AbortController();
    const codec = {
      name: 'hook',
      encode: (v: unknown) => new TextEncoder().encode(JSON.stringify(v)),
      decode: (b: Uint8Array) => {
        const v = JSON.parse(new TextDecoder().decode(b)) as unknown;
        // The second decode of 'HOOK' is the outer watch's copy, in the middle of the atomic commit's hand-out.
        if (v === 'HOOK' && armed && ++decodes === 2 && store) {
          made.push(store.watch({ prefix: 'k/', fromRevision: 1, signal: controller.signal })[Symbol.asyncIterator]());
          made.push(store.watch({ prefix: 'k/', signal: controller.signal })[Symbol.asyncIterator]());
        }
        return v;
      },
    };
    const s = new MemoryStore({ codec });
    store = s;
    try {
      await s.put('k/0', 0);
      const outer = s.watch({ prefix: 'k/', signal: controller.signal });
      armed = true;
      const { revision } = await s.atomic().set('k/a', 1).set('k/b', 'HOOK').set('k/c', 3).commit();
      const last = (await s.put('k/d', 4)).revision;
      expect(made).toHaveLength(2);
      const upTo = async (it: AsyncIterator<WatchEvent>) => {
        const got: string[] = [];
        for (;;) {
          const r = await it.next();
          if (r.done) return got;
          got.push(`${r.value.revision}:${r.value.key}`);
          if (r.value.revision === last) return got;
        }
      };
      expect(await upTo(made[0] as AsyncIterator<WatchEvent>)).toEqual([`${revision}:k/a`, `${revision}:k/b`, `${revision}:k/c`, `${last}:k/d`]);
      expect(await upTo(made[1] as AsyncIterator<WatchEvent>)).toEqual([`${last}:k/d`]);
      void outer;
    } finally {
      controller.abort();
      await s.close();
    }
  });

  it('redis', async () => {
    const url = process.env.REVKIT_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
    const prefix = `rk_wbp_${process.pid}_${Date.now().toString(36)}`;
    const s = await RedisStore.fromUrl(url, { prefix });
    try {
      await verdict(s, 1000);
    } finally {
      await s.close();
      const client = new Redis(url);
      await dropRedisStore(client, { prefix }).finally(() => client.disconnect());
    }
  });

  it('nats', async () => {
    const bucket = `wbp_${process.pid}_${Date.now().toString(36)}`;
    natsBuckets.push(bucket);
    const s = await NatsStore.fromUrl(`nats://127.0.0.1:${NATS_PORT}?bucket=${bucket}`);
    try {
      await verdict(s, 0);
    } finally {
      await s.close();
    }
  });

  // HttpStore stops reading the server's stream (TCP holds the rest back; the server ends a stream that far
  // behind with `overflow` and the client resumes after its last event). "One page" here: one chunk of the stream.
  it('HttpStore', async () => {
    const { server, url } = await startServer({ store: new MemoryStore(), closeStore: true });
    const client = new HttpStore({ url, token: ADMIN });
    try {
      await verdict(client, 1000);
    } finally {
      await client.close();
      await server.close();
    }
  });
});

describe('a watch passed over inside a commit, whose rest is then pruned (review, 2026-12-06)', () => {
  it('postgres: HistoryGoneError names the history after the revision before that commit, so no change of it is passed over silently', async () => {
    const s = await pgStore(freshPrefix(), { watchPollMs: 20, changeRetentionMs: 0, historyDepth: 1 });
    const watch = s.watch({ prefix: 'k/', fromRevision: 0 }) as AsyncIterable<WatchEvent> & AsyncIterator<WatchEvent> & { backlog: number };
    const revisions: number[] = [];
    for (let i = 0; i < 3; i++) {
      const batch = s.atomic();
      for (let j = 0; j < 2000; j++) batch.set(`k/${String(j).padStart(4, '0')}`, { i });
      revisions.push((await batch.commit()).revision);
    }
    // The hub stops once the idle consumer has the limit queued: pages of 500, so inside the first commit.
    const deadline = Date.now() + 30_000;
    while (watch.backlog < WATCH_BACKLOG_LIMIT && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(watch.backlog).toBe(WATCH_BACKLOG_LIMIT);
    await s.sweep();
    const perRevision = new Map<number, number>();
    let error: { code?: string; fromRevision?: number } | undefined;
    try {
      for await (const e of watch) {
        perRevision.set(e.revision, (perRevision.get(e.revision) ?? 0) + 1);
        if (e.revision === revisions[2] && perRevision.get(e.revision) === 2000) break;
      }
    } catch (err) {
      error = err as typeof error;
    }
    expect(error?.code).toBe('ERR_HISTORY_GONE');
    // Every revision up to the one the error says history is kept after was delivered whole.
    for (const r of revisions) if (r <= (error?.fromRevision as number)) expect(perRevision.get(r), `revision ${r}`).toBe(2000);
    expect(error?.fromRevision).toBeLessThan(revisions[0] as number);
  });
});

