/**
 * update()'s own-write guess (core/own-writes.ts) must not use up the DataLostError a process is owed
 * (src/redis/lineage.ts: every process that saw revisions of a gap gets one of its own, even once the loss
 * was accepted). The second review of the guess found the guessed put meeting that error and dropping it
 * (neither a conflict nor ambiguous), the read after it passing: the caller told success on a store that
 * had lost its previous acknowledged update, the mutation run twice. Private cluster: primary, replica and
 * three Sentinels (test/support/clusters/redis.mjs; never the machine's redis on 6379).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DataLostError } from '../../src/core/index.js';
import { RedisStore } from '../../src/redis/index.js';
import { startRedisCluster } from '../support/clusters/redis.mjs';

const log = (line: string) => console.log(`[own-write loss] ${line}`);
const inc = (v: { n: number } | undefined) => ({ n: (v?.n ?? 0) + 1 });

describe('redis: the guessed write of update() meets the loss first', () => {
  const stores: RedisStore[] = [];
  let cluster: Awaited<ReturnType<typeof startRedisCluster>> | undefined;
  afterAll(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
    await cluster?.stop();
  }, 60_000);

  it('the caller is told DataLostError, and nothing of its mutation is written', async () => {
    cluster = await startRedisCluster({ replicas: 1, single: false });
    const opening = async (query: string) => {
      const s = await RedisStore.fromUrl(`${cluster?.url}?prefix=ownloss&sweepIntervalMs=0${query}`);
      stores.push(s);
      return s;
    };
    const [a, told, operator] = [await opening(''), await opening(''), await opening('&wait=1')];
    await operator.put('seed', 0);
    let acknowledged: { revision: number } | null = null;
    await cluster.failover({
      log,
      missWrites: async () => {
        acknowledged = await a.update('k', inc);
        await told.put('x', 1);
      },
    });
    log(`acknowledged to a's caller, then lost: revision ${acknowledged?.revision}`);
    expect(DataLostError.is(await told.put('y', 1).catch((e: unknown) => e))).toBe(true);
    await operator.acceptLoss();
    let calls = 0;
    const answer = await a.update('k', (v: { n: number } | undefined) => (calls++, inc(v))).catch((e: unknown) => e);
    expect(DataLostError.is(answer), `a.update after the loss: ${JSON.stringify(answer)}`).toBe(true);
    // Run at most on the guess; nothing of it written.
    expect(calls).toBeLessThanOrEqual(1);
    expect(await operator.get('k')).toBeNull();
    // Told once: then it goes on.
    expect((await a.update('k', inc))?.value).toEqual({ n: 1 });
  }, 180_000);
});
