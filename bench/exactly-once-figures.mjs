#!/usr/bin/env node
// Issue 13 figures: exactly-once processing vs plain at-least-once processing
// of the same messages, with the same handler, on the same store, side by
// side in one run (rounds alternate the order); and the dedup state kept per
// producer as the message count grows (bounded by the recent window).
//
//   npm run build && node bench/exactly-once-figures.mjs [--rounds 5] [--sqlite 300] [--postgres 150] [--dedup 1000000] [--json path]
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ConflictError, open } from '../dist/index.js';
import { MemoryStore } from '../dist/memory/index.js';
import { dropPostgresStore } from '../dist/postgres/index.js';
import { DEFAULT_WINDOW, process as processOnce, registerProducer } from '../dist/exactly-once/index.js';
import { StagedTransaction } from '../dist/exactly-once/transaction.js';
import { flagArgs, median } from './lib/figures.mjs';
import { handler } from '../test/fixtures/exactly-once/kill-worker.mjs';

const flags = flagArgs();
const rounds = Number(flags.rounds ?? 5);
const pgUrl = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test`;
const run = `${process.pid.toString(36)}_${Date.now().toString(36)}`;

/**
 * At-least-once: the same handler, its writes committed atomically with checks on its reads, but no dedup record.
 * With `withRecord`, a record of the dedup record's shape and size (DEFAULT_WINDOW entries) is written blindly
 * in the same commit: the floor of any exactly-once that keeps its dedup state as a store value.
 */
async function plainProcess(store, stamp, payload, withRecord = false) {
  for (;;) {
    const tx = new StagedTransaction(store, '_eo/');
    const result = await handler(tx, payload, stamp);
    const batch = store.atomic();
    await tx.addTo(batch);
    if (withRecord) batch.set(`_eo/floor/${stamp.producerId}`, dedupShaped(stamp, result));
    try {
      return await batch.commit();
    } catch (err) {
      if (!ConflictError.is(err)) throw err;
    }
  }
}

function dedupShaped(stamp, result) {
  const recent = Array.from({ length: DEFAULT_WINDOW }, (_, i) => ({ epoch: stamp.epoch, sequence: stamp.sequence - i, payloadHash: 'h'.repeat(43), result, commit: 'c'.repeat(12) }));
  return { epoch: stamp.epoch, lastSequence: stamp.sequence, recent };
}

const CHUNK = 10;
const MODES = ['at-least-once', 'exactly-once', 'record floor'];

/**
 * One round: both modes process `messages` messages, interleaved in chunks of
 * ten (alternating which goes first), so that a load swing on a shared
 * machine hits both alike. Returns messages per second of each mode.
 */
async function round(store, r, messages) {
  const producers = Object.fromEntries(await Promise.all(MODES.map(async (mode, i) => [mode, await registerProducer(store, `m${i}-${r}`)])));
  const elapsed = Object.fromEntries(MODES.map((mode) => [mode, 0]));
  for (let done = 0; done < messages; done += CHUNK) {
    const turn = (done / CHUNK + r) % MODES.length;
    const order = [...MODES.slice(turn), ...MODES.slice(0, turn)];
    for (const mode of order) {
      const stamps = Array.from({ length: Math.min(CHUNK, messages - done) }, () => producers[mode].stamp('0'));
      const started = performance.now();
      for (const stamp of stamps) {
        const payload = { index: stamp.sequence };
        if (mode === 'exactly-once') await processOnce(store, stamp, payload, handler);
        else await plainProcess(store, stamp, payload, mode === 'record floor');
      }
      elapsed[mode] += performance.now() - started;
    }
  }
  return Object.fromEntries(Object.entries(elapsed).map(([mode, ms]) => [mode, messages / (ms / 1000)]));
}

async function compare(name, url, messages) {
  const store = await open(url);
  const rates = { 'at-least-once': [], 'exactly-once': [], 'record floor': [], ratio: [], floorRatio: [] };
  try {
    for (let r = 0; r < rounds; r++) {
      const got = await round(store, r, messages);
      for (const mode of MODES) rates[mode].push(got[mode]);
      rates.ratio.push(got['exactly-once'] / got['at-least-once']);
      rates.floorRatio.push(got['record floor'] / got['at-least-once']);
    }
  } finally {
    await store.close();
  }
  return {
    store: name, messagesPerRound: messages, rounds,
    atLeastOncePerSec: median(rates['at-least-once']), exactlyOncePerSec: median(rates['exactly-once']), ratio: median(rates.ratio), ratios: rates.ratio,
    recordFloorPerSec: median(rates['record floor']), recordFloorRatio: median(rates.floorRatio),
  };
}

/** Bytes of the dedup record and the epoch record of one producer after n messages on one partition. */
async function dedupSize(checkpoints) {
  const store = new MemoryStore();
  const producer = await registerProducer(store, 'orders');
  const sizes = [];
  let done = 0;
  for (const n of checkpoints) {
    for (; done < n; done++) {
      const stamp = producer.stamp('0');
      await processOnce(store, stamp, { index: stamp.sequence }, async (tx) => {
        tx.put('last', stamp.sequence);
        return stamp.sequence;
      });
    }
    const dedup = await store.get('_eo/dedup/orders/0');
    const epoch = await store.get('_eo/epoch/orders');
    sizes.push({ messages: n, dedupRecordBytes: JSON.stringify(dedup.value).length, epochRecordBytes: JSON.stringify(epoch.value).length, recent: dedup.value.recent.length });
  }
  await store.close();
  return sizes;
}

const results = { window: DEFAULT_WINDOW, throughput: [], dedup: [] };
results.throughput.push(await compare('sqlite (synchronous=FULL)', `sqlite:${join(tmpdir(), `revkit-eo-bench-${run}.db`)}`, Number(flags.sqlite ?? 300)));
const prefix = `rk_eo_bench_${run}_`;
try {
  results.throughput.push(await compare('postgres', `${pgUrl}?prefix=${prefix}`, Number(flags.postgres ?? 150)));
} finally {
  const pool = new pg.Pool({ connectionString: pgUrl, max: 1 });
  await dropPostgresStore(pool, { prefix }).catch(() => undefined);
  await pool.end();
}
const top = Number(flags.dedup ?? 1_000_000);
results.dedup = await dedupSize([1_000, 10_000, 100_000, top].filter((n, i, all) => n <= top && all.indexOf(n) === i));

console.log(`exactly-once vs at-least-once, same handler (counter increment + list append), one consumer, ${rounds} rounds, modes interleaved in chunks of ${CHUNK}; ratio = median of per-round ratios`);
console.log('"record floor": at-least-once plus a blind write of a dedup-sized record in the same commit, the least any exactly-once keeping its dedup state as a store value pays');
console.log('store                        at-least-once/s  exactly-once/s  ratio (goal >= 0.80, issue 26)          record floor/s  ratio');
for (const r of results.throughput) {
  console.log(`${r.store.padEnd(28)} ${r.atLeastOncePerSec.toFixed(1).padStart(15)} ${r.exactlyOncePerSec.toFixed(1).padStart(15)}  ${`${r.ratio.toFixed(2)}x  (rounds: ${r.ratios.map((x) => x.toFixed(2)).join(' ')})`.padEnd(40)} ${r.recordFloorPerSec.toFixed(1).padStart(14)}  ${r.recordFloorRatio.toFixed(2)}x`);
}
console.log(`\ndedup state of one producer, one partition (window ${DEFAULT_WINDOW} results of a small integer each)`);
console.log('messages     dedup record bytes  epoch record bytes  recent entries');
for (const d of results.dedup) console.log(`${String(d.messages).padStart(9)} ${String(d.dedupRecordBytes).padStart(20)} ${String(d.epochRecordBytes).padStart(19)} ${String(d.recent).padStart(15)}`);
if (flags.json) writeFileSync(flags.json, `${JSON.stringify(results, null, 2)}\n`);
