/**
 * What HttpStore makes of a server's problem bodies that are huge, malformed or contradictory (a broken proxy,
 * another version, a hostile server): always a RevkitError of the body's code, of a readable size, holding no
 * field of the wrong shape. Each case is from the review of 2026-12-06 and fails on 2780fdc, where a 1 MB key,
 * operation, issue or scope went into the message whole, a check or issue of `null` threw a plain TypeError, a
 * cut fell between the halves of a surrogate pair, and inverted loss ranges were kept (or hid a real one).
 * A real revkit server's own problem detail is bounded too.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, DataLostError, RevkitError, ValidationError, lossIn } from '../src/core/index.js';
import { HttpStore } from '../src/http/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { createServer } from '../src/server/index.js';

const BIG = 'x'.repeat(1_000_000);
let answer: { status: number; body: unknown } = { status: 500, body: {} };
const fake = http.createServer((req, res) => {
  req.resume();
  res.writeHead(answer.status, { 'content-type': 'application/problem+json' });
  res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body));
});
let store: HttpStore;
beforeAll(async () => {
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  store = new HttpStore({ url: `http://127.0.0.1:${(fake.address() as AddressInfo).port}`, probeIntervalMs: 60_000 });
});
afterAll(async () => {
  await store.close();
  await new Promise((resolve) => fake.close(resolve));
});

async function errorFor(status: number, body: unknown): Promise<RevkitError> {
  answer = { status, body };
  const err = await store.get('k').then(() => 'no error', (e: unknown) => e);
  expect(RevkitError.is(err), String(err)).toBe(true);
  return err as RevkitError;
}
const size = (err: unknown) => JSON.stringify(err).length + (err as Error).message.length;

describe('HttpStore: a server\'s problem bodies', () => {
  it.each([
    ['a 1 MB detail', 400, { code: 'ERR_INVALID_ARGUMENT', detail: BIG }],
    ['a 1 MB unknown code', 500, { code: `E${BIG}`, detail: 'short' }],
    ['a 1 MB detail of a store failure', 500, { code: 'ERR_INTERNAL', detail: BIG }],
    ['a 1 MB operation', 501, { code: 'ERR_UNSUPPORTED', detail: 'd', operation: BIG, backend: 'b' }],
    ['a 1 MB key', 503, { code: 'ERR_RETRY_EXHAUSTED', detail: 'd', key: BIG, attempts: 3 }],
    ['a 1 MB issue', 422, { code: 'ERR_VALIDATION', detail: 'd', issues: [{ message: BIG, path: [BIG] }] }],
    ['a 1 MB checked key', 412, { code: 'ERR_CONFLICT', detail: 'd', checks: [{ key: BIG, expected: 1, actual: 2 }, { key: 'b', expected: 1, actual: 2 }] }],
    ['a 1 MB scope', 403, { code: 'ERR_FORBIDDEN', detail: 'd', scope: BIG }],
    ['a 1 MB key of an unknown outcome', 503, { code: 'ERR_OUTCOME_UNKNOWN', detail: 'd', key: BIG }],
    ['100,000 failed checks', 409, { code: 'ERR_CONFLICT', detail: 'd', checks: Array.from({ length: 100_000 }, (_, i) => ({ key: `k${i}`, expected: 1, actual: 2 })) }],
  ])('%s: a typed error of a bounded size', async (_name, status, body) => {
    const err = await errorFor(status, body);
    expect(err.message.length).toBeLessThanOrEqual(2_500);
    expect(size(err)).toBeLessThan(100_000);
  });

  it('a field nested 5,000 deep is no RangeError (review of e32e9d3): only a string is taken for a name', async () => {
    const deep = `${'['.repeat(5_000)}"x"${']'.repeat(5_000)}`;
    const err = await errorFor(501, `{"code":"ERR_UNSUPPORTED","detail":"d","operation":${deep},"backend":${deep}}`);
    expect(err.code).toBe('ERR_UNSUPPORTED');
  });

  it('1,000 issues of long messages and paths stay small; numbers of the wrong shape are left out', async () => {
    const issues = Array.from({ length: 1_000 }, () => ({ message: 'm'.repeat(2_000), path: Array.from({ length: 64 }, () => 'p'.repeat(200)) }));
    expect(size(await errorFor(422, { code: 'ERR_VALIDATION', detail: 'd', issues }))).toBeLessThan(500_000);
    const gone = await errorFor(410, { code: 'ERR_HISTORY_GONE', detail: 'd', fromRevision: -5.5, oldestRevision: 1e300 });
    expect(gone).toMatchObject({ fromRevision: 0, oldestRevision: 0 });
  });

  it('a loss whose hull is missing or inverted gets the hull of its ranges', async () => {
    const err = await errorFor(503, { code: 'ERR_DATA_LOST', detail: 'lost', details: { after: 9, upTo: 3, ranges: [{ after: 4, upTo: 6 }, { after: 10, upTo: 12 }] } });
    expect((err as DataLostError).details).toMatchObject({ after: 4, upTo: 12, ranges: [{ after: 4, upTo: 6 }, { after: 10, upTo: 12 }] });
  });

  it('a cut never falls between the two halves of a surrogate pair', async () => {
    const detail = `${'a'.repeat(1_999)}\u{1F600}tail`;
    expect((await errorFor(400, { code: 'ERR_INVALID_ARGUMENT', detail })).message.isWellFormed()).toBe(true);
    expect((await errorFor(503, { code: 'ERR_DATA_LOST', detail, details: {} })).message.isWellFormed()).toBe(true);
  });

  it('checks and issues of the wrong shape are left out, not thrown over', async () => {
    const conflict = await errorFor(412, { code: 'ERR_CONFLICT', detail: 'd', checks: [null, 7, { key: 'a', expected: 1, actual: 2 }] });
    expect(ConflictError.is(conflict)).toBe(true);
    expect((conflict as ConflictError).checks).toEqual([{ key: 'a', expected: 1, actual: 2 }]);
    const none = await errorFor(412, { code: 'ERR_CONFLICT', detail: 'd', checks: [], key: 'k', expected: 3, actual: 4 });
    expect((none as ConflictError).checks).toEqual([{ key: 'k', expected: 3, actual: 4 }]);
    const invalid = await errorFor(422, { code: 'ERR_VALIDATION', detail: 'the value is wrong', issues: [null] });
    expect(ValidationError.is(invalid)).toBe(true);
    expect((invalid as ValidationError).issues).toEqual([{ message: 'the value is wrong' }]);
  });

  it('an empty or inverted loss range is no range: never kept, never hiding a real one', async () => {
    const inverted = await errorFor(503, { code: 'ERR_DATA_LOST', detail: 'lost', details: { after: 9, upTo: 3 } });
    expect(DataLostError.is(inverted)).toBe(true);
    expect((inverted as DataLostError).details).not.toHaveProperty('after');
    expect((inverted as DataLostError).details).not.toHaveProperty('upTo');
    const onlyInverted = await errorFor(503, { code: 'ERR_DATA_LOST', detail: 'lost', details: { after: 3, upTo: 9, ranges: [{ after: 9, upTo: 3 }] } });
    expect((onlyInverted as DataLostError).details).toMatchObject({ after: 3, upTo: 9 });
    expect((onlyInverted as DataLostError).details).not.toHaveProperty('ranges');
    const ranges = [...Array.from({ length: 1_000 }, () => ({ after: 5, upTo: 5 })), { after: 7, upTo: 8 }];
    const hidden = await errorFor(503, { code: 'ERR_OUTCOME_UNKNOWN', key: 'k', detail: 'd', dataLost: { details: { after: 5, upTo: 8, ranges } } });
    expect(lossIn(hidden)?.details.ranges).toEqual([{ after: 7, upTo: 8 }]);
  });

  it('replication(): a server\'s lost is bounded and an inverted range dropped', async () => {
    const info = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        backend: 'postgres', capabilities: { atomic: true, ttl: true, history: true, watch: true, crossProcess: true, durability: 'replicated' },
        replication: { serving: 'x', members: [], durability: 'replicated', note: 'n', failovers: 1, lost: { after: 9, upTo: 3, message: BIG } },
      }));
    });
    await new Promise<void>((resolve) => info.listen(0, '127.0.0.1', resolve));
    const client = new HttpStore({ url: `http://127.0.0.1:${(info.address() as AddressInfo).port}`, probeIntervalMs: 60_000 });
    try {
      const lost = (await client.replication()).lost;
      expect(lost?.message.length).toBeLessThanOrEqual(2_000);
      expect(lost).not.toHaveProperty('after');
      expect(lost).not.toHaveProperty('upTo');
    } finally {
      await client.close();
      await new Promise((resolve) => info.close(resolve));
    }
  });

  it('a real server bounds its own detail: a transaction of 500 failed checks on long keys', async () => {
    const backing = new MemoryStore();
    const server = await createServer({ store: backing });
    const base = String(await server.listen({ host: '127.0.0.1', port: 0 }));
    const keys = Array.from({ length: 500 }, (_, i) => `k${i}-${'x'.repeat(900)}`);
    try {
      const res = await fetch(`${base}/v1/txn`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ops: keys.map((key) => ({ op: 'check', key, revision: 7 })) }),
      });
      const problem = (await res.json()) as { code: string; detail: string; checks: unknown[] };
      expect(problem.code).toBe('ERR_CONFLICT');
      expect(problem.detail.length).toBeLessThanOrEqual(2_000);
      expect(problem.checks).toHaveLength(500); // every check is still there, as data
      const client = await HttpStore.fromUrl(base);
      let tx = client.atomic();
      for (const k of keys) tx = tx.check(k, 7);
      const err = await tx.commit().then(() => 'committed', (e: unknown) => e);
      expect(ConflictError.is(err)).toBe(true);
      expect((err as ConflictError).checks).toHaveLength(500);
      expect((err as Error).message.length).toBeLessThanOrEqual(2_500);
      await client.close();
    } finally {
      await server.close();
      await backing.close();
    }
  });
});
