// Where a reported loss (DataLostError) must reach the caller even when it arrives as the cause of another
// error — on Redis a process is told of a loss once, so the one call that hears it may be the only report.
// Review of 9b2ca69 (lossIn, the server's dataLost): every case below failed on 9b2ca69; the review of 4119cfe
// added the last describe block, whose cases fail on 4119cfe.
import vm from 'node:vm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { checkpoints, follow, resumeKey } from '../src/checkpoints/index.js';
import { exitCodeFor, main } from '../src/cli/main.js';
import {
  AbortedError, BackendError, DataLostError, LockLostError, OutcomeUnknownError, lossIn, type Entry, type PutOptions, type StoredRecord,
} from '../src/core/index.js';
import { errorFromProblem } from '../src/http/problems.js';
import { openSession } from '../src/lock/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { createServer } from '../src/server/index.js';

const lost = () => new DataLostError('test: the store lost acknowledged writes', { store: 'memory', after: 1, upTo: 2 });

/** Lands put number `ambiguousPut`, loses its acknowledgement, then reports a loss to the next `reports` calls. */
class Losing extends MemoryStore {
  private puts = 0;
  owed = 0;
  constructor(private readonly ambiguousPut: number, private readonly reports = Infinity) {
    super();
  }
  private report(): void {
    if (this.owed > 0) {
      this.owed--;
      throw lost();
    }
  }
  override async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    this.report();
    return super.getRecord<T>(key);
  }
  override async get<T = unknown>(key: string): Promise<Entry<T> | null> {
    this.report();
    return super.get<T>(key);
  }
  override async put<T = unknown>(key: string, value: T, options?: PutOptions): Promise<Entry<T>> {
    this.report();
    const entry = await super.put<T>(key, value, options);
    if (++this.puts === this.ambiguousPut) {
      this.owed = this.reports;
      throw new BackendError('test: the acknowledgement was lost', { transient: true, ambiguous: true });
    }
    return entry;
  }
}

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});

describe('lossIn() finds a loss wherever an error carries it, and never throws', () => {
  it('an error of another copy of revkit (matched by code, as is() does), also as a cause', () => {
    const plain = { code: 'ERR_DATA_LOST', message: 'lost', details: { store: 'x' } };
    expect(lossIn(plain)).toBe(plain);
    expect(lossIn(new OutcomeUnknownError('k', undefined, { cause: plain }))).toBe(plain);
    const foreign = vm.runInNewContext(`const e = new Error('lost elsewhere'); e.code = 'ERR_DATA_LOST'; e.details = { store: 'x' }; e`);
    expect(lossIn(foreign)).toBe(foreign);
    const foreignOutcome = vm.runInNewContext(`(c) => { const e = new Error('outcome', { cause: c }); e.code = 'ERR_OUTCOME_UNKNOWN'; return e; }`)(foreign);
    expect(lossIn(foreignOutcome)).toBe(foreign);
  });

  it('among the errors of an AggregateError, and deep in a cause chain', () => {
    const loss = lost();
    expect(lossIn(new OutcomeUnknownError('k', undefined, { cause: new AggregateError([new BackendError('down', { transient: true }), loss]) }))).toBe(loss);
    let deep: unknown = loss;
    for (let i = 0; i < 12; i++) deep = new Error(`wrap ${i}`, { cause: deep });
    expect(lossIn(deep)).toBe(loss);
  });

  it('a cyclic chain, a throwing cause getter, a revoked proxy: undefined, not a hang or a TypeError', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(lossIn(a)).toBeUndefined();
    const getter = new Error('g');
    Object.defineProperty(getter, 'cause', { get() { throw new TypeError('boom'); } });
    expect(lossIn(getter)).toBeUndefined();
    const { proxy, revoke } = Proxy.revocable(new Error('p'), {});
    revoke();
    expect(lossIn(proxy)).toBeUndefined();
  });
});

describe('a malformed dataLost from a server is bounded and still reported', () => {
  const outcome = (dataLost: unknown) => errorFromProblem(503, { code: 'ERR_OUTCOME_UNKNOWN', key: 'k', detail: 'unknown', dataLost }, 'k');
  it('not an object: a loss with default details, not none', () => {
    for (const odd of ['lost!', 42, true, ['x']]) {
      const err = outcome(odd);
      expect(OutcomeUnknownError.is(err)).toBe(true);
      expect(DataLostError.is(lossIn(err)), JSON.stringify(odd)).toBe(true);
    }
    expect(lossIn(outcome(undefined))).toBeUndefined();
    expect(lossIn(outcome(null))).toBeUndefined();
  });
  it('revisions that are not safe integers are dropped; the detail and the ranges are capped', () => {
    const err = outcome({ detail: 'x'.repeat(2_000_000), details: { after: 1e400, upTo: -3, ranges: Array.from({ length: 200_000 }, (_, i) => ({ after: i, upTo: i + 1 })) } });
    const loss = lossIn(err)!;
    expect(loss.details.after).toBeUndefined();
    expect(loss.details.upTo).toBeUndefined();
    expect(loss.message.length).toBeLessThan(3_000);
    expect(loss.details.ranges!.length).toBeLessThanOrEqual(1_000);
  });

  it('the OutcomeUnknownError\'s own detail is capped too, and an inverted range is dropped (left by the review of 4119cfe)', () => {
    const err = errorFromProblem(503, { code: 'ERR_OUTCOME_UNKNOWN', key: 'k', detail: 'y'.repeat(2_000_000), dataLost: { details: { ranges: [{ after: 9, upTo: 3 }, { after: 3, upTo: 9 }] } } }, 'k');
    expect(OutcomeUnknownError.is(err)).toBe(true);
    expect(err.message.length).toBeLessThan(3_000);
    expect(lossIn(err)!.details.ranges).toEqual([{ after: 3, upTo: 9 }]);
  });
});

