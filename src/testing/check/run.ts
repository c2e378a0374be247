import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Store } from '../../core/index.js';
import { HistoryRecorder, mergeHistories, operationsFromEvents, parseHistory, type Operation } from '../checker/history.js';
import { checkOperations, versionedKvModel, type CheckReport, type VersionedKvInput, type VersionedKvOutput } from '../checker/linearizability.js';
import { chainOpsFromHistory, checkRevisionChain, type ChainReport } from '../checker/chain.js';
import { apiKvModel, isApiLevel, type ApiKvInput, type ApiKvOutput } from '../checker/api-model.js';
import { checkIncrements, type IncrementReport } from '../checker/increments.js';
import type { CanaryKind } from '../api-canaries.js';
import { openTarget } from '../open-target.js';
import { prng, runWorkload, type CheckRecorder } from './workload.js';
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
  /** Run against a deliberately broken layer (the check must say "not linearizable"). */
  canary?: CanaryKind;
  /** Time bound of the linearizability search. */
  timeoutMs?: number;
  onProgress?: (done: number, total: number) => void;
}

type KvOp = Operation<VersionedKvInput, VersionedKvOutput>;
type ApiOp = Operation<ApiKvInput, ApiKvOutput>;

export interface CheckSummary {
  verdict: 'linearizable' | 'not linearizable' | 'unknown';
  mode: 'processes' | 'in-process';
  operations: number;
  /** Of which API-level: update() calls and the put / delete calls clients made. */
  apiOperations: number;
  ok: number;
  fail: number;
  unknown: number;
  killed: number;
  phases: { runMs: number; chainMs: number; linearizabilityMs: number; apiMs: number };
  /** Store level: what reached the store. */
  chain: ChainReport;
  linearizability: CheckReport<VersionedKvInput, VersionedKvOutput>;
  /** API level: what each caller was told. */
  increments: IncrementReport;
  api: CheckReport<ApiKvInput, ApiKvOutput>;
}

const workerPath = fileURLToPath(new URL('../../../dist/testing/check/worker.js', import.meta.url));

/**
 * the proof: runs a mixed workload against a store, records the history,
 * kills workers when asked, and checks the history two ways.
 */
export async function runCheck(options: CheckOptions): Promise<CheckSummary> {
  const seed = options.seed ?? Date.now() % 1_000_000;
  const run = `${Date.now().toString(36)}-${process.pid}`;
  const started = performance.now();
  const probe = await openTarget(options.url);
  const crossProcess = probe.capabilities.crossProcess;
  let history: ApiOp[];
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
  // Reads belong to both levels: an update()'s own reads are observations of the same state.
  const storeLevel = history.filter((op) => !isApiLevel(op.input)) as KvOp[];
  const apiLevel = history.filter((op) => isApiLevel(op.input) || op.input.op === 'get');
  const timeoutMs = options.timeoutMs ?? 60_000;
  const chainStarted = performance.now();
  const chain = checkRevisionChain(chainOpsFromHistory(storeLevel));
  const chainMs = performance.now() - chainStarted;
  const linStarted = performance.now();
  const linearizability = checkOperations(versionedKvModel, storeLevel, { timeoutMs });
  const linearizabilityMs = performance.now() - linStarted;
  const apiStarted = performance.now();
  const increments = checkIncrements(apiLevel);
  const api = checkOperations(apiKvModel, apiLevel, { timeoutMs });
  const apiMs = performance.now() - apiStarted;
  const illegal = !chain.ok || !increments.ok || linearizability.result === 'illegal' || api.result === 'illegal';
  const verdict = illegal ? 'not linearizable' : linearizability.result === 'ok' && api.result === 'ok' ? 'linearizable' : 'unknown';
  return {
    verdict,
    mode: crossProcess ? 'processes' : 'in-process',
    operations: history.length,
    apiOperations: history.length - storeLevel.length,
    ok: history.filter((o) => o.status === 'ok').length,
    fail: history.filter((o) => o.status === 'fail').length,
    unknown: history.filter((o) => o.status === 'unknown').length,
    killed,
    phases: { runMs, chainMs, linearizabilityMs, apiMs },
    chain,
    linearizability,
    increments,
    api,
  };
}

async function runInProcess(store: Store, options: CheckOptions, seed: number, run: string): Promise<ApiOp[]> {
  const recorder: CheckRecorder = new HistoryRecorder();
  const clients = (options.processes ?? 4) * (options.clients ?? 4);
  const ops = options.ops ?? 100;
  await runWorkload(store, recorder, {
    clients, ops, keys: options.keys ?? 4, worker: 0, seed, run,
    ...(options.canary ? { canary: options.canary } : {}),
    onProgress: (done) => options.onProgress?.(done, clients * ops),
  });
  return recorder.operations();
}

async function runProcesses(options: CheckOptions, seed: number, run: string): Promise<{ history: ApiOp[]; killed: number }> {
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
        ...(options.canary ? { canary: options.canary } : {}),
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
    operationsFromEvents(parseHistory<ApiKvInput, ApiKvOutput>(readFileSync(join(dir, f), 'utf8'))),
  );
  rmSync(dir, { recursive: true, force: true });
  return { history: mergeHistories(...histories), killed };
}
