// Jepsen's lock tests at the API level (test/fixtures/lock/run.mjs): three
// processes take turns at incrementing one counter under a lock, or as the
// elected leader; one is SIGSTOPped after reading the counter and resumed
// once another holder has moved it on; a holder is SIGKILLed while holding;
// others are paused at random. With the fenced commit every acknowledged
// increment is stored exactly once and fences only grow; the canary (the
// same workload writing with a plain put) loses increments, and the same
// verdict catches it. CI size; `npm run soak` runs it for as long as asked.
// Workers run the compiled library: `npm run build` first.
import { afterAll, describe, expect, it } from 'vitest';
import { open } from '../../src/open.js';
import type { Store } from '../../src/core/index.js';
import { runLockWorkload } from '../fixtures/lock/run.mjs';
import { backends } from '../checkpoints-backends.js';
import { ADMIN, startServer } from '../server-helpers.js';

const all = backends('lock-mp');
const url = (name: string) => all.find((b) => b.name === name)!.freshUrl();

interface Target {
  name: string;
  /** The URL the worker processes open, and a store on the same data for the verdict. */
  start(): Promise<{ workerUrl: string; verify: Store; close(): Promise<void> }>;
}

const direct = (name: string): Target => ({
  name,
  async start() {
    const storeUrl = url(name);
    const verify = await open(storeUrl);
    return { workerUrl: storeUrl, verify, close: () => verify.close() };
  },
});

const targets: Target[] = [
  direct('sqlite'),
  direct('postgres'),
  direct('redis'),
  {
    name: 'http (sqlite behind revkit serve)',
    async start() {
      const { server, url: base } = await startServer({ store: url('sqlite') });
      return { workerUrl: `${base}?token=${ADMIN}`, verify: server.store, close: () => server.close() };
    },
  },
];

const TTL_MS = 1_000;
const log = process.env.REVKIT_LOCK_LOG ? console.log : undefined;

let running: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const close of running) await close().catch(() => undefined);
  running = [];
});

async function run(target: Target, kind: 'lock' | 'elect', write: 'fenced' | 'plain') {
  const { workerUrl, verify, close } = await target.start();
  running.push(close);
  const fenced = write === 'fenced';
  return runLockWorkload({
    url: workerUrl, verify, name: `${kind}-${write}`, processes: 3, cycles: kind === 'lock' ? 6 : 3, ttlMs: TTL_MS, kind, write,
    writesPerTerm: 3, targetedPause: true, kills: fenced ? 1 : 0, randomPauses: fenced ? 2 : 0, log,
  });
}

for (const target of targets) {
  describe(`locks across processes on ${target.name}`, () => {
    it('paused and killed holders: every acknowledged increment stored once, fences grow along the writes and in acquisition order; the paused holder\'s late write is refused', async () => {
      const r = await run(target, 'lock', 'fenced');
      expect(r.errors).toEqual([]);
      expect({ lost: r.lost, extra: r.extra, duplicateN: r.duplicateN, fenceWentBack: r.fenceWentBack, acquisitionOrder: r.acquisitionOrder })
        .toEqual({ lost: 0, extra: 0, duplicateN: 0, fenceWentBack: 0, acquisitionOrder: 0 });
      expect(r.overtaken).toBe(1);
      expect(r.refused).toBeGreaterThanOrEqual(1);
      expect(r.kills).toBe(1);
      expect(r.takeovers).toHaveLength(1);
      expect(r.acknowledged).toBeGreaterThan(0);
    }, 240_000);

    it('canary: the same workload writing with a plain put loses increments, and the verdict catches it', async () => {
      const r = await run(target, 'lock', 'plain');
      expect(r.overtaken).toBe(1);
      expect(r.lost).toBeGreaterThan(0);
      expect(r.fenceWentBack).toBeGreaterThan(0);
    }, 240_000);

    it('leader election: leaders paused and killed; observe() shows only leaders\' values, in order; leaders\' fenced writes never interleave', async () => {
      const r = await run(target, 'elect', 'fenced');
      expect(r.errors).toEqual([]);
      expect({ lost: r.lost, extra: r.extra, duplicateN: r.duplicateN, fenceWentBack: r.fenceWentBack, acquisitionOrder: r.acquisitionOrder })
        .toEqual({ lost: 0, extra: 0, duplicateN: 0, fenceWentBack: 0, acquisitionOrder: 0 });
      expect({ notALeader: r.notALeader, observedOutOfOrder: r.observedOutOfOrder, observeErrors: r.observeErrors })
        .toEqual({ notALeader: 0, observedOutOfOrder: 0, observeErrors: 0 });
      expect(r.observed).toBeGreaterThan(1);
      expect(r.overtaken).toBe(1);
      expect(r.refused).toBeGreaterThanOrEqual(1);
      expect(r.takeovers).toHaveLength(1);
    }, 240_000);

    it('canary: leaders writing with a plain put interleave, and the verdict catches it', async () => {
      const r = await run(target, 'elect', 'plain');
      expect(r.overtaken).toBe(1);
      expect(r.fenceWentBack).toBeGreaterThan(0);
      expect(r.lost).toBeGreaterThan(0);
    }, 240_000);
  });
}
