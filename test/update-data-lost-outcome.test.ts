// A caller whose write may have landed (its acknowledgement was lost) and whose update() then meets a
// store that lost acknowledged writes is told OutcomeUnknownError with the DataLostError as its cause
// (DESIGN §4.7) — not a plain DataLostError, which a caller takes for "not applied" and writes again:
// the PostgreSQL soak with the postmaster killed first stored 6 increments that way (docs/replication-postgres.md).
// A caller with no write under way still gets the DataLostError itself.
import { describe, expect, it } from 'vitest';
import { BackendError, DataLostError, OutcomeUnknownError, lossIn, type Entry, type PutOptions, type StoredRecord } from '../src/core/index.js';
import { errorFromProblem } from '../src/http/problems.js';
import { MemoryStore } from '../src/memory/index.js';
import { req, startServer } from './server-helpers.js';

/** Lands the first put, loses its acknowledgement, and from then on answers every call with DataLostError. */
class LosingAfterLostAck extends MemoryStore {
  private losing = false;
  private puts = 0;
  private lost(): DataLostError {
    return new DataLostError('test: the store lost acknowledged writes', { store: 'memory', after: 1, upTo: 2 });
  }
  override async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    if (this.losing) throw this.lost();
    return super.getRecord<T>(key);
  }
  override async put<T = unknown>(key: string, value: T, options?: PutOptions): Promise<Entry<T>> {
    if (this.losing) throw this.lost();
    const entry = await super.put<T>(key, value, options);
    if (++this.puts === 2) { // the first put seeds the key; the second is the update's write
      this.losing = true;
      throw new BackendError('test: the acknowledgement was lost', { transient: true, ambiguous: true });
    }
    return entry;
  }
  override async history<T = unknown>(key: string): Promise<StoredRecord<T>[]> {
    if (this.losing) throw this.lost();
    return super.history<T>(key);
  }
  stopLosing(): void {
    this.losing = false;
  }
}

describe('update(): a loss reported after the caller\'s own write may have landed', () => {
  it('is OutcomeUnknownError whose cause is the DataLostError; the write had landed', async () => {
    const store = new LosingAfterLostAck();
    await store.put('n', 0);
    const err = await store.update<number>('n', (n) => (n ?? 0) + 1, { deadlineMs: 2_000 }).catch((e: unknown) => e);
    expect(OutcomeUnknownError.is(err)).toBe(true);
    expect(DataLostError.is((err as OutcomeUnknownError).cause)).toBe(true);
    store.stopLosing();
    expect((await store.get('n'))?.value).toBe(1);
    await store.close();
  });

  it('a caller with no write under way gets the DataLostError itself', async () => {
    const store = new LosingAfterLostAck();
    await store.put('n', 0);
    await store.update<number>('n', (n) => (n ?? 0) + 1, { deadlineMs: 2_000 }).catch(() => undefined);
    const err = await store.update<number>('n', (n) => (n ?? 0) + 1, { deadlineMs: 2_000 }).catch((e: unknown) => e);
    expect(DataLostError.is(err)).toBe(true);
    await store.close();
  });
});

describe('checkpoints: advance() over such an update()', () => {
  it('does not retry the loss away: the caller hears it, as the cause of OutcomeUnknownError (review of 0b9afa5)', async () => {
    const { checkpoints, resumeKey } = await import('../src/checkpoints/index.js');
    /** The second put lands and loses its acknowledgement; the next store call reports a loss, once (as Redis does). */
    class LosingOnce extends MemoryStore {
      private puts = 0;
      private owed = 0;
      private report(): void {
        if (this.owed > 0) {
          this.owed--;
          throw new DataLostError('test: the store lost acknowledged writes', { store: 'memory', after: 1, upTo: 2 });
        }
      }
      override async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
        this.report();
        return super.getRecord<T>(key);
      }
      override async history<T = unknown>(key: string): Promise<StoredRecord<T>[]> {
        this.report();
        return super.history<T>(key);
      }
      override async put<T = unknown>(key: string, value: T, options?: PutOptions): Promise<Entry<T>> {
        this.report();
        const entry = await super.put<T>(key, value, options);
        if (++this.puts === 2) {
          this.owed = 1;
          throw new BackendError('test: the acknowledgement was lost', { transient: true, ambiguous: true });
        }
        return entry;
      }
    }
    const store = new LosingOnce();
    const c = checkpoints(store, { prefix: 'cp/', deadlineMs: 2_000 });
    const key = resumeKey('sub');
    await c.advance(key, { sequence: 1 });
    const err = await c.advance(key, { sequence: 2 }).catch((e: unknown) => e);
    expect(OutcomeUnknownError.is(err) && DataLostError.is((err as OutcomeUnknownError).cause)).toBe(true);
    await store.close();
  });
});

describe('lossIn(): the loss an error reports, itself or as a cause', () => {
  it('finds it as the error, as its cause, or not at all', () => {
    const loss = new DataLostError('lost', { store: 'memory', after: 1, upTo: 2 });
    expect(lossIn(loss)).toBe(loss);
    expect(lossIn(new OutcomeUnknownError('k', undefined, { cause: loss }))).toBe(loss);
    expect(lossIn(new OutcomeUnknownError('k'))).toBeUndefined();
    expect(lossIn(new BackendError('down', { transient: true }))).toBeUndefined();
    expect(lossIn('not an error')).toBeUndefined();
    expect(lossIn(undefined)).toBeUndefined();
  });
});

describe('revkit serve: a PATCH (the server-side update loop) told of a loss after its write may have landed', () => {
  it('answers 503 ERR_OUTCOME_UNKNOWN carrying the loss, and a client rebuilds it as the cause (review of 0b9afa5, D2)', async () => {
    const store = new LosingAfterLostAck();
    await store.put('n', { count: 0 });
    const { server, url } = await startServer({ store });
    try {
      const res = await req(url, 'PATCH', '/v1/kv/n', { raw: JSON.stringify({ count: 1 }), headers: { 'content-type': 'application/merge-patch+json' } });
      expect(res.status).toBe(503);
      expect(res.json).toMatchObject({ code: 'ERR_OUTCOME_UNKNOWN', key: 'n', dataLost: { detail: 'test: the store lost acknowledged writes', details: { store: 'memory', after: 1, upTo: 2 } } });
      const err = errorFromProblem(res.status, res.json, 'n', { write: true, server: url });
      expect(OutcomeUnknownError.is(err)).toBe(true);
      const loss = lossIn(err);
      expect(DataLostError.is(loss)).toBe(true);
      expect(loss?.details).toMatchObject({ store: 'memory', after: 1, upTo: 2 });
      store.stopLosing();
      expect((await store.get('n'))?.value).toEqual({ count: 1 });
    } finally {
      await server.close();
    }
  });
});
