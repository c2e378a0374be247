// A producer paused (SIGSTOP) past its replacement's registration, then
// resumed (SIGCONT): every message it sends from then on is fenced, none
// applied — also before the replacement has sent anything, so the fence comes
// from the registration itself, not from a newer stamp having been seen.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type Consumer } from '@nats-io/jetstream';
import { FencedError, process as processOnce, registerProducer, type Stamp, type Transaction } from '../../src/exactly-once/index.js';
import type { Store } from '../../src/core/index.js';
import { open } from '../../src/open.js';
import { dropPgStores, pgPrefix, redisPrefix, PG_URL, NATS_URL, REDIS_URL } from '../fixtures/exactly-once/stores.js';
import { tempDir } from '../helpers.js';

afterAll(dropPgStores, 60_000);
const dir = tempDir('eo-zombie');
const fixture = join(import.meta.dirname, '../fixtures/exactly-once/zombie-producer.mjs');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Message { stamp: Stamp; payload: { index: number; by: string } }

/** Appends `<by>:<index>` to the partition's output list. */
async function append(tx: Transaction, payload: Message['payload']) {
  await tx.update<string[]>('out', (list) => [...(list ?? []), `${payload.by}:${payload.index}`]);
}

/** Pulls whatever is in the stream now and processes it; returns each message with its outcome. */
async function drain(store: Store, source: Consumer) {
  const outcomes: { message: Message; outcome: string }[] = [];
  for (;;) {
    const batch: Message[] = [];
    for await (const m of await source.fetch({ max_messages: 50, expires: 1_000 })) {
      batch.push(m.json<Message>());
      m.ack();
    }
    if (batch.length === 0) return outcomes;
    for (const message of batch) {
      const outcome = await processOnce(store, message.stamp, message.payload, append).then((o) => o.status, (e) => (FencedError.is(e) ? 'fenced' : `error ${e.code}`));
      outcomes.push({ message, outcome });
    }
  }
}

function lines(child: ChildProcess): { event: string; sequence?: number; epoch?: number }[] {
  const seen: { event: string; sequence?: number; epoch?: number }[] = [];
  let buffered = '';
  child.stdout?.on('data', (chunk) => {
    buffered += chunk;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      seen.push(JSON.parse(buffered.slice(0, nl)));
      buffered = buffered.slice(nl + 1);
    }
  });
  return seen;
}

async function until(what: () => boolean, label: string, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (!what()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await sleep(20);
  }
}

const stores = [
  { name: 'sqlite', url: () => `sqlite:${join(dir, `${randomBytes(4).toString('hex')}.db`)}` },
  { name: 'postgres', url: () => `${PG_URL}?prefix=${pgPrefix()}` },
  { name: 'file', url: () => `file:${join(dir, `${randomBytes(4).toString('hex')}.json`)}` },
  { name: 'redis', url: () => `${REDIS_URL}?prefix=${redisPrefix()}` },
];

describe('exactly-once zombie producer', () => {
  for (const backend of stores) {
    it(`${backend.name}: a producer resumed after its replacement registered has every send fenced, none applied`, async () => {
      const url = backend.url();
      const store = await open(url);
      const nc = await connect({ servers: NATS_URL.replace(/^nats:\/\//, '') });
      const jsm = await jetstreamManager(nc);
      const stream = `EOZ_${process.pid}_${randomBytes(4).toString('hex')}`;
      const subject = `${stream}.orders.a`;
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
      await jsm.consumers.add(stream, { durable_name: 'work', ack_policy: 'explicit', ack_wait: 10e9 });
      const source = await jetstream(nc).consumers.get(stream, 'work');
      const zombie = spawn(process.execPath, [fixture, JSON.stringify({ store: url, nats: NATS_URL.replace(/^nats:\/\//, ''), producerId: 'orders', partition: 'a', subject, tag: 'zombie', burst: 10, count: 40, paceMs: 200 })], { stdio: ['ignore', 'pipe', 'inherit'] });
      const said = lines(zombie);
      const exited = new Promise((r) => zombie.on('exit', r));
      try {
        await until(() => said.filter((l) => l.event === 'sent').length >= 10, 'the first 10 sends');
        zombie.kill('SIGSTOP');
        await sleep(200);
        const sentBeforePause = said.filter((l) => l.event === 'sent').length;
        // What it sent before the pause applies normally (a publish may be in the stream before its 'sent' line is out).
        const early = await drain(store, source);
        expect(early.length).toBeGreaterThanOrEqual(sentBeforePause);
        expect(early.every((o) => o.outcome === 'applied')).toBe(true);

        const replacement = await registerProducer(store, 'orders');
        expect(replacement.epoch).toBe(2);
        zombie.kill('SIGCONT');
        await exited;

        const resumedSends = said.filter((l) => l.event === 'sent' && (l.sequence as number) >= early.length);
        expect(resumedSends.length).toBeGreaterThan(0);
        // The replacement has sent nothing yet: the registration alone fences the zombie.
        const late = await drain(store, source);
        const lateZombie = late.filter((o) => o.message.stamp.epoch === 1);
        const byResumed = lateZombie.filter((o) => resumedSends.some((s) => s.sequence === o.message.stamp.sequence));
        expect(byResumed.length).toBe(resumedSends.length);
        expect(lateZombie.map((o) => o.outcome).filter((o) => o !== 'fenced')).toEqual([]);

        // The replacement resends from the last committed sequence, and those apply.
        const firstNew = replacement.next('a');
        expect(firstNew).toBe(early.length);
        const js = jetstream(nc);
        for (let i = 0; i < 5; i++) {
          const stamp = replacement.stamp('a');
          await js.publish(subject, JSON.stringify({ stamp, payload: { index: stamp.sequence, by: 'replacement' } }));
        }
        const fresh = await drain(store, source);
        expect(fresh.map((o) => o.outcome)).toEqual(Array(5).fill('applied'));
        const out = (await store.get<string[]>('out'))?.value ?? [];
        expect(out).toEqual([
          ...Array.from({ length: firstNew }, (_, i) => `zombie:${i}`),
          ...Array.from({ length: 5 }, (_, i) => `replacement:${firstNew + i}`),
        ]);
      } finally {
        zombie.kill('SIGKILL');
        await jsm.streams.delete(stream).catch(() => undefined);
        await nc.close();
        await store.close();
      }
    });
  }
});
