// Exactly-once outcomes, checked: on every atomic backend, producers and
// consumers are SIGKILLed at random and restarted (memory: crashed at crash
// points inside process(), before and after its commit, before and halfway
// through logging the answer, before the ack), producers re-register every
// few messages (fencing the instance they replace, which goes on sending),
// consumers take messages in shuffled batches and replay old ones from the
// stream (some with a changed payload), and at the end every message ever
// published is redelivered once more, shuffled — long after, past more than
// 16 epochs and out of every dedup window, and after one producer was
// retired. Each consumer logs every answer process() gave; the verifier
// (test/fixtures/exactly-once/outcomes-verify.mjs) checks each against the
// store's dedup record history and the handler's per-message markers and
// counters. Every outcome kind must occur at least once, so the check cannot
// pass vacuously; two broken consumers (canaries) and altered log lines must
// be caught. The soak size is bench/soak/exactly-once-outcomes.mjs.
// Workers run the compiled library: `npm run build` first.
import { afterAll, describe, expect, it } from 'vitest';
import { appendFileSync, cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open } from '../../src/open.js';
import { MemoryStore } from '../../dist/memory/index.js';
import type { Store } from '../../src/core/index.js';
import { runOutcomes } from '../fixtures/exactly-once/outcomes-run.mjs';
import { KINDS, verifyOutcomes } from '../fixtures/exactly-once/outcomes-verify.mjs';
import { dropPgStores, pgPrefix, redisPrefix, PG_URL, NATS_URL, REDIS_URL } from '../fixtures/exactly-once/stores.js';
import { tempDir } from '../helpers.js';

afterAll(dropPgStores, 60_000);
const dir = tempDir('eo-outcomes');
// Enough history kept for the verifier to read every revision of each dedup record.
const HISTORY = 100_000;

type Run = Awaited<ReturnType<typeof runOutcomes>>;

function summary(name: string, run: Run): string {
  return `${name}: ${run.positions} messages (${run.published} published), ${run.answers} answers checked ${JSON.stringify(run.counts)}, ` +
    `fenced 'unknown' ${run.unknownApplied} applied + ${run.unknownNever} not (${run.afterRetirement} after ${run.retired.join(', ')} was retired), kills ${run.kills.producer} producer + ${run.kills.consumer} consumer, ` +
    `${run.registrations} registrations, epochs per partition ${run.epochsPerPartition.min}–${run.epochsPerPartition.max}, ${run.logs} logs (${run.torn} torn last lines), ` +
    `${run.faults ? `faults ${JSON.stringify(run.faults)}, ` : ''}${run.violationCount} violations, ${run.seconds.toFixed(0)} s`;
}

function expectAllChecked(run: Run, kills: number) {
  expect(run.failures).toEqual([]);
  expect(run.violations).toEqual([]);
  expect(run.kills.producer + run.kills.consumer).toBeGreaterThanOrEqual(kills);
  // Every outcome kind occurred (the check is not vacuous), and every message was applied and checked.
  expect(run.missing).toEqual([]);
  for (const kind of KINDS) expect(run.counts[kind]).toBeGreaterThan(0);
  expect(run.positions).toBe(run.markers);
}

// A generous bound on the live phase: on a loaded machine (2 cores, other suites beside) a run takes several times its ~20 s.
// One of the two producers is retired before the final redelivery: its stamps must then be fenced, applied 'unknown'.
const size = { producers: 2, consumers: 2, partitions: 2, perPartition: 40, kills: 8, retire: 1, timeoutMs: 420_000, natsUrl: NATS_URL, log: console.log };

