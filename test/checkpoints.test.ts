import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { BackendError, ConflictError, InvalidArgumentError, InvalidKeyError, OutcomeUnknownError, type Store, type WatchEvent } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { canonicalJson, checkpoints, follow, resumeKey, resumeKeyOfJson, type Checkpoints } from '../src/checkpoints/index.js';
import { backends, openFresh } from './checkpoints-backends.js';

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

describe('resume keys', () => {
  it('are SHA-256 of the canonical JSON: sorted members, no whitespace', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 0, y: -1.5 } })).toBe('{"a":[true,null,"x"],"b":1,"c":{"y":-1.5,"z":0}}');
    expect(resumeKey({ stream: 'orders', consumer: 'billing' })).toBe(sha256('{"consumer":"billing","stream":"orders"}'));
    expect(resumeKey({ stream: 'orders' })).toMatch(/^[0-9a-f]{64}$/);
  });

  it('key order and number formatting cannot change them', () => {
    const key = resumeKey({ stream: 'orders', partition: 1, filter: { a: 1, b: [2] } });
    expect(resumeKey({ filter: { b: [2], a: 1 }, partition: 1, stream: 'orders' })).toBe(key);
    for (const text of [
      '{"stream":"orders","partition":1,"filter":{"a":1,"b":[2]}}',
      '{"partition":1.0,"filter":{"b":[2.00],"a":1e0},"stream":"orders"}',
      '{ "filter" : { "a" : 10E-1 , "b" : [ 0.2e1 ] } , "stream" : "orders", "partition": 100e-2 }',
    ]) expect(resumeKeyOfJson(text)).toBe(key);
    expect(resumeKey({ n: -0 })).toBe(resumeKey({ n: 0 }));
  });

  it('numbers follow RFC 8785 (ECMAScript shortest round-trip form)', () => {
    expect(canonicalJson([1e21, 1e-7, 0.000001, 123456789012345680000, 4.5, 2 ** 53])).toBe('[1e+21,1e-7,0.000001,123456789012345680000,4.5,9007199254740992]');
    expect(canonicalJson({ '\u20ac': 1, '\r': 2, '1': 3, a: 4 })).toBe('{"\\r":2,"1":3,"a":4,"€":1}');
  });

  it('differ for different identities', () => {
    const keys = [{ s: 'a' }, { s: 'b' }, { s: 'a', p: 0 }, ['a'], 'a', { s: '1' }, { s: 1 }].map(resumeKey);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('refuse what JSON cannot carry faithfully, with InvalidArgumentError', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const [i, bad] of [undefined, { a: undefined }, { n: NaN }, [Infinity], { b: 1n }, { d: new Date(0) }, { f: () => 1 }, cyclic, { s: '\ud800' }].entries()) {
      expect(() => resumeKey(bad), `case ${i}`).toThrow(InvalidArgumentError);
    }
    expect(() => resumeKeyOfJson('{not json')).toThrow(InvalidArgumentError);
  });

  it('from JSON text: an integer beyond 2^53 is refused with its path, never merged with its rounded neighbour', () => {
    const exact = resumeKeyOfJson('{"partition":9007199254740992}');
    expect(exact).toBe(resumeKey({ partition: 2 ** 53 }));
    const refused = (() => {
      try {
        return resumeKeyOfJson('{"stream":"orders","partition":9007199254740993}');
      } catch (err) {
        return err;
      }
    })();
    expect(InvalidArgumentError.is(refused), String(refused)).toBe(true);
    expect((refused as Error).message).toContain('$.partition is the number 9007199254740993');
    // Nested, and in an array: the path says where.
    expect(() => resumeKeyOfJson('{"a":{"b":[0,18446744073709551615]}}')).toThrow(/\$\.a\.b\[1\] is the number 18446744073709551615/);
    expect(() => resumeKeyOfJson('[-9007199254740993]')).toThrow(/\$\[0\] is the number -9007199254740993/);
    // The same number spelled differently is still one identity.
    expect(resumeKeyOfJson('{"partition":9.007199254740992e15}')).toBe(exact);
    expect(resumeKeyOfJson('{"partition":9007199254740992.000}')).toBe(exact);
  });

  it('from JSON text: 1e400, 1e-400 and digits a double drops are refused; what a double holds exactly is not', () => {
    for (const [text, path] of [
      ['{"n":1e400}', '$.n'], ['[-1e400]', '$[0]'], ['{"n":1e-400}', '$.n'],
      ['{"n":0.10000000000000001}', '$.n'], ['{"n":123456789012345678901}', '$.n'], ['{"n":2.5e-324}', '$.n'],
    ] as const) {
      expect(() => resumeKeyOfJson(text), text).toThrow(InvalidArgumentError);
      expect(() => resumeKeyOfJson(text), text).toThrow(`${path} is the number`);
    }
    expect(resumeKeyOfJson('{"n":0.1}')).toBe(resumeKey({ n: 0.1 }));
    expect(resumeKeyOfJson('{"n":1e21}')).toBe(resumeKey({ n: 1e21 }));
    expect(resumeKeyOfJson('{"n":123456789012345680000}')).toBe(resumeKey({ n: 123456789012345680000 }));
    expect(resumeKeyOfJson('{"n":5e-324}')).toBe(resumeKey({ n: 5e-324 }));
    expect(resumeKeyOfJson('{"n":1.7976931348623157e308}')).toBe(resumeKey({ n: Number.MAX_VALUE }));
    expect(resumeKeyOfJson('{"n":-0}')).toBe(resumeKey({ n: 0 }));
    expect(resumeKeyOfJson('{"n":0e999999999999}')).toBe(resumeKey({ n: 0 }));
  });

  it('from JSON text: strings, escapes, whitespace and a "__proto__" member read as JSON.parse reads them; a member given twice is refused', () => {
    for (const text of ['  {"x" : [ 1 , "a\\"b\\\\" , true, false, null, {} , [ ] ] , "\\u00e9\\ud83d\\ude00": "" }\n', '{"__proto__":{"a":1}}', '"just a string"', '[]']) {
      expect(resumeKeyOfJson(text), text).toBe(resumeKey(JSON.parse(text)));
    }
    expect(() => resumeKeyOfJson('{"a":1,"b":{"c":1,"c":2}}')).toThrow(/\$\.b\.c twice/);
    expect(() => resumeKeyOfJson('"\\ud800"')).toThrow(InvalidArgumentError);
  });

  it('nesting too deep for the stack is an InvalidArgumentError, not a RangeError', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(() => resumeKeyOfJson(deep)).toThrow(InvalidArgumentError);
    expect(() => resumeKey(JSON.parse(deep))).toThrow(InvalidArgumentError);
  });
});

