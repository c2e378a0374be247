import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { RevkitError, ValidationError, encodeForWrite, jsonCodec, jsonTextForWrite, rawCodec, type Codec, type Store } from '../src/core/index.js';
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

/** Encodes into one scratch array and returns a view of it, as fast serializers do: its next call overwrites the last result. */
function scratchCodec(): Codec {
  const scratch = new Uint8Array(64);
  return {
    name: 'scratch',
    encode: (value) => {
      const text = new TextEncoder().encode(JSON.stringify(value));
      scratch.fill(32);
      scratch.set(text);
      return scratch.subarray(0, text.byteLength);
    },
    decode: (bytes) => JSON.parse(new TextDecoder().decode(bytes)),
  };
}

/** Hands back a view of the very array it is given (zero-copy). */
const viewCodec: Codec = { name: 'view', encode: (value) => value as Uint8Array, decode: (bytes) => bytes };

/** Stores undefined as no bytes, as an "optional" codec would. */
const optional: Codec = {
  name: 'optional',
  encode: (value) => (value === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(value))),
  decode: (bytes) => (bytes.byteLength === 0 ? undefined : JSON.parse(new TextDecoder().decode(bytes))),
};

/** encode returns what is not a Uint8Array. */
const notBytes = (what: unknown): Codec => ({ name: 'not-bytes', encode: () => what as Uint8Array, decode: () => null });

for (const [name, create] of Object.entries(backends)) {
  describe(`${name}: custom codecs' arrays (review round 2)`, () => {
    it('a codec that reuses its output array: every write keeps its own bytes, sequential, concurrent and atomic', async () => {
      await using(await create(scratchCodec()), async (s) => {
        await s.put('seq1', 'one');
        await s.put('seq2', 'two');
        const [a, b] = await Promise.all([s.put('c1', 'AAA'), s.put('c2', 'BBB')]);
        expect([a.value, b.value]).toEqual(['AAA', 'BBB']);
        if (s.capabilities.atomic) await s.atomic().set('x', 'XXX').set('y', 'YYY').commit();
        const keys = s.capabilities.atomic ? ['seq1', 'seq2', 'c1', 'c2', 'x', 'y'] : ['seq1', 'seq2', 'c1', 'c2'];
        const read = await Promise.all(keys.map(async (k) => (await s.get(k))?.value));
        expect(read).toEqual(['one', 'two', 'AAA', 'BBB', 'XXX', 'YYY'].slice(0, keys.length));
      });
    });

    it('a codec that stores undefined as no bytes: the write is answered with undefined and reads back so', async () => {
      await using(await create(optional), async (s) => {
        const written = await s.put('u', undefined);
        expect(written.value).toBeUndefined();
        expect(written.revision).toBeGreaterThan(0);
        const read = await s.get('u');
        expect(read?.revision).toBe(written.revision);
        expect(read?.value).toBeUndefined();
      });
    });

    it('encode returning null, a string or an array: ValidationError naming it, nothing written, the size limit never skipped', async () => {
      for (const what of [null, 'text', [1, 2, 3]]) {
        await using(await create(notBytes(what)), async (s) => {
          const err = await s.put('k', 1).catch((e) => e);
          expect(codeOf(err), String(err)).toBe('ERR_VALIDATION');
          expect((err as Error).message).toMatch(/encode returned (null|a string|an instance of Array), not a Uint8Array/);
          expect(await s.getRecord('k')).toBeNull();
        });
      }
    });
  });
}

describe('memory: a codec that decodes to views of the bytes it is given', () => {
  it('what put, get and a watch hand out are not views of the stored bytes', async () => {
    await using(new MemoryStore({ codec: viewCodec }), async (s) => {
      const controller = new AbortController();
      const events = s.watch({ prefix: '', signal: controller.signal })[Symbol.asyncIterator]();
      const put = await s.put('b', new Uint8Array([1, 2, 3]));
      (put.value as Uint8Array)[0] = 99;
      ((await s.get('b'))?.value as Uint8Array)[1] = 98;
      const event = (await events.next()).value as { entry: { value: Uint8Array } };
      event.entry.value[2] = 97;
      expect([...((await s.get('b'))?.value as Uint8Array)]).toEqual([1, 2, 3]);
      controller.abort();
    });
  });

  it('a value the codec cannot read when a watch gets it: the put is answered, the watch ends with a BackendError after what came before', async () => {
    let decodes = 0;
    const failsOnce: Codec = {
      name: 'fails-once',
      encode: (value) => new TextEncoder().encode(JSON.stringify(value)),
      decode: (bytes) => {
        // The write's own read-back is the 1st decode of the 2nd put; the watch's copy the 2nd.
        if (++decodes === 4) throw new Error('flaky decode');
        return JSON.parse(new TextDecoder().decode(bytes));
      },
    };
    await using(new MemoryStore({ codec: failsOnce }), async (s) => {
      const controller = new AbortController();
      const events = s.watch({ prefix: '', signal: controller.signal })[Symbol.asyncIterator]();
      const first = await s.put('k', 1);
      const second = await s.put('k', 2);
      expect(second.value).toBe(2);
      expect(((await events.next()).value as { revision: number }).revision).toBe(first.revision);
      const err = await events.next().catch((e) => e);
      expect(codeOf(err)).toBe('ERR_BACKEND');
      expect((await s.get('k'))?.revision).toBe(second.revision);
      controller.abort();
    });
  });
});