// Besides the kills, the consumers' stores inject lost acknowledgements — the commit lands, its answer comes up to
// a second or so late, while other consumers go on, and is lost — and late-landing commits (an ambiguous failure
// whose write lands just before the next commit). Memory: more messages and kills (it is fast).
const faults = { lostAckRate: 0.03, lateLandingRate: 0.02, lostAckDelayMs: 1_000 };
// Sizes: each partition must see more than 16 epochs that applied something (a producer re-registers once its epoch
// applied something on each partition: about one epoch per 1.5 messages), so that 'unknown' fences occur.
const backends: { name: string; url?: () => string; memory?: true; size: { perPartition: number; kills: number; [more: string]: unknown } }[] = [
  { name: 'memory', memory: true, size: { perPartition: 80, kills: 16, lostAckRate: 0.05, lateLandingRate: 0.03, lostAckDelayMs: 1_500, killEveryMs: [100, 300] } },
  { name: 'sqlite', url: () => `sqlite:${join(dir, 'outcomes.db')}?synchronous=normal`, size: { perPartition: 40, kills: 10 } },
  // PostgreSQL at 160 messages as the others: at 120 a partition can stay at 16 epochs, and no fence says 'unknown'.
  { name: 'postgres', url: () => `${PG_URL}?prefix=${pgPrefix()}&historyDepth=${HISTORY}`, size: { perPartition: 40, kills: 10, ackWaitMs: 3_000 } },
  { name: 'file', url: () => `file:${join(dir, 'outcomes.json')}?changeLog=${HISTORY}`, size: { perPartition: 40, kills: 10, ackWaitMs: 3_000 } },
  { name: 'redis', url: () => `${REDIS_URL}?prefix=${redisPrefix()}&historyDepth=${HISTORY}`, size: { perPartition: 40, kills: 10 } },
];

