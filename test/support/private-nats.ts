/**
 * A private nats-server for one test file (never the machine's), and the
 * NatsStores the file opens on it — closed, then the server stopped, when the
 * file is done:
 *
 *   const nats = privateNatsForThisFile();             // at the top of the file
 *   const store = await nats.open('bucket=b&history=2');
 */
import { afterAll, beforeAll } from 'vitest';
import { NatsStore } from '../../src/nats/index.js';
import { startPrivateNats, type PrivateServer } from './servers.js';

export interface PrivateNats {
  /** nats://127.0.0.1:<port> (set once the file's beforeAll ran). */
  readonly url: string;
  /** A NatsStore on it with `query` (bucket=…&history=…), closed when the file is done. */
  open(query: string): Promise<NatsStore>;
}

export function privateNatsForThisFile(): PrivateNats {
  let server: PrivateServer | undefined;
  const stores: NatsStore[] = [];
  beforeAll(async () => {
    server = await startPrivateNats();
  }, 60_000);
  afterAll(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
    await server?.stop();
  }, 60_000);
  const url = () => {
    if (!server) throw new Error('the private nats-server is not started: use it inside a test');
    return server.url;
  };
  return {
    get url() {
      return url();
    },
    async open(query) {
      const store = await NatsStore.fromUrl(`${url()}?${query}`);
      stores.push(store);
      return store;
    },
  };
}