describe('checkpoints.advanceIfUnmoved(): its write may have landed, then the store reports a loss', () => {
  it('is OutcomeUnknownError with the loss as cause, not a plain DataLostError (which says nothing was done)', async () => {
    const store = new Losing(1);
    closers.push(() => store.close());
    const c = checkpoints(store, { prefix: 'cp/', deadlineMs: 2_000 });
    const key = resumeKey('loss-reports');
    const err = await c.advanceIfUnmoved(key, { sequence: 5 }, null).catch((e: unknown) => e);
    expect(OutcomeUnknownError.is(err)).toBe(true);
    expect(DataLostError.is(lossIn(err))).toBe(true);
    store.owed = 0;
    expect((await store.get(`cp/${key}`))?.value).toMatchObject({ sequence: 5 });
  });
});

describe('a lock session whose keepalive meets the one report of a loss', () => {
  it('is lost, with the loss as the cause of every lock\'s LockLostError — not swallowed', async () => {
    const store = new Losing(Infinity, 1);
    closers.push(() => store.close());
    const session = await openSession(store, { ttlMs: 3_000, keepaliveMs: 50 });
    closers.push(() => session.close());
    const lock = await session.lock('job');
    store.owed = 1; // the store detected a loss; it tells this process once
    const lockLost = new Promise<unknown>((resolve) => lock.signal.addEventListener('abort', () => resolve(lock.signal.reason), { once: true }));
    const reason = await lockLost;
    expect(LockLostError.is(reason)).toBe(true);
    expect(DataLostError.is(lossIn(reason))).toBe(true);
    expect(DataLostError.is(lossIn(session.signal.reason))).toBe(true);
  });
});

describe('the CLI: the one line names a loss carried as the cause', () => {
  it('revkit update through revkit serve: ERR_OUTCOME_UNKNOWN and the loss, with what to do', async () => {
    const token = 'admin-token-0123456789abcdef-loss';
    const store = new Losing(2);
    await store.put('n', 0);
    const server = await createServer({ store, adminToken: token });
    closers.push(() => server.close());
    const url = await server.listen({ host: '127.0.0.1', port: 0 });
    let stderr = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
    const code = await main(['node', 'revkit', '--server', url, '--token', token, 'update', 'n', '--incr', '1']);
    vi.restoreAllMocks();
    expect(code).not.toBe(0);
    expect(stderr).toContain('ERR_OUTCOME_UNKNOWN');
    expect(stderr).toContain('the store reported a loss');
    expect(stderr).toContain('revkit accept-loss');
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('review of 4119cfe', () => {
  it('follow() stopped by its caller while a cursor write that may have landed backs off: resolves, as documented (a regression of 4119cfe)', async () => {
    const stop = new AbortController();
    class CursorAckLost extends MemoryStore {
      private cursorPuts = 0;
      override async put<T = unknown>(key: string, value: T, options?: PutOptions): Promise<Entry<T>> {
        if (!key.startsWith('cp/')) return super.put<T>(key, value, options);
        if (++this.cursorPuts === 1) {
          await super.put<T>(key, value, options);
          stop.abort(); // the caller stops while the write's outcome is unknown
          throw new BackendError('test: the acknowledgement was lost', { transient: true, ambiguous: true });
        }
        throw new BackendError('test: down', { transient: true });
      }
    }
    const store = new CursorAckLost();
    closers.push(() => store.close());
    await store.put('data/a', 1);
    const cp = checkpoints(store, { prefix: 'cp/' });
    const outcome = await follow(store, { prefix: 'data/', checkpoint: { checkpoints: cp, key: resumeKey('follow-stop') } }, async () => undefined, { signal: stop.signal })
      .then(() => 'resolved', (e: unknown) => `rejected ${(e as { code?: string }).code}`);
    expect(outcome).toBe('resolved');
  });

  it('advanceIfUnmoved() with a signal aborted before it starts writes nothing: AbortedError', async () => {
    const store = new MemoryStore();
    closers.push(() => store.close());
    const c = checkpoints(store, { prefix: 'cp/' });
    const key = resumeKey('aborted-first');
    const err = await c.advanceIfUnmoved(key, { sequence: 1 }, null, { signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect(AbortedError.is(err)).toBe(true);
    expect(await store.get(`cp/${key}`)).toBeNull();
  });

  it('lossIn(): a throwing cause getter does not hide the errors beside it; a loss far down a wide AggregateError is found', () => {
    const loss = lost();
    const odd = new AggregateError([loss], 'many');
    Object.defineProperty(odd, 'cause', { get() { throw new TypeError('boom'); } });
    expect(lossIn(odd)).toBe(loss);
    const wide = new AggregateError([...Array.from({ length: 20 }, () => new Error('other')), loss]);
    expect(lossIn(wide)).toBe(loss);
  });

  it('the CLI names a loss under a plain Error (revkit lock: the session lost while waiting), and a loss whose message throws still gives one line', () => {
    const session = new LockLostError('lock "s" lost: the store reported a loss', { name: 's', key: 'locks/s', fence: 1 }, { cause: lost() });
    const line = exitCodeFor(new Error('could not keep a session in the store while waiting for the lock "j"', { cause: session })).message;
    expect(line).toContain('the store reported a loss: test: the store lost acknowledged writes');
    expect(line).toContain('revkit accept-loss');
    const hostile = lost();
    Object.defineProperty(hostile, 'message', { get() { throw new Error('getter'); } });
    const out = exitCodeFor(new OutcomeUnknownError('k', undefined, { cause: hostile }));
    expect(out.message).toContain('ERR_OUTCOME_UNKNOWN');
    expect(out.message).toContain('the store reported a loss');
  });
});
