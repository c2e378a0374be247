// Values are never changed and then acknowledged: a value JSON cannot carry as it
// was given is refused with ERR_VALIDATION naming its path, and nothing is written.
// Text (HTTP bodies, CLI arguments, the console editor): a number literal that would
// read back as another number. JS values (put, update, atomic().set): NaN, ±Infinity,
// bigint, functions, symbols, undefined, cycles, class instances.
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ValidationError, findUnfaithfulNumber, jsonCodec, parseJsonValue, toHttpStatus, type Store } from '../src/core/index.js';
import { open } from '../src/open.js';
import pg from 'pg';
import { dropPostgresStore } from '../src/postgres/index.js';
import { parseJson as parseEditorJson } from '../ui/src/json.js';
import type { RevkitServer } from '../src/server/index.js';
import { tempDir, uniqueName } from './helpers.js';
import { parseNumber } from '../src/cli/args.js';
import { req, servedStore, startServer } from './server-helpers.js';

const dir = tempDir('faithful');
const PG_URL = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test`;

/** Literals that read back as the same number, with what they read back as. */
const FAITHFUL: [string, string][] = [
  ['1.0', '1'], ['1e2', '100'], ['1E2', '100'], ['-0', '0'], ['-0.0e-5', '0'], ['0e400', '0'], ['0.1', '0.1'], ['1e+23', '1e+23'],
  ['9007199254740992', '9007199254740992'], ['123456789012345', '123456789012345'], ['1152921504606847000', '1152921504606847000'],
  ['12345678901234567000', '12345678901234567000'], ['100000000000000000000000', '1e+23'], ['123456789.1234567', '123456789.1234567'],
  ['5e-324', '5e-324'], ['1.7976931348623157e308', '1.7976931348623157e+308'], ['-2.5e-3', '-0.0025'],
];
/** Literals whose value would change: what they would read back as (null: Infinity, not JSON at all). */
const UNFAITHFUL: [string, string | null][] = [
  ['12345678901234567891', '12345678901234567000'], ['9007199254740993', '9007199254740992'], ['-9007199254740993', '-9007199254740992'],
  ['1152921504606846976', '1152921504606847000'], ['1e400', null], ['-1e400', null], ['1.7976931348623159e308', null],
  ['1e-400', '0'], ['4.9e-324', '5e-324'], ['0.12345678901234567891', '0.12345678901234568'], ['12345678901234567891.0', '12345678901234567000'],
];

describe('number literals of JSON text', () => {
  it('a literal is faithful when what it reads back as is the same number: 1.0, 1e2, -0, 0.1, 1e+23, 2^53 are; 12345678901234567891, 1e400, 1e-400 are not', () => {
    for (const [literal, readsBack] of FAITHFUL) {
      expect(findUnfaithfulNumber(literal), literal).toBeNull();
      expect(JSON.stringify(JSON.parse(literal)), literal).toBe(readsBack);
    }
    for (const [literal, readsBack] of UNFAITHFUL) {
      expect(findUnfaithfulNumber(literal), literal).toEqual({ literal, readsBack, path: [], offset: 0 });
    }
  });

  it('agrees with an exact decimal comparison (BigInt) on random literals, and never refuses what JavaScript itself prints', () => {
    const literal = fc.tuple(
      fc.boolean(), fc.stringMatching(/^(0|[1-9][0-9]{0,24})$/), fc.option(fc.stringMatching(/^[0-9]{1,24}$/)), fc.option(fc.integer({ min: -340, max: 340 })),
    ).map(([neg, int, frac, exp]) => `${neg ? '-' : ''}${int}${frac === null ? '' : `.${frac}`}${exp === null ? '' : `e${exp}`}`);
    fc.assert(fc.property(literal, (text) => {
      const value = Number(text);
      const faithful = Number.isFinite(value) && sameNumber(text, String(value));
      expect(findUnfaithfulNumber(text) === null, text).toBe(faithful);
      expect(findUnfaithfulNumber(`{"a":[${text}]}`)?.path ?? null).toEqual(faithful ? null : ['a', 0]);
    }), { numRuns: 5000 });
    fc.assert(fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => findUnfaithfulNumber(JSON.stringify([x])) === null), { numRuns: 5000 });
  });

  it('names the path of the literal, through nesting, escaped member names and strings that look like numbers', () => {
    const text = '{"skip":"12345678901234567891 \\" 1e400","a\\"b":[1,{"c":[0,2e0, 12345678901234567891]}],"later":1e400}';
    expect(findUnfaithfulNumber(text)).toMatchObject({ literal: '12345678901234567891', path: ['a"b', 1, 'c', 2] });
    expect(findUnfaithfulNumber('["x\\\\", "1e400", {"n": [], "m": {}, "k": -1e400}]')).toMatchObject({ path: [2, 'k'] });
    expect(findUnfaithfulNumber('{"ids": ["12345678901234567891"], "n": 12345678901234567000, "f": 0.30000000000000004}')).toBeNull();
    const err = catchOf(() => parseJsonValue('{"a/b":{"x~y":[12345678901234567891]}}'));
    expect(ValidationError.is(err)).toBe(true);
    expect(err.issues).toEqual([{ path: ['a/b', 'x~y', 0], message: expect.stringMatching(/^\/a~1b\/x~0y\/0: the number 12345678901234567891 cannot be stored exactly \(it would read back as 12345678901234567000/) }]);
    expect(toHttpStatus(err)).toBe(422);
  });

  it('the console editor refuses such a number before anything is sent, at its line and column', () => {
    const parsed = parseEditorJson('{\n  "name": "x",\n  "order": 12345678901234567891\n}');
    expect(parsed).toMatchObject({ ok: false, title: 'Cannot be saved as written', line: 3, column: 12 });
    expect(parsed.ok === false && parsed.message).toMatch(/^\/order: the number 12345678901234567891 cannot be stored exactly \(it would read back as 12345678901234567000/);
    expect(parseEditorJson('[1e400]')).toMatchObject({ ok: false, line: 1, column: 2 });
    expect(parseEditorJson('{"a": 1.0, "b": -0, "c": 1e2}')).toEqual({ ok: true, value: { a: 1, b: -0, c: 100 } });
    expect(parseEditorJson('{"a": 1,}')).toMatchObject({ ok: false, title: 'JSON syntax error' });
  });
});

/** Two decimal texts denote the same number: compared exactly as BigInt mantissas at a common exponent. */
function sameNumber(a: string, b: string): boolean {
  const exact = (t: string): [bigint, number] => {
    const [mantissa, exp = '0'] = t.toLowerCase().split('e') as [string, string?];
    const [int, frac = ''] = mantissa.split('.') as [string, string?];
    return [BigInt(int.replace('-', '') + frac) * (mantissa.startsWith('-') ? -1n : 1n), Number(exp) - frac.length];
  };
  const [ma, ea] = exact(a);
  const [mb, eb] = exact(b);
  const e = Math.min(ea, eb);
  return ma * 10n ** BigInt(ea - e) === mb * 10n ** BigInt(eb - e);
}

function catchOf(fn: () => unknown): any {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('did not throw');
}

// ---- JS values given to the library

class Point {
  constructor(readonly x: number) {}
}
const cyclic: Record<string, unknown> = { a: 1 };
cyclic.self = cyclic;
const sparse = [1, , 3]; // eslint-disable-line no-sparse-arrays

/** A value JSON would change or drop, and the path the error must name. */
const REFUSED: [string, unknown, (string | number)[]][] = [
  ['NaN', NaN, []],
  ['Infinity', Infinity, []],
  ['-Infinity in an object', { n: -Infinity }, ['n']],
  ['NaN deep inside', { a: { b: [1, NaN] } }, ['a', 'b', 1]],
  ['a bigint', { big: 10n }, ['big']],
  ['a function member', { f: () => 1 }, ['f']],
  ['a symbol member', { s: Symbol('s') }, ['s']],
  ['undefined in an array', [1, undefined], [1]],
  ['an empty array slot', sparse, [1]],
  ['a cycle', { c: cyclic }, ['c', 'self']],
  ['a Date', { at: new Date(0) }, ['at']],
  ['a Map', { m: new Map([[1, 2]]) }, ['m']],
  ['a Uint8Array', { bytes: new Uint8Array([1]) }, ['bytes']],
  ['a class instance', [new Point(1)], [0]],
  ['a boxed number', { n: new Number(1) }, ['n']],
  ['undefined', undefined, []],
  ['a function', () => 1, []],
];

/** Values that read back as given (as JS compares them), though some are not literally the same. */
const ACCEPTED: [string, unknown, unknown][] = [
  ['2 ** 60, not a safe integer', { n: 2 ** 60 }, { n: 2 ** 60 }],
  ['2 ** 70', 2 ** 70, 2 ** 70],
  ['-0, stored as 0', { z: -0 }, { z: 0 }],
  ['0.1 + 0.2', 0.1 + 0.2, 0.30000000000000004],
  ['an undefined member, left out', { a: 1, gone: undefined }, { a: 1 }],
  ['a null-prototype object', Object.assign(Object.create(null) as object, { a: [1] }), { a: [1] }],
];

interface Target { name: string; create(): Promise<Store>; drop?(): Promise<void> }
const pgPrefix = `rk_faithful_${uniqueName('p').toLowerCase()}_`;
const targets: Target[] = [
  { name: 'memory', create: () => open('memory:') },
  // HttpStore refuses before sending: atomic().set({ n: NaN }) was sent as {"n":null} and stored.
  { name: 'http over memory', create: () => servedStore('memory:') },
  { name: 'sqlite', create: () => open(`sqlite:${join(dir, `${uniqueName('f')}.db`)}`) },
  {
    name: 'postgres',
    create: () => open(`${PG_URL}?prefix=${pgPrefix}`),
    drop: async () => {
      const pool = new pg.Pool({ connectionString: PG_URL, max: 1 });
      try {
        await dropPostgresStore(pool, { prefix: pgPrefix });
      } finally {
        await pool.end();
      }
    },
  },
];

for (const target of targets) {
  describe(`values given to the library → ${target.name}`, () => {
    let s: Store;
    beforeAll(async () => {
      s = await target.create();
    });
    afterAll(async () => {
      await s.close();
      await target.drop?.();
    });

    const expectRefused = (err: any, path: (string | number)[], what: string) => {
      expect(ValidationError.is(err), `${what}: ${String(err)}`).toBe(true);
      expect(err.issues).toHaveLength(1);
      expect(err.issues[0].path, what).toEqual(path);
      expect(err.message, what).toContain(path.length === 0 ? 'the value' : `/${path.join('/')}`);
    };

    it('put() refuses NaN, ±Infinity, bigint, functions, symbols, undefined, cycles and class instances with ValidationError naming the path; nothing is written', async () => {
      for (const [i, [what, value, path]] of REFUSED.entries()) {
        expectRefused(await s.put(`put/${i}`, value).catch((e) => e), path, what);
        expect(await s.getRecord(`put/${i}`), what).toBeNull();
      }
      // Over an existing value: it stays as it was, at its revision.
      const before = await s.put('put/existing', { n: 1 });
      expectRefused(await s.put('put/existing', { n: NaN }).catch((e) => e), ['n'], 'NaN over a value');
      expect(await s.get('put/existing')).toMatchObject({ value: { n: 1 }, revision: before.revision });
    });

    it('update() refuses a mutation result JSON cannot carry, alone or combined with other callers, and writes nothing for it', async () => {
      const start = await s.put('upd', { n: 1 });
      for (const [what, value, path] of REFUSED) {
        if (value === undefined) continue; // undefined is update()'s own business (a mutation must return a value)
        expectRefused(await s.update('upd', () => value, { combine: false }).catch((e) => e), path, what);
        expectRefused(await s.update('upd', () => value).catch((e) => e), path, `${what} (combined)`);
      }
      expect(await s.get('upd')).toMatchObject({ value: { n: 1 }, revision: start.revision });
      // Concurrent callers: the refused one is left out, the others are written.
      const results = await Promise.allSettled([
        s.update<{ n: number }>('upd', (c) => ({ n: (c?.n ?? 0) + 1 })),
        s.update<{ n: number }>('upd', (c) => ({ n: (c?.n ?? 0) + NaN })),
        s.update<{ n: number }>('upd', (c) => ({ n: (c?.n ?? 0) + 1 })),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expectRefused((results[1] as PromiseRejectedResult).reason, ['n'], 'NaN among combined callers');
      expect((await s.get('upd'))?.value).toEqual({ n: 3 });
    });

    it('atomic().set refuses such a value; no key of the batch is written', async () => {
      if (!s.capabilities.atomic) return;
      for (const [what, value, path] of REFUSED) {
        const err = await s.atomic().set('tx/good', { ok: true }).set('tx/bad', value).commit().catch((e) => e);
        expectRefused(err, path, what);
      }
      expect(await s.getRecord('tx/good')).toBeNull();
      expect(await s.getRecord('tx/bad')).toBeNull();
    });

    it('accepts what reads back as given: 2 ** 60 (a JS number need not be a safe integer), -0 (as 0), a left-out undefined member', async () => {
      for (const [i, [what, value, back]] of ACCEPTED.entries()) {
        await s.put(`ok/${i}`, value);
        const read = (await s.get(`ok/${i}`))?.value;
        expect(read, what).toEqual(back);
        expect(JSON.stringify(read), what).toBe(JSON.stringify(value));
      }
      expect(Object.is((await s.get<{ z: number }>('ok/2'))?.value.z, 0)).toBe(true);
    });
  });
}

describe('the JSON codec', () => {
  it('says where a bigint or a cycle is (JSON.stringify throws for them without saying where)', () => {
    expect(catchOf(() => jsonCodec.encode({ a: [{ b: 1n }] })).issues[0].path).toEqual(['a', 0, 'b']);
    expect(catchOf(() => jsonCodec.encode({ a: cyclic })).issues[0].path).toEqual(['a', 'self']);
  });
});

// ---- HTTP

describe('the server refuses JSON bodies with numbers it cannot carry as written (422, the path named, nothing written)', () => {
  let server: RevkitServer;
  let base: string;
  beforeAll(async () => {
    ({ server, url: base } = await startServer({ store: `sqlite:${join(dir, `${uniqueName('srv')}.db`)}` }));
  });
  afterAll(async () => {
    await server.close();
  });

  const expectRefused = (r: { status: number; json: any; text: string }, path: string[], pointer: string) => {
    expect(r.status, r.text).toBe(422);
    expect(r.json.code).toBe('ERR_VALIDATION');
    expect(r.json.issues).toEqual([{ path, message: expect.stringContaining(`${pointer}: the number`) }]);
    expect(r.json.detail).toContain(pointer);
  };

  it('PUT: {"order":12345678901234567891} is refused naming /order; 1e400 too; nothing is written', async () => {
    expectRefused(await req(base, 'PUT', '/v1/kv/big', { raw: '{"order":12345678901234567891}', headers: { 'content-type': 'application/json' } }), ['order'], '/order');
    expect((await req(base, 'GET', '/v1/kv/big')).status).toBe(404);
    expectRefused(await req(base, 'PUT', '/v1/kv/inf', { raw: '[1, 1e400]', headers: { 'content-type': 'application/json' } }), ['1'], '/1');
    expect((await req(base, 'GET', '/v1/kv/inf')).status).toBe(404);
    // Over an existing value, with If-Match: the value stays.
    const put = await req(base, 'PUT', '/v1/kv/kept', { body: { order: 1 } });
    const r = await req(base, 'PUT', '/v1/kv/kept', { raw: '{"order":9007199254740993}', headers: { 'content-type': 'application/json', 'if-match': put.headers.get('etag') as string } });
    expectRefused(r, ['order'], '/order');
    const get = await req(base, 'GET', '/v1/kv/kept');
    expect(get.text).toBe('{"order":1}');
    expect(get.headers.get('etag')).toBe(put.headers.get('etag'));
  });

  it('PUT accepts 1.0, 1e2, -0, 0.1 and 12345678901234567000, which read back as the same numbers', async () => {
    const r = await req(base, 'PUT', '/v1/kv/fine', { raw: '{"a":1.0,"b":1e2,"c":-0,"d":0.1,"e":12345678901234567000,"f":1e+23}', headers: { 'content-type': 'application/json' } });
    expect(r.status, r.text).toBe(201);
    expect((await req(base, 'GET', '/v1/kv/fine')).text).toBe('{"a":1,"b":100,"c":0,"d":0.1,"e":12345678901234567000,"f":1e+23}');
  });

  it('PATCH: a merge patch with such a number is refused; the value is unchanged (with and without If-Match)', async () => {
    const put = await req(base, 'PUT', '/v1/kv/patched', { body: { a: 1 } });
    for (const headers of [{}, { 'if-match': put.headers.get('etag') as string }]) {
      const r = await req(base, 'PATCH', '/v1/kv/patched', { raw: '{"b":{"c":12345678901234567891}}', headers: { 'content-type': 'application/merge-patch+json', ...headers } });
      expectRefused(r, ['b', 'c'], '/b/c');
    }
    const get = await req(base, 'GET', '/v1/kv/patched');
    expect(get.text).toBe('{"a":1}');
    expect(get.headers.get('etag')).toBe(put.headers.get('etag'));
  });

  it('POST /v1/txn: a set value with such a number is refused naming its place in the body; no key is written', async () => {
    const body = '{"ops":[{"op":"set","key":"t/a","value":1},{"op":"set","key":"t/b","value":{"order":12345678901234567891}}]}';
    expectRefused(await req(base, 'POST', '/v1/txn', { raw: body, headers: { 'content-type': 'application/json' } }), ['ops', '1', 'value', 'order'], '/ops/1/value/order');
    expect((await req(base, 'GET', '/v1/kv/t/a')).status).toBe(404);
    expect((await req(base, 'GET', '/v1/kv/t/b')).status).toBe(404);
  });
});

// ---- CLI (dist/cli/main.js: build first)

describe('the CLI refuses such numbers in put and update values (exit 2, the path named, nothing written)', () => {
  vi.setConfig({ testTimeout: 120_000 });
  const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
  const store = `sqlite:${join(dir, `${uniqueName('cli')}.db`)}`;
  const revkit = (args: string[], input?: string) => {
    const run = spawnSync(process.execPath, [cli, '--store', store, ...args], { input: input ?? '', encoding: 'utf8' });
    return { code: run.status, out: run.stdout.trim(), err: run.stderr.trim() };
  };

  it('put k \'{"order":12345678901234567891}\' exits 2 naming /order; from standard input too', () => {
    const r = revkit(['put', 'k', '{"order":12345678901234567891}']);
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/^revkit: ERR_VALIDATION: invalid value: \/order: the number 12345678901234567891 cannot be stored exactly \(it would read back as 12345678901234567000/);
    expect(r.err.split('\n')).toHaveLength(1);
    expect(revkit(['put', 'k'], '[1e400]')).toMatchObject({ code: 2, err: expect.stringContaining('/0: the number 1e400') });
    expect(revkit(['get', 'k']).code).toBe(4);
    expect(revkit(['put', 'k', '{"n":1.0,"z":-0}']).code).toBe(0);
    expect(revkit(['get', 'k']).out).toBe('{"n":1,"z":0}');
  });

  it('update --set, --merge and --incr with such a number exit 2; the value is unchanged', () => {
    expect(revkit(['update', 'k', '--set', '{"order":12345678901234567891}'])).toMatchObject({ code: 2, err: expect.stringContaining('/order: the number') });
    expect(revkit(['update', 'k', '--merge', '{"a":{"b":1e400}}'])).toMatchObject({ code: 2, err: expect.stringContaining('/a/b: the number 1e400') });
    expect(revkit(['put', 'count', '1']).code).toBe(0);
    expect(revkit(['update', 'count', '--incr', '12345678901234567891'])).toMatchObject({ code: 2, err: expect.stringContaining('12345678901234567891 would be used as 12345678901234567000') });
    expect(revkit(['get', 'k']).out).toBe('{"n":1,"z":0}');
    expect(revkit(['get', 'count']).out).toBe('1');
    // A sum past 2^53 would round (x + 1 === x): refused, not stored rounded nor skipped as "no change".
    expect(revkit(['put', 'big', '9007199254740991']).code).toBe(0);
    expect(revkit(['update', 'big', '--incr'])).toMatchObject({ code: 2, err: expect.stringContaining('beyond the integers a JSON number holds exactly') });
    expect(revkit(['get', 'big']).out).toBe('9007199254740991');
  });

  it('update --incr with a leading + is checked the same way: +1e-400 and +0.12345678901234567891 exit 2; hex and binary are not numbers here', () => {
    expect(revkit(['put', 'plus', '5']).code).toBe(0);
    expect(revkit(['update', 'plus', '--incr=+1e-400'])).toMatchObject({ code: 2, err: expect.stringContaining('+1e-400 would be used as 0') });
    expect(revkit(['update', 'plus', '--incr=+0.12345678901234567891'])).toMatchObject({ code: 2, err: expect.stringContaining('would be used as 0.12345678901234568') });
    // The whole table of non-numbers is parseNumber's, checked in-process below; here, that the CLI uses it.
    for (const bad of ['0x10', ' 5']) {
      expect(revkit(['update', 'plus', `--incr=${bad}`]), bad).toMatchObject({ code: 2, err: expect.stringContaining('must be a number') });
    }
    expect(revkit(['get', 'plus']).out).toBe('5');
    expect(JSON.parse(revkit(['update', 'plus', '--incr=+2']).out).value).toBe(7);
    expect(JSON.parse(revkit(['update', 'plus', '--incr=-0.5']).out).value).toBe(6.5);
  });
});

describe('parseNumber (the CLI\'s --incr): a JSON number literal, a leading + allowed, read back exactly', () => {
  const refused = (text: string) => {
    try {
      parseNumber(text);
    } catch (err) {
      return (err as Error).message;
    }
    return `accepted as ${String(parseNumber(text))}`;
  };
  it('accepts what a JSON value would write, with or without +', () => {
    for (const [text, n] of [['1', 1], ['+1', 1], ['-2.5', -2.5], ['+2.5', 2.5], ['1e3', 1000], ['+1E+3', 1000], ['0', 0], ['-0', -0], ['0.1', 0.1], ['1.0', 1]] as const) {
      expect(parseNumber(text), text).toBe(n);
    }
  });
  it('refuses a signed literal a double cannot hold as written, as it refuses the unsigned one', () => {
    for (const text of ['1e-400', '+1e-400', '1e400', '+1e400', '0.12345678901234567891', '+0.12345678901234567891', '12345678901234567891', '+12345678901234567891']) {
      expect(refused(text), text).toMatch(/must be a number a double holds exactly/);
    }
  });
  it('refuses what is not a JSON number: hex, binary, octal, Infinity, blanks, a bare dot, leading zeros, a double sign', () => {
    for (const text of ['0x10', '+0x10', '0b101', '0o7', 'Infinity', '+Infinity', 'NaN', '', ' 5', '5 ', '.5', '1.', '01', '+-1', '++1', '1_000', 'x']) {
      expect(refused(text), JSON.stringify(text)).toMatch(/must be a number, written as a JSON number/);
    }
  });
});
