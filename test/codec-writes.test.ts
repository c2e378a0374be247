import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { RevkitError, ValidationError, rawCodec, type Codec, type Store } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { SqliteStore } from '../src/sqlite/index.js';
import { FileStore } from '../src/file/index.js';
import { NatsStore } from '../src/nats/index.js';
import { dropStoresAfterAll, freshStore as freshRedisStore } from './redis-helpers.js';
import { postgresStoresThisFileMakes } from './support/postgres-stores.js';
import { NATS_PORT, natsBucketsThisFileMakes } from './support/nats-buckets.js';
import { tempDir, uniqueName } from './helpers.js';

/**
 * What a write's caller is told about the value it wrote, on every backend with a codec of its own
 * (review findings, 2026-12-05): the raw codec's entries must not share bytes with the caller or
 * with the store, and a value the codec cannot read back must fail its write, leaving no trace —
 * before, it was committed and its writer (and every reader after) got the codec's plain Error.
 */

dropStoresAfterAll();
const dir = tempDir('codec-writes');
const postgres = postgresStoresThisFileMakes('rk_codec_', 1);
const natsBuckets = natsBucketsThisFileMakes();

const backends: Record<string, (codec: Codec) => Promise<Store>> = {
  memory: async (codec) => new MemoryStore({ codec }),
  sqlite: async (codec) => new SqliteStore(join(dir, `${uniqueName('s')}.db`), { codec }),
  file: async (codec) => new FileStore(join(dir, `${uniqueName('f')}.json`), { codec }),
  postgres: async (codec) => postgres.store(postgres.freshPrefix(), { codec }),
  redis: async (codec) => freshRedisStore({ codec }),
  nats: async (codec) => {
    const bucket = `rk_codec_${process.pid}_${randomBytes(4).toString('hex')}`;
    natsBuckets.push(bucket);
    return NatsStore.fromUrl(`nats://127.0.0.1:${NATS_PORT}?bucket=${bucket}`, { codec });
  },
};

/** JSON, except that it cannot read back the string "unreadable" (a codec with a bug or a limit). */
const picky: Codec = {
  name: 'picky',
  encode: (value) => new TextEncoder().encode(JSON.stringify(value)),
  decode: (bytes) => {
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (value === 'unreadable') throw new Error('picky cannot read this');
    return value;
  },
};

/** Refuses to encode anything but numbers, with a plain Error. */
const numbersOnly: Codec = {
  name: 'numbers-only',
  encode: (value) => {
    if (typeof value !== 'number') throw new TypeError('numbers only');
    return new TextEncoder().encode(String(value));
  },
  decode: (bytes) => Number(new TextDecoder().decode(bytes)),
};

async function using<R>(store: Store, body: (s: Store) => Promise<R>): Promise<R> {
  try {
    return await body(store);
  } finally {
    await store.close();
  }
}

const codeOf = (err: unknown) => (RevkitError.is(err) ? err.code : `plain ${(err as Error)?.constructor?.name}`);

for (const [name, create] of Object.entries(backends)) {
  describe(`${name}: what a write's caller holds of the value it wrote`, () => {
    it('raw codec: the entry a put or update returns, and one a get returns, share bytes with neither the caller nor the store', async () => {
      await using(await create(rawCodec), async (s) => {
        const mine = new Uint8Array([1, 2, 3]);
        const put = await s.put('b', mine);
        mine[0] = 99;
        expect([...(put.value as Uint8Array)]).toEqual([1, 2, 3]);
        const got = (await s.get('b'))?.value as Uint8Array;
        expect([...got]).toEqual([1, 2, 3]);
        got[1] = 77;
        (put.value as Uint8Array)[2] = 55;
        expect([...((await s.get('b'))?.value as Uint8Array)]).toEqual([1, 2, 3]);
        const next = new Uint8Array([4, 5]);
        const updated = await s.update('b', () => next);
        next[0] = 0;
        expect([...(updated?.value as Uint8Array)]).toEqual([4, 5]);
        expect([...((await s.get('b'))?.value as Uint8Array)]).toEqual([4, 5]);
      });
    });

    it('a value the codec cannot read back fails its put, update and atomic set with ValidationError, and nothing is written', async () => {
      await using(await create(picky), async (s) => {
        expect(codeOf(await s.put('x', 'unreadable').catch((e) => e))).toBe('ERR_VALIDATION');
        expect(codeOf(await s.update('x', () => 'unreadable').catch((e) => e))).toBe('ERR_VALIDATION');
        if (s.capabilities.atomic) expect(codeOf(await s.atomic().set('x', 'unreadable').commit().catch((e) => e))).toBe('ERR_VALIDATION');
        expect(await s.getRecord('x')).toBeNull();
        const readable = await s.put('x', 'fine');
        expect(readable.value).toBe('fine');
        expect((await s.history('x')).map((r) => r.revision)).toEqual([readable.revision]);
      });
    });

    it('a codec whose encode throws a plain Error: the caller gets ValidationError carrying it as the cause', async () => {
      await using(await create(numbersOnly), async (s) => {
        const err = await s.put('n', 'text').catch((e) => e);
        expect(codeOf(err)).toBe('ERR_VALIDATION');
        expect(ValidationError.is(err) && (err as { cause?: unknown }).cause).toBeInstanceOf(TypeError);
        expect(await s.getRecord('n')).toBeNull();
        expect((await s.put('n', 7)).value).toBe(7);
      });
    });
  });
}