describe('exactly-once: every answer process() gives, checked against the store, under kills and late redelivery', () => {
  for (const backend of backends) {
    it(`${backend.name}: applied, duplicate (with and without result), fenced (never applied / unknown), out of order, sequence reused — each true of what was stored`, async () => {
      const logDir = join(dir, `${backend.name}-logs`);
      const url = backend.url?.();
      const store: Store = backend.memory ? new MemoryStore({ historyDepth: HISTORY }) : await open(url as string);
      try {
        // Kills every 200–600 ms: the kill count is reached well before the producers are done, also on a fast machine.
        const run = await runOutcomes({ ...size, ...faults, killEveryMs: [200, 600], ...backend.size, store, storeUrl: url, inProcess: backend.memory, logDir });
        console.log(summary(backend.name, run));
        expectAllChecked(run, backend.size.kills);
        expect(run.positions).toBe(4 * backend.size.perPartition);
        expect(run.afterRetirement).toBeGreaterThan(0);
        expect(run.faults.lostAck > 0 && run.faults.lateLanding > 0).toBe(true);
      } finally {
        await store.close();
      }
    }, 600_000);
  }

  // The verifier catches broken consumers: one that answers duplicate for a message that came too early (it was
  // never applied: the message is acked and lost until its producer resends it under a new epoch), and one that
  // skips the dedup check on a redelivery (applies it again, answers applied).
  for (const canary of ['lying-duplicate', 'no-dedup'] as const) {
    it(`the verifier catches a broken consumer: ${canary}`, async () => {
      const store = new MemoryStore({ historyDepth: HISTORY });
      try {
        const run = await runOutcomes({ ...size, kills: 4, store, inProcess: true, logDir: join(dir, `canary-${canary}-logs`), killEveryMs: [100, 300], canary, stallMs: 2_000 });
        console.log(summary(`canary ${canary}`, run));
        console.log(`  e.g. ${run.violations.slice(0, 3).join('\n  e.g. ')}`);
        expect(run.failures).toEqual([]);
        expect(run.violationCount).toBeGreaterThan(0);
        if (canary === 'lying-duplicate') expect(run.violations.some((v: string) => /duplicate, but (this stamp was never applied|it was not applied yet)/.test(v))).toBe(true);
        else expect(run.violations.some((v: string) => /applied \d+ times|the dedup record applied it at|never applied it/.test(v))).toBe(true);
      } finally {
        await store.close();
      }
    }, 600_000);
  }

  // The verifier itself, checked: after a clean run, one logged answer at a time is altered into a false one,
  // and the verifier must name it; a torn last line is ignored, an unreadable line in the middle is not.
  it('the verifier flags each kind of false answer (one logged answer altered after a clean run)', async () => {
    const store = new MemoryStore({ historyDepth: HISTORY });
    const logDir = join(dir, 'tamper-logs');
    const perPartition = 30;
    try {
      const run = await runOutcomes({ ...size, perPartition, kills: 4, store, inProcess: true, logDir, killEveryMs: [100, 300] });
      expect(run.failures).toEqual([]);
      expect(run.violations).toEqual([]);
      type Line = Record<string, any>;
      const logs = readdirSync(logDir).filter((f) => f.endsWith('.log')).map((file) => {
        const text = readFileSync(join(logDir, file), 'utf8');
        return { file, complete: text.endsWith('\n'), lines: text.split('\n').slice(0, -1) };
      });
      const options = { producerIds: ['p0', 'p1'], partitions: ['0', '1'], perPartition, window: 8, retired: run.retired };
      const verifyWith = async (file: string, index: number, text: string | undefined, tornTail?: string) => {
        const copy = join(dir, `tamper-${Math.random().toString(36).slice(2)}`);
        cpSync(logDir, copy, { recursive: true });
        if (text !== undefined) {
          const lines = readFileSync(join(copy, file), 'utf8').split('\n');
          lines[index] = text;
          writeFileSync(join(copy, file), lines.join('\n'));
        }
        if (tornTail !== undefined) appendFileSync(join(copy, file), tornTail);
        return verifyOutcomes(store, { ...options, logDir: copy });
      };
      const find = (pick: (L: Line) => boolean) => {
        for (const { file, lines } of logs) {
          for (const [index, text] of lines.entries()) {
            try {
              const L = JSON.parse(text);
              if (pick(L)) return { file, index, L };
            } catch { /* a torn last line */ }
          }
        }
        throw new Error('no logged answer of that kind');
      };
      const lies: [string, (L: Line) => boolean, (L: Line) => Line, RegExp][] = [
        ['applied at another revision', (L) => L.o === 'applied', (L) => ({ ...L, rev: L.rev + 1 }), /: applied at \d+, but the dedup record applied it at \d+/],
        ['applied with another result', (L) => L.o === 'applied', (L) => ({ ...L, r: { ...L.r, counter: L.r.counter + 1 } }), /with result .*, the handler stored/],
        ['applied, by another attempt', (L) => L.o === 'applied', (L) => ({ ...L, a: `${L.a}x` }), /but the effect stored is attempt .*, not this one's/],
        ['fenced as never applied, though applied', (L) => L.o === 'applied', (L) => ({ ...L, o: 'fenced', fa: false, ce: L.st[1] + 1, pe: L.st[1] + 1 }), /as never applied \(details.applied false\), but this stamp was applied/],
        ['sequence reused, with the payload applied', (L) => L.o === 'applied', (L) => ({ ...L, o: 'reused' }), /reused, but its payload is the one applied/],
        ['a duplicate with another result', (L) => L.o === 'duplicate' && L.ra, (L) => ({ ...L, r: { ...L.r, a: 'someone else' } }), /the applying call got/],
        ['a duplicate without its result, within the window', (L) => L.o === 'duplicate' && L.ra && L.st[3] > L.post[1] - 8, (L) => ({ ...L, ra: false, r: undefined }), /within the recent window/],
        ['a duplicate of a stamp never applied', (L) => L.o === 'fenced' && L.fa === false, (L) => ({ ...L, o: 'duplicate', ra: false }), /duplicate, but this stamp was never applied/],
        ['out of order, expecting itself', (L) => L.o === 'outOfOrder', (L) => ({ ...L, x: L.st[3] }), /expected sequence \d+ is not before it/],
        ['out of order, expecting what was not next', (L) => L.o === 'outOfOrder' && L.x > 1, (L) => ({ ...L, x: L.x - 1 }), /but the last applied sequence was/],
        ['fenced without details.applied', (L) => L.o === 'fenced', (L) => ({ ...L, fa: null }), /without details.applied false or 'unknown'/],
      ];
      for (const [name, pick, change, expected] of lies) {
        const { file, index, L } = find(pick);
        const verdict = await verifyWith(file, index, JSON.stringify(change(L)));
        expect(verdict.violations.some((v: string) => expected.test(v)), `${name}: ${verdict.violations.join('; ')}`).toBe(true);
      }
      // A log whose last line is whole (a torn one would swallow the tail appended below).
      const some = logs.find((l) => l.lines.length > 2 && l.complete) as { file: string; lines: string[] };
      const middle = await verifyWith(some.file, 1, (some.lines[1] as string).slice(0, 20));
      expect(middle.violations.some((v: string) => /unreadable line in the middle/.test(v))).toBe(true);
      const tail = await verifyWith(some.file, 0, undefined, (some.lines[0] as string).slice(0, 30));
      expect(tail.violations).toEqual([]);
      expect(tail.torn).toBe(run.torn + 1);
    } finally {
      await store.close();
    }
  }, 600_000);
});
