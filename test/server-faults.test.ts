import { afterEach, describe, expect, it } from 'vitest';
import { BackendError, OutcomeUnknownError, type Entry, type PutOptions } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { HttpStore, type RevkitServer } from '../src/server/index.js';
import { FaultStore } from '../src/testing/fault-store.js';
import { ADMIN, startServer } from './server-helpers.js';

// Issue 10 #4: over HTTP the "may have committed" signal of a lost acknowledgement must reach the client.

let server: RevkitServer | undefined;
let client: HttpStore | undefined;
afterEach(async () => {
  await client?.close();
  await server?.close();
  client = server = undefined;
});

async function serve(store: FaultStore): Promise<HttpStore> {
  const started = await startServer({ store, closeStore: true });
  server = started.server;
  client = new HttpStore({ url: started.url, token: ADMIN });
  return client;
}

describe('HTTP: a lost acknowledgement stays ambiguous from store to client', () => {
  it('HttpStore.update() over a lost ack increments exactly once, and history shows one revision with its writer token', async () => {
    const faults = new FaultStore(new MemoryStore()).inject({ kind: 'lost-ack', op: 'put', key: 'n' });
    const http = await serve(faults);
    const entry = await http.update<number>('n', (n) => (n ?? 0) + 1);
    expect(faults.injected).toHaveLength(1);
    expect(entry?.value).toBe(1);
    expect((await http.get('n'))?.value).toBe(1);
    const history = await http.history('n');
    expect(history).toHaveLength(1);
    expect(typeof history[0]?.writer).toBe('string');
    expect(entry?.writer).toBe(history[0]?.writer);
  });

  it('a put whose acknowledgement was lost reaches the client as an ambiguous, transient BackendError', async () => {
    const http = await serve(new FaultStore(new MemoryStore()).inject({ kind: 'lost-ack', op: 'put', key: 'k' }));
    const err = await http.put('k', 1, { writer: 'w_1' }).catch((e: unknown) => e);
    expect(BackendError.is(err)).toBe(true);
    expect((err as BackendError).ambiguous).toBe(true);
    expect((err as BackendError).transient).toBe(true);
    const stored = await http.getRecord('k');
    expect(stored?.writer).toBe('w_1'); // the token travelled to the store
  });

  it('a failure before the write stays non-ambiguous', async () => {
    const http = await serve(new FaultStore(new MemoryStore()).inject({ kind: 'fail-before', op: 'put', key: 'k' }));
    const err = await http.put('k', 1).catch((e: unknown) => e);
    expect(BackendError.is(err)).toBe(true);
    expect((err as BackendError).ambiguous).toBe(false);
    expect((err as BackendError).transient).toBe(true);
  });

  it('ERR_OUTCOME_UNKNOWN crosses HTTP as OutcomeUnknownError with its key', async () => {
    class UnknownOutcome extends FaultStore {
      protected override doPut<T>(key: string, _value: T, _options: PutOptions): Promise<Entry<T>> {
        return Promise.reject(new OutcomeUnknownError(key));
      }
    }
    const http = await serve(new UnknownOutcome(new MemoryStore()));
    const err = await http.put('deep/k', 1).catch((e: unknown) => e);
    expect(OutcomeUnknownError.is(err)).toBe(true);
    expect((err as OutcomeUnknownError).key).toBe('deep/k');
  });
});
