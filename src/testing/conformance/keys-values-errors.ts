import { describe, expect } from 'vitest';
import { BackendError, ClosedError, InvalidKeyError, RevkitError, TooLargeError, ValidationError, toHttpStatus } from '../../core/index.js';
import type { RegisterStoreTest } from './harness.js';

export function describeKeysValuesErrors(test: RegisterStoreTest): void {
  describe('keys, values and errors', () => {
    test('every valid key works: unicode, emoji, separators, __proto__, constructor', async (s) => {
      const keys = ['__proto__', 'constructor', 'toString', 'a b', 'ключ/значение', 'emoji/😀', 'dots.and*stars>', 'x'.repeat(1024), 'é/日本/%2F/+', '🙂'.repeat(256)];
      for (const [i, k] of keys.entries()) await s.put(k, { i });
      for (const [i, k] of keys.entries()) expect((await s.get(k))?.value).toEqual({ i });
      expect((await s.list({ prefix: 'emoji/' })).entries.map((e) => e.key)).toEqual(['emoji/😀']);
      const listed = (await s.list({ limit: 100 })).entries.map((e) => e.key);
      expect(new Set(listed)).toEqual(new Set(keys));
    });

    test('invalid keys are refused with InvalidKeyError and write nothing', async (s) => {
      for (const bad of ['', 'a\u0000b', 'tab\there', 'new\nline', 'x'.repeat(1025), '😀'.repeat(257), 'lone\ud800', 42 as unknown as string]) {
        const err = await s.put(bad, 1).catch((x) => x);
        expect(InvalidKeyError.is(err)).toBe(true);
        expect(toHttpStatus(err)).toBe(400);
      }
      expect((await s.list()).entries).toEqual([]);
    });

    test('values: empty, null, nested, __proto__ keys round-trip; oversized → TooLargeError', async (s) => {
      const values: unknown[] = ['', null, 0, false, [], {}, { __proto__: null, a: 1 }, JSON.parse('{"__proto__": {"polluted": true}}'), { deep: [[[{ x: 'y' }]]] }];
      for (const [i, v] of values.entries()) {
        await s.put(`val/${i}`, v);
        expect((await s.get(`val/${i}`))?.value).toEqual(v);
      }
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      const big = 'x'.repeat(1024 * 1024 + 1);
      const err = await s.put('big', big).catch((x) => x);
      expect(TooLargeError.is(err)).toBe(true);
      expect(err.limit).toBe(1024 * 1024);
      expect(toHttpStatus(err)).toBe(413);
      expect(await s.getRecord('big')).toBeNull();
      const err2 = await s.put('undef', undefined).catch((x) => x);
      expect(ValidationError.is(err2)).toBe(true);
      expect(await s.getRecord('undef')).toBeNull();
    });

    test('values JSON cannot carry as given (NaN, Infinity, bigint, functions, undefined in arrays, cycles, Date) → ValidationError naming the path; nothing written', async (s) => {
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      const bad: [unknown, string[]][] = [
        [NaN, []], [{ n: Infinity }, ['n']], [{ a: [1, { b: -Infinity }] }, ['a', '1', 'b']], [{ big: 1n }, ['big']],
        [{ f: () => 1 }, ['f']], [[undefined], ['0']], [{ c: cyclic }, ['c', 'self']], [{ at: new Date(0) }, ['at']],
      ];
      const before = await s.put('faithful/kept', { n: 1 });
      for (const [i, [value, path]] of bad.entries()) {
        for (const attempt of [() => s.put(`faithful/${i}`, value), () => s.update(`faithful/${i}`, () => value), () => s.update('faithful/kept', () => value)]) {
          const err = await attempt().catch((x) => x);
          expect(ValidationError.is(err), String(err)).toBe(true);
          expect(toHttpStatus(err)).toBe(422);
          expect((err as ValidationError).issues[0]?.path?.map(String)).toEqual(path);
        }
        expect(await s.getRecord(`faithful/${i}`)).toBeNull();
      }
      expect(await s.get('faithful/kept')).toMatchObject({ value: { n: 1 }, revision: before.revision });
      // What reads back as given is stored: a JS number need not be a safe integer; -0 is stored as 0.
      await s.put('faithful/ok', { n: 2 ** 60, z: -0, gone: undefined });
      expect((await s.get('faithful/ok'))?.value).toEqual({ n: 2 ** 60, z: 0 });
    });

    test('list() with an after that is not a string → InvalidArgumentError (review round 2)', async (s) => {
      await s.put('a', 1);
      for (const after of [5, null, {}]) {
        const err = await s.list({ after: after as unknown as string }).catch((e) => e);
        expect(err?.code, String(err)).toBe('ERR_INVALID_ARGUMENT');
      }
    });

    test('options of the wrong type are InvalidArgumentError (or InvalidKeyError), never a TypeError, and nothing is written (review round 6)', async (s) => {
      const before = await s.put('opt', 0);
      const bad = null as unknown as object;
      const noSignal = {} as AbortSignal;
      const calls: Array<[string, () => unknown]> = [
        ['put(k, v, null)', () => s.put('opt', 1, bad)],
        ['delete(k, null)', () => s.delete('opt', bad)],
        ['update(k, fn, null)', () => s.update('opt', () => 1, bad)],
        ['update signal {}', () => s.update('opt', () => 1, { signal: noSignal })],
        ['update schema {}', () => s.update('opt', () => 1, { schema: {} as never })],
        ['update retry {}', () => s.update('opt', () => 1, { retry: {} as never })],
        ['update maxAttempts NaN', () => s.update('opt', () => 1, { maxAttempts: Number.NaN })],
        ['update maxAttempts "x"', () => s.update('opt', () => 1, { maxAttempts: 'x' as unknown as number })],
        ['update onRetry 5', () => s.update('opt', () => 1, { onRetry: 5 as never })],
        ['update validate 5', () => s.update('opt', () => 1, { validate: 5 as never })],
        ['update combine "no"', () => s.update('opt', () => 1, { combine: 'no' as unknown as boolean })],
        ['put writer 5', () => s.put('opt', 1, { writer: 5 as unknown as string })],
        ['put writer with CRLF', () => s.put('opt', 1, { writer: 'a\r\nb' })],
        ['put writer empty', () => s.put('opt', 1, { writer: '' })],
        ['delete writer 5', () => s.delete('opt', { writer: 5 as unknown as string })],
        ['atomic set null options', () => s.atomic().set('opt', 1, bad).commit()],
        ['list(null)', () => s.list(bad)],
        ['history(k, null)', () => s.history('opt', bad)],
        ['get(5)', () => s.get(5 as unknown as string)],
        ['history(5)', () => s.history(5 as unknown as string)],
        ['list prefix 5', () => s.list({ prefix: 5 as unknown as string })],
        ['watch()', () => (s.watch as (o?: unknown) => unknown)()],
        ['watch(null)', () => s.watch(bad)],
        ['watch signal {}', () => s.watch({ key: 'opt', signal: noSignal })],
        ['watch key and prefix', () => s.watch({ key: 'opt', prefix: 'o' })],
      ];
      for (const [what, call] of calls) {
        let err: unknown;
        try {
          await call();
        } catch (e) {
          err = e;
        }
        expect(RevkitError.is(err) && ['ERR_INVALID_ARGUMENT', 'ERR_INVALID_KEY'].includes(err.code), `${what}: ${String(err)}`).toBe(true);
      }
      expect((await s.getRecord('opt'))?.revision).toBe(before.revision);
    });

    test('a writer token the core accepts is kept and told back as given, on every backend (through HTTP too)', async (s) => {
      // 1 to 200 characters without control characters: spaces, dots, percent signs, quotes, non-ASCII, astral.
      const writers = ['a b', 'job.42', 'x'.repeat(200), 'ü', '€ 5', '𝄞', 'a/b:c%41', '%', '"q",;=', ' lead and trail '];
      for (const [i, writer] of writers.entries()) {
        const key = `writer/${i}`;
        const put = await s.put(key, i, { writer });
        expect(put.writer, `put ${JSON.stringify(writer)}`).toBe(writer);
        expect((await s.get(key))?.writer, `get ${JSON.stringify(writer)}`).toBe(writer);
        expect((await s.getRecord(key))?.writer, `getRecord ${JSON.stringify(writer)}`).toBe(writer);
        expect((await s.list({ prefix: key })).entries.map((e) => e.writer)).toEqual([writer]);
        if (s.capabilities.history) {
          const deleter = writer.length < 200 ? `${writer}!` : 'd';
          await s.delete(key, { writer: deleter });
          expect((await s.history(key)).map((e) => e.writer), `history ${JSON.stringify(writer)}`).toEqual([deleter, writer]);
        }
      }
    });

    test('every error is a RevkitError with a stable code', async (s) => {
      const errors = await Promise.all([
        s.put('', 1).catch((x) => x),
        s.put('e', 1, { ifRevision: 99 }).catch((x) => x),
        s.put('e', 1, { ttlMs: -5 }).catch((x) => x),
        s.list({ limit: 0 }).catch((x) => x),
      ]);
      expect(errors.map((e) => e.code)).toEqual(['ERR_INVALID_KEY', 'ERR_CONFLICT', 'ERR_INVALID_ARGUMENT', 'ERR_INVALID_ARGUMENT']);
      for (const e of errors) expect(RevkitError.is(e)).toBe(true);
      expect(RevkitError.is(new Error('plain'))).toBe(false);
      expect(BackendError.is(errors[0])).toBe(false);
    });

    test('close is idempotent; operations after close fail with ERR_CLOSED', async (s) => {
      await s.put('c', 1);
      await s.close();
      await s.close();
      const err = await s.get('c').catch((x) => x);
      expect(ClosedError.is(err)).toBe(true);
    });
  });
}