class Money {
  constructor(readonly cents: number) {}
  add(cents: number): Money {
    return new Money(this.cents + cents);
  }
}

/** Decodes to class instances: only the codec can copy its values. */
const moneyCodec: Codec = {
  name: 'money',
  encode: (value) => new TextEncoder().encode(JSON.stringify({ cents: (value as Money).cents })),
  decode: (bytes) => new Money((JSON.parse(new TextDecoder().decode(bytes)) as { cents: number }).cents),
};

/** Reads its bytes as a Buffer does (toString), as it is given them by every read. */
const bufferCodec: Codec = {
  name: 'buffer-minded',
  encode: (value) => Buffer.from(JSON.stringify(value)),
  decode: (bytes) => JSON.parse((bytes as Buffer).toString('utf8')),
};

for (const [name, create] of Object.entries(backends)) {
  describe(`${name}: custom codecs (review round 3)`, () => {
    it('a codec of class instances: a mutation, alone or combined, gets an instance, as a read does', async () => {
      await using(await create(moneyCodec), async (s) => {
        await s.put('m', new Money(5));
        expect((await s.get('m'))?.value).toBeInstanceOf(Money);
        const alone = await s.update<Money>('m', (v) => (v as Money).add(1));
        expect(alone?.value).toEqual(new Money(6));
        const [a, b] = await Promise.all([s.update<Money>('m', (v) => (v as Money).add(10)), s.update<Money>('m', (v) => (v as Money).add(100))]);
        expect(a?.value).toBeInstanceOf(Money);
        expect(b?.value).toEqual(new Money(116));
      });
    });

    it('a codec that reads its bytes as a Buffer: a write decodes them as a read does', async () => {
      await using(await create(bufferCodec), async (s) => {
        const put = await s.put('b', { a: 1 });
        expect(put.value).toEqual({ a: 1 });
        expect((await s.get('b'))?.value).toEqual({ a: 1 });
      });
    });
  });
}

describe('postgres: ifValue conditions through a custom codec', () => {
  it('a codec that reuses its output array: concurrent conditional puts each compare their own condition', async () => {
    await using(await backends.postgres(scratchCodec()), async (s) => {
      await Promise.all([s.put('a', 'A'), s.put('b', 'B')]);
      const results = await Promise.allSettled([s.put('a', 'A2', { ifValue: 'A' }), s.put('b', 'B2', { ifValue: 'B' })]);
      expect(results.map((r) => (r.status === 'fulfilled' ? 'ok' : codeOf(r.reason)))).toEqual(['ok', 'ok']);
    });
  });

  it('an ifValue the codec cannot encode: ValidationError, not a TypeError', async () => {
    await using(await backends.postgres(numbersOnly), async (s) => {
      await s.put('n', 1);
      expect(codeOf(await s.put('n', 2, { ifValue: 'one' }).catch((e) => e))).toBe('ERR_VALIDATION');
    });
  });
});

describe('RevkitError.is', () => {
  it('an error whose code is an inherited property name is not a revkit error', () => {
    for (const code of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) expect(RevkitError.is({ code })).toBe(false);
    expect(RevkitError.is({ code: 'ERR_CONFLICT' })).toBe(true);
  });
});

describe('memory keeps JSON values as text (jsonTextForWrite): the same answers as encoding to bytes', () => {
  const outcome = (f: () => { value: unknown }) => {
    try {
      return { ok: f().value };
    } catch (err) {
      return { err: (err as RevkitError).code, message: (err as Error).message };
    }
  };
  it('every value, at and around the limit in UTF-8 bytes: accepted or refused alike, with the same size and the same copy', () => {
    const values: unknown[] = [
      0, -0, 1e21, 5e-324, -1.5, true, false, null, '', 'é', '😀', '\ud800', '\u2028', 'a"b\\c\n',
      { a: 'é'.repeat(10) }, ['😀', { x: -0 }], { nested: { deep: [1, 2, { s: 'ü' }] } },
      Number.NaN, undefined, { d: new Date(0) }, [1, undefined], 10n,
    ];
    for (const value of values) {
      for (const limit of [1, 2, 3, 4, 5, 8, 12, 16, 24, 40, 64, 1024]) {
        const asText = outcome(() => jsonTextForWrite(value, limit));
        const asBytes = outcome(() => encodeForWrite(jsonCodec, value, limit));
        expect(asText, `${String(value)} within ${limit}`).toEqual(asBytes);
      }
    }
  });

  it('a store with a small limit refuses what the byte encoding refuses, and reads back what it took', async () => {
    const s = new MemoryStore({ maxValueBytes: 8 });
    for (const value of ['abcdef', 'abcdefg', 'éé', 'ééé', '😀', '😀é', { a: 1 }, { ab: 12 }]) {
      const bytes = outcome(() => encodeForWrite(jsonCodec, value, 8));
      const put = await s.put('k', value).then((e) => ({ ok: e.value }), (err: RevkitError) => ({ err: err.code, message: err.message }));
      expect(put, JSON.stringify(value)).toEqual(bytes);
      if ('ok' in put) expect((await s.get('k'))?.value).toEqual(value);
    }
    await s.close();
  });
});
