import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { RevkitError } from '../src/core/index.js';
import { copyFileSync, statSync } from 'node:fs';
import { FileStore } from '../src/file/index.js';
import { CommitQueue } from '../src/file/commit-queue.js';
import { vi } from 'vitest';
import { NatsStore } from '../src/nats/index.js';
import { FaultStore, CanaryStore } from '../src/testing/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { SKIP, type Store, type StoredRecord } from '../src/core/index.js';
import { servedStore } from './server-helpers.js';
import { NATS_PORT, natsBucketsThisFileMakes } from './support/nats-buckets.js';
import { tempDir, uniqueName } from './helpers.js';

/**
 * Review round 3 (2026-12-06): limits a combined update()'s check of a replaced value did not see —
 * each case told a caller success for a value its write alone is refused for, or the reverse.
 */
const outcome = (r: PromiseSettledResult<unknown>) => (r.status === 'fulfilled' ? 'ok' : (r.reason as RevkitError).code);
const dir = tempDir('combined-limits');
const buckets = natsBucketsThisFileMakes();

describe('combined update()s and the limits only a write sees', () => {
  it('file: a value that makes the file longer than maxFileLength is refused as it is alone', async () => {
    const store = new FileStore(join(dir, `${uniqueName('f')}.json`), { maxFileLength: 2500 });
    try {
      const alone = await Promise.allSettled([store.update('alone', () => 'x'.repeat(3000))]);
      expect(alone.map(outcome)).toEqual(['ERR_TOO_LARGE']);
      const results = await Promise.allSettled([
        store.update('k', () => 'x'.repeat(3000)),
        store.update('k', (v) => ({ builtOn: typeof v === 'string' ? v.length : null })),
      ]);
      expect(results.map(outcome)).toEqual(['ERR_TOO_LARGE', 'ok']);
      expect((await store.get('k'))?.value).toEqual({ builtOn: null });
    } finally {
      await store.close();
    }
  });

  it('a testing wrapper over HttpStore does not combine either: the server\'s validate hook reaches its caller', async () => {
    const http = await servedStore('memory:', { validate: (_key, value) => (value === 'bad' ? 'no bad values' : undefined) });
    const store = new FaultStore(http);
    try {
      const results = await Promise.allSettled([
        store.update('k', () => 'good'),
        store.update('k', () => 'bad'),
        store.update('k', (v) => `after ${String(v)}`),
      ]);
      expect(results.map(outcome)).toEqual(['ok', 'ERR_VALIDATION', 'ok']);
      expect(JSON.stringify((await http.get('k'))?.value)).not.toContain('bad');
    } finally {
      await http.close();
    }
  });

  it('nats: the largest value a write alone takes passes a combined write too, and one byte more is refused in both', async () => {
    const bucket = `rk_cl_${process.pid}_${randomBytes(4).toString('hex')}`;
    buckets.push(bucket);
    const store = await NatsStore.fromUrl(`nats://127.0.0.1:${NATS_PORT}?bucket=${bucket}`);
    try {
      // The largest string an update() of a fresh key writes alone, by halving (keys of one length: the subject counts).
      let fits = 1024 * 1024 - 400;
      let over = 1024 * 1024;
      for (let k = 0; over - fits > 1; k++) {
        const mid = (fits + over) >> 1;
        const [r] = await Promise.allSettled([store.update(`p${String(k).padStart(2, '0')}`, () => 'x'.repeat(mid))]);
        if (outcome(r as PromiseSettledResult<unknown>) === 'ok') fits = mid;
        else over = mid;
      }
      const largest = await Promise.allSettled([store.update('k01', () => 'x'.repeat(fits)), store.update('k01', () => 'small')]);
      expect(largest.map(outcome)).toEqual(['ok', 'ok']);
      const larger = await Promise.allSettled([store.update('k02', () => 'x'.repeat(over)), store.update('k02', () => 'small')]);
      expect(larger.map(outcome)).toEqual(['ERR_TOO_LARGE', 'ok']);
    } finally {
      await store.close();
    }
  }, 60_000);

  it('file (review round 4): the file grows near maxFileLength after the callers arrived; the combined check sees it when the attempt runs', async () => {
    const options = { maxValueBytes: 200, maxFileLength: 40_000, fsync: false };
    const path = join(dir, `${uniqueName('grow')}.json`);
    // The callers must wait behind a loop that is busy with the store (one waiting for a mutation holds nobody).
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const store = new (class extends FileStore {
      holding = true;
      override async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
        if (key === 'k' && this.holding) {
          this.holding = false;
          await held;
        }
        return super.getRecord<T>(key);
      }
    })(path, options);
    const aloneOnACopy = async (value: string) => {
      const copy = join(dir, `${uniqueName('copy')}.json`);
      copyFileSync(path, copy);
      const other = new FileStore(copy, options);
      try {
        return outcome((await Promise.allSettled([other.update('k', () => value)]))[0] as PromiseSettledResult<unknown>);
      } finally {
        await other.close();
      }
    };
    try {
      await store.put('init', 1);
      const first = store.update('k', () => SKIP);
      await new Promise((r) => setTimeout(r, 20));
      const big = store.update('k', () => 'x'.repeat(190));
      const small = store.update('k', () => 's');
      // Other keys fill the file until, written alone now, the big value is refused and the small one is not.
      for (let i = 0; ; i++) {
        const [bigAlone, smallAlone] = [await aloneOnACopy('x'.repeat(190)), await aloneOnACopy('s')];
        if (bigAlone === 'ERR_TOO_LARGE' && smallAlone === 'ok') break;
        expect(smallAlone).toBe('ok');
        const room = options.maxFileLength - statSync(path).size;
        await store.put(`f${i}`, 'p'.repeat(Math.max(1, Math.min(150, Math.floor((room - 600) / 3)))));
      }
      release();
      const results = await Promise.allSettled([big, small]);
      expect(results.map(outcome)).toEqual(['ERR_TOO_LARGE', 'ok']);
      expect((await store.get('k'))?.value).toBe('s');
      await first;
    } finally {
      await store.close();
    }
  });

  it('a testing wrapper over a Store that is not a BaseStore (it cannot check values) does not combine', async () => {
    const memory = new MemoryStore({ maxValueBytes: 100 });
    const forwarding = {} as Record<string, unknown>;
    for (const k of ['get', 'getRecord', 'put', 'delete', 'update', 'list', 'watch', 'history', 'atomic', 'close', 'headRevision'] as const) {
      forwarding[k] = (...a: unknown[]) => (memory[k] as (...b: unknown[]) => unknown)(...a);
    }
    Object.assign(forwarding, { backend: 'memory', capabilities: memory.capabilities });
    try {
      for (const Wrapper of [FaultStore, CanaryStore]) {
        const store = new Wrapper(forwarding as unknown as Store);
        const results = await Promise.allSettled([store.update(Wrapper.name, () => 'x'.repeat(200)), store.update(Wrapper.name, () => 'small')]);
        expect(results.map(outcome)).toEqual(['ERR_TOO_LARGE', 'ok']);
      }
    } finally {
      await memory.close();
    }
  });

  it('file (review round 5): callers arriving near maxFileLength run alone — no file is built to check a value, the event loop stays free', async () => {
    const path = join(dir, `${uniqueName('near')}.json`);
    const filler = new FileStore(path, { fsync: false });
    await filler.put('fill', 'f'.repeat(20_000));
    await filler.put('n', 0);
    await filler.close();
    // Within one largest write (maxValueBytes 200: ~10 kB) of the limit, with room for the counter's writes.
    const store = new FileStore(path, { fsync: false, maxValueBytes: 200, maxFileLength: statSync(path).size + 8_000 });
    const builds = vi.spyOn(CommitQueue.prototype, 'assertWouldFit');
    try {
      const results = await Promise.all(Array.from({ length: 20 }, () => store.update<number>('n', (v) => (v as number) + 1)));
      expect((await store.get('n'))?.value).toBe(20);
      expect(new Set(results.map((e) => e?.revision)).size).toBe(20);
      expect(builds).not.toHaveBeenCalled();
    } finally {
      builds.mockRestore();
      await store.close();
    }
  });
});
