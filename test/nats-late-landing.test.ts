/**
 * Issue 27.1 on NATS: a publish whose acknowledgement never came (the client
 * timed out) is applied by the server later — as a JetStream cluster does
 * when a leader change delays a proposal — after update() re-read the old
 * revision and published again. update() must recognise the late message by
 * its writer token, not apply its mutation a second time. Deterministic: a
 * protocol-aware proxy holds the publish and lets it through just before the
 * retry's publish.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { NatsStore } from '../src/nats/index.js';
import { NATS_PORT, natsBucketsThisFileMakes } from './support/nats-buckets.js';
import { startNatsHoldProxy } from './support/nats-hold-proxy.js';

const made = natsBucketsThisFileMakes();

describe('NATS: a publish applied after its client gave up on it', () => {
  for (const combine of [true, false]) {
    it(`update() (combine: ${combine}) applies its mutation once and answers with the message that landed`, async () => {
      const bucket = `late_${randomBytes(6).toString('hex')}`;
      made.push(bucket);
      const proxy = await startNatsHoldProxy(NATS_PORT);
      const store = await NatsStore.fromUrl(`nats://127.0.0.1:${proxy.port}?bucket=${bucket}&timeoutMs=1000`);
      try {
        await store.put('counter', 0);
        proxy.holdNextPublish(`$KV.${bucket}.`);
        const answer = await store.update<number>('counter', (n) => (n ?? 0) + 1, { combine, deadlineMs: 60_000 });
        expect(proxy.released, 'the held publish was never sent on').toBe(1);
        const history = await store.history<number>('counter');
        expect(history.map((r) => ('value' in r ? r.value : null)), 'the increment was applied twice').toEqual([1, 0]);
        expect(answer).toMatchObject({ value: 1, revision: history[0]?.revision });
      } finally {
        await store.close();
        await proxy.close();
      }
    }, 90_000);
  }
});
