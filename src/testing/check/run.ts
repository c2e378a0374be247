import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Store } from '../../core/index.js';
import { HistoryRecorder, mergeHistories, operationsFromEvents, parseHistory, type Operation } from '../checker/history.js';
import { checkOperations, versionedKvModel, type CheckReport, type VersionedKvInput, type VersionedKvOutput } from '../checker/linearizability.js';
import { chainOpsFromHistory, checkRevisionChain, type ChainReport } from '../checker/chain.js';
import { openTarget } from '../open-target.js';
import { prng, runWorkload } from './workload.js';
import type { CheckWorkerConfig } from './worker.js';

export interface CheckOptions {
  url: string;
  processes?: number;
  clients?: number;
  ops?: number;
  keys?: number;
  /** Expected SIGKILLs of worker processes per second of the run (each killed worker is replaced). */
  killRate?: number;
  seed?: number;
  /** Time bound of the linearizability search. */
  timeoutMs?: number;
  onProgress?: (done: number, total: number) => void;
}

type KvOp = Operation<VersionedKvInput, VersionedKvOutput>;

export interface CheckSummary {
  verdict: 'linearizable' | 'not linearizable' | 'unknown';
  mode: 'processes' | 'in-process';
  operations: number;
  ok: number;
  fail: number;
  unknown: number;
  killed: number;
  phases: { runMs: number; chainMs: number; linearizabilityMs: number };
  chain: ChainReport;
  linearizability: CheckReport<VersionedKvInput, VersionedKvOutput>;
}

const workerPath = fileURLToPath(new URL('../../../dist/testing/check/worker.js', import.meta.url));

/**
 * DESIGN §11: runs a mixed workload against a store, records the history,
 * kills workers when asked, and checks the history two ways.
 */
export async function runCheck(options: CheckOptions): Promise<CheckSummary> {
  const seed = options.seed ?? Date.now() % 1_000_000;
  const run = `${Date.now().toString(36)}-${process.pid}`;
  const started = performance.now();
  const probe = await openTarget(options.url);
  const crossProcess = probe.capabilities.crossProcess;
  let history: KvOp[];
  let killed = 0;
  if (crossProcess) {
    await probe.close();
    ({ history, killed } = await runProcesses(options, seed, run));
  } else {
    // An in-process store (memory:) cannot be shared by processes: its clients run here.
    history = await runInProcess(probe, options, seed, run);
    await probe.close();
  }
  const runMs = performance.now() - started;
  const chainStarted = performance.now();
  const chain = checkRevisionChain(chainOpsFromHistory(history));
  const chainMs = performance.now() - chainStarted;
  const linStarted = performance.now();
  const linearizability = checkOperations(versionedKvModel, history, { timeoutMs: options.timeoutMs ?? 60_000 });
  const linearizabilityMs = performance.now() - linStarted;
  const verdict = !chain.ok || linearizability.result === 'illegal' ? 'not linearizable' : linearizability.result === 'ok' ? 'linearizable' : 'unknown';
  return {
    verdict,
    mode: crossProcess ? 'processes' : 'in-process',
    operations: history.length,
    ok: history.filter((o) => o.status === 'ok').length,
    fail: history.filter((o) => o.status === 'fail').length,
    unknown: history.filter((o) => o.status === 'unknown').length,
    killed,
    phases: { runMs, chainMs, linearizabilityMs },
    chain,
    linearizability,
  };
}

async function runInProcess(store: Store, options: CheckOptions, seed: number, run: string): Promise<KvOp[]> {
  const recorder = new HistoryRecorder<VersionedKvInput, VersionedKvOutput>();
  const clients = (options.processes ?? 4) * (options.clients ?? 4);
  const ops = options.ops ?? 100;
  await runWorkload(store, recorder, {
    clients, ops, keys: options.keys ?? 4, worker: 0, seed, run,
    onProgress: (done) => options.onProgress?.(done, clients * ops),
  });
  return recorder.operations();
}

async function runProcesses(options: CheckOptions, seed: number, run: string): Promise<{ history: KvOp[]; killed: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'revkit-check-'));
  const processes = options.processes ?? 4;
  const clients = options.clients ?? 4;
  const ops = options.ops ?? 100;
  const total = processes * clients * ops;
  const done = new Map<string, number>();
  let killed = 0;
  let generation = 0;
  const random = prng(seed);
  const live = new Set<ReturnType<typeof fork>>();

  const runSlot = async (slot: number): Promise<void> => {
    for (;;) {
      const worker = `${slot}.${generation++}`;
      const config: CheckWorkerConfig = {
        url: options.url, historyFile: join(dir, `worker-${worker}.ndjson`), worker, clients, ops, keys: options.keys ?? 4, seed: Math.floor(random() * 1e9), run,
      };
      const child = fork(workerPath, [JSON.stringify(config)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
      live.add(child);
      let stderr = '';
      child.stderr?.on('data', (d) => (stderr += d));
      child.on('message', (m: { done: number }) => {
        done.set(worker, m.done);
        options.onProgress?.(Math.min(total, [...done.values()].reduce((a, b) => a + b, 0)), total);
      });
      const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (c, s) => resolve({ code: c, signal: s })));
      live.delete(child);
      if (signal === 'SIGKILL') {
        done.delete(worker);
        continue; // a killed worker's slot runs again, in a new process with new client ids
      }
      if (code !== 0) throw new Error(`check worker ${worker} failed (exit ${code}): ${stderr.trim().split('\n').slice(0, 3).join(' ')}`);
      return;
    }
  };

  let killer: NodeJS.Timeout | undefined;
  if (options.killRate && options.killRate > 0) {
    // Poisson-ish: check every 50 ms, kill with probability rate × 0.05.
    killer = setInterval(() => {
      // Bounded, so that every slot finishes: at most 3 kills per process slot.
      if (killed >= processes * 3 || random() >= (options.killRate as number) * 0.05 || live.size === 0) return;
      const victims = [...live];
      const victim = victims[Math.floor(random() * victims.length)];
      if (victim?.kill('SIGKILL')) killed++;
    }, 50);
  }
  try {
    await Promise.all(Array.from({ length: processes }, (_, slot) => runSlot(slot)));
  } finally {
    if (killer) clearInterval(killer);
    for (const child of live) child.kill('SIGKILL');
  }
  const histories = readdirSync(dir).filter((f) => f.endsWith('.ndjson')).map((f) =>
    operationsFromEvents(parseHistory<VersionedKvInput, VersionedKvOutput>(readFileSync(join(dir, f), 'utf8'))),
  );
  rmSync(dir, { recursive: true, force: true });
  return { history: mergeHistories(...histories), killed };
}