/** A store whose update() commits, then reports an unknown outcome, `times` times. */
function losingAcknowledgements(inner: Store, times: number, commit = true): Store {
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'update') {
        return async (...args: Parameters<Store['update']>) => {
          if (times-- <= 0) return target.update(...args);
          if (commit) await target.update(...args);
          throw new OutcomeUnknownError(args[0]);
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('advance after a write whose outcome was unknown', () => {
  const key = resumeKey({ consumer: 'x' });

  it('does it again (moving to a maximum twice changes nothing) and reports the cursor as its own', async () => {
    for (const commit of [true, false]) {
      const inner = new MemoryStore();
      const cps = checkpoints(losingAcknowledgements(inner, 1, commit), { prefix: 'cp/' });
      expect(await cps.advance(key, { sequence: 4, eventId: 'e4' })).toEqual({ advanced: true, current: { sequence: 4, eventId: 'e4' } });
      expect(await checkpoints(inner, { prefix: 'cp/' }).get(key)).toEqual({ sequence: 4, eventId: 'e4' });
      await inner.close();
    }
  });

  it('gives up with OutcomeUnknownError when it stays unknown', async () => {
    const inner = new MemoryStore();
    const cps = checkpoints(losingAcknowledgements(inner, 100), { prefix: 'cp/' });
    await expect(cps.advance(key, { sequence: 4 })).rejects.toThrow(OutcomeUnknownError);
    await inner.close();
  });
});

for (const backend of backends('unit')) {
  describe(`checkpoints on ${backend.name}`, () => {
    let store: Store;
    let cps: Checkpoints;
    const key = resumeKey({ stream: 'orders', consumer: 'billing' });
    const other = resumeKey({ stream: 'orders', consumer: 'audit' });

    afterEach(async () => store?.close());
    const fresh = async (prefix = 'cp/') => {
      store = await openFresh(backend);
      cps = checkpoints(store, { prefix });
      return cps;
    };

    it('advance moves forward only and says where the cursor is', async () => {
      await fresh();
      expect(await cps.get(key)).toBeNull();
      expect(await cps.advance(key, { sequence: 5, eventId: 'e5' })).toEqual({ advanced: true, current: { sequence: 5, eventId: 'e5' } });
      expect(await cps.advance(key, { sequence: 9 })).toEqual({ advanced: true, current: { sequence: 9 } });
      expect(await cps.advance(key, { sequence: 3, eventId: 'e3' })).toEqual({ advanced: false, current: { sequence: 9 } });
      expect(await cps.advance(key, { sequence: 9, eventId: 'again' })).toEqual({ advanced: false, current: { sequence: 9 } });
      expect(await cps.get(key)).toEqual({ sequence: 9 });
      expect((await store.get('cp/' + key))?.value).toEqual({ sequence: 9 });
      expect(await cps.advance(key, { sequence: 0 })).toEqual({ advanced: false, current: { sequence: 9 } });
      expect(await cps.get(other)).toBeNull();
    });

    it('a sequence of 0 is a valid first cursor', async () => {
      await fresh();
      expect(await cps.advance(key, { sequence: 0 })).toEqual({ advanced: true, current: { sequence: 0 } });
      expect(await cps.advance(key, { sequence: 0 })).toMatchObject({ advanced: false });
    });

    it('reset is the explicit way back: to a given cursor, or removed', async () => {
      await fresh();
      await cps.advance(key, { sequence: 100 });
      expect(await cps.reset(key, { sequence: 7, eventId: 'x' })).toEqual({ sequence: 7, eventId: 'x' });
      expect(await cps.get(key)).toEqual({ sequence: 7, eventId: 'x' });
      expect(await cps.advance(key, { sequence: 8 })).toMatchObject({ advanced: true });
      expect(await cps.reset(key)).toBeNull();
      expect(await cps.get(key)).toBeNull();
      expect(await cps.advance(key, { sequence: 1 })).toEqual({ advanced: true, current: { sequence: 1 } });
    });

    it('delete with ifAt is refused when another writer advanced past what the caller saw', async () => {
      await fresh();
      const seen = await cps.advance(key, { sequence: 10 });
      await cps.advance(key, { sequence: 11 });
      const refused = await cps.delete(key, { ifAt: seen.current }).catch((e) => e);
      expect(ConflictError.is(refused)).toBe(true);
      expect(refused.message).toMatch(/moved to sequence 11, past the 10/);
      expect(await cps.get(key)).toEqual({ sequence: 11 });
      expect(await cps.delete(key, { ifAt: 11 })).toBe(true);
      expect(await cps.get(key)).toBeNull();
      expect(await cps.delete(key, { ifAt: 11 })).toBe(false);
      // Reset below what the caller saw is not "advanced past": the delete goes through.
      await cps.advance(key, { sequence: 50 });
      await cps.reset(key, { sequence: 2 });
      expect(await cps.delete(key, { ifAt: 50 })).toBe(true);
    });

    it('bad input is a typed error and writes nothing', async () => {
      await fresh();
      const bad: unknown[] = [-1, 1.5, NaN, Infinity, '3', null, 2 ** 53];
      for (const sequence of bad) {
        await expect(cps.advance(key, { sequence } as never), String(sequence)).rejects.toThrow(InvalidArgumentError);
        await expect(cps.reset(key, { sequence } as never)).rejects.toThrow(InvalidArgumentError);
      }
      await expect(cps.advance(key, { sequence: 1, eventId: 5 } as never)).rejects.toThrow(InvalidArgumentError);
      await expect(cps.advance(key, null as never)).rejects.toThrow(InvalidArgumentError);
      for (const k of ['', 'billing', key.toUpperCase(), key.slice(1), `${key}0`]) await expect(cps.get(k)).rejects.toThrow(InvalidArgumentError);
      await expect(cps.delete(key, {} as never)).rejects.toThrow(InvalidArgumentError);
      await expect(cps.delete(key, { ifAt: -1 })).rejects.toThrow(InvalidArgumentError);
      expect(() => checkpoints(store, { prefix: 'a\u0000' })).toThrow(InvalidKeyError);
      expect(() => checkpoints(store, undefined as never)).toThrow(InvalidArgumentError);
      expect(await cps.list()).toEqual([]);
    });

    it('a value that is not a cursor is a BackendError, not a silent restart', async () => {
      await fresh();
      await store.put(`cp/${key}`, { seq: 'nope' });
      await expect(cps.get(key)).rejects.toThrow(BackendError);
      await expect(cps.advance(key, { sequence: 1 })).rejects.toThrow(BackendError);
      expect((await store.get(`cp/${key}`))?.value).toEqual({ seq: 'nope' });
    });

    it('list gives every cursor under the prefix, and nothing else', async () => {
      await fresh('subs/');
      const keys = Array.from({ length: 5 }, (_, i) => resumeKey({ consumer: i }));
      for (const [i, k] of keys.entries()) await cps.advance(k, { sequence: i * 10 });
      await store.put('subs/not-a-cursor', 1);
      await checkpoints(store, { prefix: 'subs/deeper/' }).advance(key, { sequence: 1 });
      const listed = await cps.list();
      expect(listed.map((l) => l.key)).toEqual([...keys].sort());
      expect(Object.fromEntries(listed.map((l) => [l.key, l.cursor.sequence]))).toEqual(Object.fromEntries(keys.map((k, i) => [k, i * 10])));
    });

    for (const combine of [true, false]) {
      it(`concurrent advances in one process end at the maximum (combine ${combine})`, async () => {
        store = await openFresh(backend);
        cps = checkpoints(store, { prefix: 'cp/', combine, maxAttempts: 10_000 });
        const sequences = Array.from({ length: 60 }, () => Math.floor(Math.random() * 1000));
        const results = await Promise.all(sequences.map((sequence) => cps.advance(key, { sequence })));
        expect(await cps.get(key)).toEqual({ sequence: Math.max(...sequences) });
        results.forEach((r, i) => expect(r.current.sequence).toBeGreaterThanOrEqual(sequences[i] as number));
        expect(results.filter((r) => r.advanced).length).toBeGreaterThan(0);
      });
    }

    describe('follow', () => {
      const handle = async (cps: Checkpoints, count: number, onEvent: (ev: WatchEvent) => void = () => undefined) => {
        const seen: WatchEvent[] = [];
        const controller = new AbortController();
        await follow(store, { prefix: 'data/', checkpoint: { checkpoints: cps, key } }, (ev) => {
          seen.push(ev);
          onEvent(ev);
          if (seen.length >= count) controller.abort();
        }, { signal: controller.signal });
        return seen;
      };

      it('handles every change, advances after each, and resumes where it stopped', async () => {
        await fresh();
        const revs: number[] = [];
        for (let i = 0; i < 5; i++) revs.push((await store.put(`data/k${i % 2}`, i)).revision);
        const first = await handle(cps, 3);
        expect(first.map((e) => e.revision)).toEqual(revs.slice(0, 3));
        expect(await cps.get(key)).toMatchObject({ sequence: revs[2] });
        for (let i = 5; i < 7; i++) revs.push((await store.put(`data/k${i % 2}`, i)).revision);
        const second = await handle(cps, 4);
        expect(second.map((e) => e.revision)).toEqual(revs.slice(3));
        expect(await cps.get(key)).toEqual({ sequence: revs[6], eventId: 'data/k0' });
      });

      it('a failing handler stops it, and its event comes again', async () => {
        await fresh();
        const a = await store.put('data/a', 1);
        const b = await store.put('data/b', 2);
        const failure = new Error('handler failed');
        const run = follow(store, { prefix: 'data/', checkpoint: { checkpoints: cps, key } }, (ev) => {
          if (ev.key === 'data/b') throw failure;
        });
        await expect(run).rejects.toBe(failure);
        expect(await cps.get(key)).toMatchObject({ sequence: a.revision });
        expect((await handle(cps, 1))[0]).toMatchObject({ key: 'data/b', revision: b.revision });
      });

      it('a multi-key commit interrupted in the middle resumes with the rest of it', async () => {
        await fresh();
        if (!store.capabilities.atomic) return void expect(store.atomic().commit()).rejects.toThrow();
        const { revision } = await store.atomic().set('data/x', 1).set('data/y', 2).set('data/z', 3).commit();
        const crash = new Error('crash after the first event');
        const first: WatchEvent[] = [];
        await expect(follow(store, { prefix: 'data/', checkpoint: { checkpoints: cps, key } }, (ev) => {
          if (first.length === 1) throw crash;
          first.push(ev);
        })).rejects.toBe(crash);
        expect(await cps.get(key)).toEqual({ sequence: revision, eventId: first[0]?.key });
        const rest = await handle(cps, 2);
        expect([...first, ...rest].map((e) => e.key).sort()).toEqual(['data/x', 'data/y', 'data/z']);
        expect(rest.every((e) => e.revision === revision)).toBe(true);
      });

      it('refuses a checkpoint stored under the prefix it follows (it would feed itself)', async () => {
        await fresh('data/cp/');
        await expect(follow(store, { prefix: 'data/', checkpoint: { checkpoints: cps, key } }, () => undefined)).rejects.toThrow(InvalidArgumentError);
      });
    });
  });
}
