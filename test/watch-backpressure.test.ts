/**
 * Back-pressure of the watch hubs that read a change log by cursor (PostgreSQL, SQLite): a consumer
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
import { WATCH_BACKLOG_LIMIT, type RevkitStore, type WatchEvent } from '../src/core/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { postgresStoresThisFileMakes } from './support/postgres-stores.js';

const CHANGES = 6000;
const { freshPrefix, store: pgStore } = postgresStoresThisFileMakes('rk_wbp_', 1);
const dir = mkdtempSync(join(tmpdir(), 'revkit-backpressure-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function verdict(s: RevkitStore, page: number): Promise<void> {
  const idleController = new AbortController();
  const idle = s.watch({ prefix: 'k/', fromRevision: 0, signal: idleController.signal }) as AsyncIterable<WatchEvent> & { backlog: number };
  let last = 0;
  const written: number[] = [];
  for (let i = 0; i < CHANGES; i += 100) {
    const batch = s.atomic();
    for (let j = i; j < i + 100; j++) batch.set(`k/${j % 100}`, { j });
    const { revision } = await batch.commit();
    written.push(revision);
    last = revision;
  }
  const readingController = new AbortController();
  for await (const e of s.watch({ prefix: 'k/', fromRevision: 0, signal: readingController.signal })) if (e.revision === last) break;
  readingController.abort();
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
});
