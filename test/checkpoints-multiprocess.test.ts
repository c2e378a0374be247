import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/memory/index.js';
import { CanaryStore } from '../src/testing/index.js';
import { open } from '../src/open.js';
import type { Store } from '../src/core/index.js';
import { checkpoints, resumeKey, type Checkpoints } from '../src/checkpoints/index.js';
// @ts-expect-error a plain .mjs fixture (it runs as a worker process too)
import { runAdvancer } from './fixtures/checkpoints-advancer.mjs';
import { backends, type Backend } from './checkpoints-backends.js';

const workerPath = fileURLToPath(new URL('./fixtures/checkpoints-advancer.mjs', import.meta.url));
const PROCESSES = 8;
const PREFIX = 'cp/';

interface AdvancerResult {
  perKey: Record<string, { maxSubmitted: number; maxReturned: number }>;
  advanced: number;
  skipped: number;
  violations: string[];
  errors: string[];
}

interface Verdict {
  /** Cursors that did not end at the highest sequence any process asked for. */
  lostMax: string[];
  /** What the processes were told that a monotonic cursor cannot say. */
  violations: string[];
  /** Writes in the store's own change log that moved a cursor back or not forward. */
  backwardsInLog: string[];
  errors: string[];
  advanced: number;
  skipped: number;
}

function spawnAdvancer(config: object): Promise<AdvancerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [workerPath, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`advancer exited with ${code}: ${err.trim()}`));
      resolve(JSON.parse(out.trim().split('\n').pop() as string) as AdvancerResult);
    });
  });
}

/** Records every write to the cursors, from the store's change log, while the run goes. */
function recordLog(store: Store) {
  const controller = new AbortController();
  const writes = new Map<string, number[]>();
  let lastRevision = 0;
  const done = (async () => {
    for await (const ev of store.watch<{ sequence: number }>({ prefix: PREFIX, fromRevision: 0, signal: controller.signal })) {
      lastRevision = Math.max(lastRevision, ev.revision);
      if (ev.type !== 'put') continue;
      const key = ev.key.slice(PREFIX.length);
      writes.set(key, [...(writes.get(key) ?? []), ev.entry.value.sequence]);
    }
  })().catch((err) => {
    if (!controller.signal.aborted) throw err;
  });
  return {
    async stop(upTo: number) {
      for (let i = 0; i < 500 && lastRevision < upTo; i++) await new Promise((r) => setTimeout(r, 20));
      controller.abort();
      await done;
      return writes;
    },
  };
}

async function verdictOf(cps: Checkpoints, keys: string[], results: AdvancerResult[], log: Map<string, number[]>): Promise<Verdict> {
  const v: Verdict = { lostMax: [], violations: [], backwardsInLog: [], errors: [], advanced: 0, skipped: 0 };
  for (const r of results) {
    v.violations.push(...r.violations);
    v.errors.push(...r.errors);
    v.advanced += r.advanced;
    v.skipped += r.skipped;
  }
  for (const key of keys) {
    const max = Math.max(...results.map((r) => r.perKey[key]?.maxSubmitted ?? -1));
    const final = (await cps.get(key))?.sequence;
    if (final !== max) v.lostMax.push(`${key.slice(0, 8)}: ends at ${final}, the highest asked for was ${max}`);
    const writes = log.get(key) ?? [];
    for (let i = 1; i < writes.length; i++) {
      if ((writes[i] as number) <= (writes[i - 1] as number)) v.backwardsInLog.push(`${key.slice(0, 8)}: ${writes[i - 1]} then ${writes[i]}`);
    }
  }
  return v;
}

const caught = (v: Verdict) => v.lostMax.length + v.violations.length + v.backwardsInLog.length;

async function maxRevision(store: Store, keys: string[]): Promise<number> {
  const records = await Promise.all(keys.map((k) => store.getRecord(PREFIX + k)));
  return Math.max(0, ...records.map((r) => r?.revision ?? 0));
}

const keys = Array.from({ length: 4 }, (_, i) => resumeKey({ stream: 'orders', consumer: `c${i}` }));

/** Runs the workload in PROCESSES OS processes against `url`, watching the cursors' change log through `verify`. */
async function runProcesses(url: string, verify: Store): Promise<Verdict> {
  const cps = checkpoints(verify, { prefix: PREFIX });
  const log = recordLog(verify);
  const startAt = Date.now() + 1500;
  const results = await Promise.all(Array.from({ length: PROCESSES }, () =>
    spawnAdvancer({ url, prefix: PREFIX, keys, loops: 4, advances: 150, startAt })));
  return verdictOf(cps, keys, results, await log.stop(await maxRevision(verify, keys)));
}

describe(`${PROCESSES} processes advancing the same cursors with random sequences`, () => {
  for (const backend of backends('mp').filter((b) => b.crossProcess)) {
    it(`end at the maximum each one saw, never moving back, on ${backend.name}`, async () => {
      const url = backend.freshUrl();
      const store = await open(url);
      const verdict = await runProcesses(url, store);
      await store.close();
      expect(verdict.errors).toEqual([]);
      expect(verdict.lostMax).toEqual([]);
      expect(verdict.violations).toEqual([]);
      expect(verdict.backwardsInLog).toEqual([]);
      // The workload really raced: many advances won and many lost.
      expect(verdict.advanced).toBeGreaterThan(40);
      expect(verdict.skipped).toBeGreaterThan(40);
    }, 120_000);
  }
});

describe('the same workload catches the broken canary store (check, then write without a condition)', () => {
  const sqlite = backends('mp-canary').find((b) => b.name === 'sqlite') as Backend;

  it(`${PROCESSES} processes on canary(SQLite): a lost maximum or a backwards move, in 2 of 2 runs`, async () => {
    for (let run = 0; run < 2; run++) {
      const url = sqlite.freshUrl();
      const verify = await open(url);
      const verdict = await runProcesses(`canary:${url}`, verify);
      await verify.close();
      expect(verdict.errors).toEqual([]);
      expect(caught(verdict), JSON.stringify(verdict).slice(0, 400)).toBeGreaterThan(0);
    }
  }, 120_000);

  it('in-process, 8 advancers on canary(memory): a lost maximum or a backwards move, in 3 of 3 runs', async () => {
    for (let run = 0; run < 3; run++) {
      const store = new CanaryStore(new MemoryStore());
      const log = recordLog(store);
      // Each advancer with its own checkpoints and no combining, like separate processes.
      const results = await Promise.all(Array.from({ length: PROCESSES }, () =>
        runAdvancer(checkpoints(store, { prefix: PREFIX, combine: false, maxAttempts: 10_000 }), { keys, loops: 4, advances: 150 }) as Promise<AdvancerResult>));
      const verdict = await verdictOf(checkpoints(store, { prefix: PREFIX }), keys, results, await log.stop(await maxRevision(store, keys)));
      await store.close();
      expect(verdict.errors).toEqual([]);
      expect(caught(verdict), JSON.stringify(verdict).slice(0, 400)).toBeGreaterThan(0);
    }
  });
});
