import { afterEach, describe, expect, it } from 'vitest';
import { ClosedError, OutcomeUnknownError, type Entry, type PutOptions, type StoredRecord, type WatchEvent } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { checkpoints, follow, resumeKey } from '../src/checkpoints/index.js';
import { HttpStore, type RevkitServer } from '../src/server/index.js';
import { ADMIN, startServer } from './server-helpers.js';

// HttpStore.close() ends every watch (a pending next() resolves done, as on memory and SQLite)
// and settles every call in flight (ClosedError; a write carries ambiguous: true, since it
// may have reached the server). follow() over HTTP ends with it.

interface Gate {
  entered: Promise<void>;
  release(): void;
}

function gate(): Gate & { enter(): Promise<void> } {
  let entered!: () => void;
  let release!: () => void;
  const enteredP = new Promise<void>((r) => (entered = r));
  const released = new Promise<void>((r) => (release = r));
  return {
    entered: enteredP,
    release,
    enter: () => {
      entered();
      return released;
    },
  };
}

/** A memory store whose put and read of the key `held` wait on a gate: a request the server is still handling. */
class HeldStore extends MemoryStore {
  putGate = gate();
  readGate = gate();
  protected override async doPut<T>(key: string, value: T, options: PutOptions): Promise<Entry<T>> {
    if (key === 'held') await this.putGate.enter();
    return super.doPut(key, value, options);
  }
  override async getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null> {
    if (key === 'held-read') await this.readGate.enter();
    return super.getRecord<T>(key);
  }
}

let server: RevkitServer | undefined;
let held: HeldStore | undefined;
afterEach(async () => {
  held?.putGate.release();
  held?.readGate.release();
  await server?.close();
  server = held = undefined;
});

async function serve(): Promise<{ client: HttpStore }> {
  held = new HeldStore();
  const started = await startServer({ store: held, closeStore: true });
  server = started.server;
  return { client: new HttpStore({ url: started.url, token: ADMIN }) };
}

/** Waits until the watch delivers the write it makes: then its stream is connected and running. */
async function running(client: HttpStore, it: AsyncIterator<WatchEvent>, key: string): Promise<void> {
  await client.put(key, 'ping');
  for (;;) {
    const r = await it.next();
    if (r.done) throw new Error('the watch ended before it ran');
    if (r.value.key === key) return;
  }
}

describe('HttpStore.close()', () => {
  it('ends a running watch: a pending next() resolves done, and later next() calls too', async () => {
    const { client } = await serve();
    const it = client.watch({ prefix: 'w/' })[Symbol.asyncIterator]();
    await running(client, it, 'w/ping');
    const pending = it.next();
    await client.close();
    await expect(pending).resolves.toEqual({ done: true, value: undefined });
    await expect(it.next()).resolves.toEqual({ done: true, value: undefined });
  }, 10_000);

  it('ends a for-await loop over a watch that is waiting for its first event (and one reconnecting)', async () => {
    const { client } = await serve();
    const loops = [0, 1].map(() => (async () => {
      const seen: WatchEvent[] = [];
      for await (const ev of client.watch({ key: 'nothing-ever' })) seen.push(ev);
      return seen;
    })());
    await client.close();
    await expect(Promise.all(loops)).resolves.toEqual([[], []]);
  }, 10_000);

  it('settles a put in flight with ClosedError { ambiguous: true } (it may have reached the server), and a read with ambiguous: false', async () => {
    const { client } = await serve();
    const store = held as HeldStore;
    const put = client.put('held', 1, { writer: 'w_inflight' }).then(() => 'resolved', (e: unknown) => e);
    const read = client.get('held-read').then(() => 'resolved', (e: unknown) => e);
    await store.putGate.entered; // the server is inside the put
    await store.readGate.entered;
    await client.close();
    const [putErr, readErr] = await Promise.all([put, read]);
    expect(ClosedError.is(putErr), String(putErr)).toBe(true);
    expect((putErr as ClosedError).ambiguous).toBe(true);
    expect(ClosedError.is(readErr), String(readErr)).toBe(true);
    expect((readErr as ClosedError).ambiguous).toBe(false);
    // It had reached the server: once the server goes on, it commits — hence ambiguous.
    store.putGate.release();
    while ((await store.getRecord('held')) === null) await new Promise((r) => setImmediate(r));
    expect(await store.getRecord('held')).toMatchObject({ value: 1, writer: 'w_inflight' });
  }, 10_000);

  for (const combine of [true, false]) {
    it(`settles an update() (combine: ${combine}) whose write is in flight: OutcomeUnknownError (the write may commit), caused by the ambiguous ClosedError; later calls fail with ClosedError at once`, async () => {
      const { client } = await serve();
      const store = held as HeldStore;
      const updating = client.update<number>('held', (n) => (n ?? 0) + 1, { combine }).then(() => 'resolved', (e: unknown) => e);
      await store.putGate.entered;
      await client.close();
      const err = await updating;
      expect(OutcomeUnknownError.is(err), String(err)).toBe(true);
      expect((err as OutcomeUnknownError).key).toBe('held');
      let cause = (err as Error).cause;
      while (cause !== undefined && !ClosedError.is(cause)) cause = (cause as Error).cause;
      expect(ClosedError.is(cause) && (cause as ClosedError).ambiguous).toBe(true);
      expect(ClosedError.is(await client.get('x').catch((e: unknown) => e))).toBe(true);
    }, 10_000);
  }

  it('ends follow() over HTTP', async () => {
    const { client } = await serve();
    const cps = checkpoints(client, { prefix: 'cp/' });
    const key = resumeKey({ consumer: 'close-test' });
    const handled: string[] = [];
    let first!: () => void;
    const firstHandled = new Promise<void>((r) => (first = r));
    const following = follow(client, { prefix: 'jobs/', checkpoint: { checkpoints: cps, key } }, (ev) => {
      handled.push(ev.key);
      first();
    }).then(() => 'resolved', (e: unknown) => e);
    await client.put('jobs/1', 1);
    await firstHandled;
    // The cursor of jobs/1 is written: follow() now waits on its watch.
    for (;;) {
      const cursor = await cps.get(key);
      if (cursor !== null) break;
      await new Promise((r) => setImmediate(r));
    }
    await client.close();
    const outcome = await following;
    expect(outcome === 'resolved' || ClosedError.is(outcome), String(outcome)).toBe(true);
    expect(handled).toEqual(['jobs/1']);
  }, 10_000);
});
