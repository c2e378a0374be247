import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendError, type Store } from '../../core/index.js';
import { HistoryRecorder, mergeHistories, operationsFromEvents, parseHistory, type Operation } from '../checker/history.js';
import { checkOperations, type CheckReport } from '../checker/linearizability.js';
import { versionedKvModel, type VersionedKvInput, type VersionedKvOutput } from '../checker/versioned-kv-model.js';
import { chainOpsFromHistory, checkRevisionChain, type ChainReport } from '../checker/chain.js';
import { apiKvModel, isApiLevel, type ApiKvInput, type ApiKvOutput } from '../checker/api-model.js';
import { checkIncrements, type IncrementReport } from '../checker/increments.js';
import { checkWatches, type WatchOrder, type WatchReport } from '../checker/watch.js';
import type { RecordedWatchEvent, WatchSegment } from '../checker/watch-record.js';
import { committedChanges, type HistoryRecordLike } from '../checker/committed-changes.js';
import { openTarget } from '../open-target.js';
import { runId } from '../run-id.js';
import type { CheckCanaryKind } from './canaries.js';
import { startCutProxy, type CutProxy } from './cut-proxy.js';
import type { WatchLogRecord } from './watch-workload.js';
import { prng, runWorkload, type CheckRecorder } from './workload.js';
import { WORKER_ENV, type CheckWorkerConfig } from './worker-config.js';

export interface CheckOptions {
  url: string;
  processes?: number;
  clients?: number;
  ops?: number;
  keys?: number;
  /** Expected SIGKILLs of worker processes per second of the run (each killed worker is replaced). */
  killRate?: number;
  seed?: number;
  /** Run against a deliberately broken layer (the check must say "not linearizable", or for a watch canary "watch guarantees broken"). */
  canary?: CheckCanaryKind;
  /** Time bound of the linearizability search. */
  timeoutMs?: number;
  /** Watchers per worker process (in-process: per `processes`); 0 records no watches. Default 2. */
  watchers?: number;
  /** Over HTTP, cut the watchers' event streams (a proxy between them and the server). Default true. */
  cutStreams?: boolean;
  /** Liveness bound of a draining watch; a stall is reported, never a violation. Default 30 s. */
  livenessMs?: number;
  onProgress?: (done: number, total: number) => void;
}

type KvOp = Operation<VersionedKvInput, VersionedKvOutput>;
type ApiOp = Operation<ApiKvInput, ApiKvOutput>;

export type CheckVerdict = 'linearizable' | 'not linearizable' | 'watch guarantees broken' | 'unknown';

export interface WatchSummary extends WatchReport {
  /** Event streams cut by the proxy (over HTTP only), each resumed by the client. */
  streamCuts: number;
  /** Segments that did not deliver a sentinel within the liveness bound (not a violation: the verdict is unknown). */
  stalled: number;
}

export interface CheckSummary {
  /** `linearizable`: the operations are linearizable and every watch kept its guarantees. */
  verdict: CheckVerdict;
  mode: 'processes' | 'in-process';
  operations: number;
  /** Of which API-level: update() calls and the put / delete calls clients made. */
  apiOperations: number;
  ok: number;
  fail: number;
  unknown: number;
  killed: number;
  phases: { runMs: number; chainMs: number; linearizabilityMs: number; apiMs: number; watchMs: number };
  /** Store level: what reached the store. */
  chain: ChainReport;
  linearizability: CheckReport<VersionedKvInput, VersionedKvOutput>;
  /** API level: what each caller was told. */
  increments: IncrementReport;
  api: CheckReport<ApiKvInput, ApiKvOutput>;
  /** The watch guarantees, against the committed writes; undefined when no watch ran (no watchers, or a store without watch). */
  watches?: WatchSummary;
}

const workerPath = fileURLToPath(new URL('../../../dist/testing/check/worker.js', import.meta.url));

/**
 * the proof: runs a mixed workload against a store, records the history,
 * kills workers when asked, and checks the history two ways.
 */
export async function runCheck(options: CheckOptions): Promise<CheckSummary> {
  const seed = options.seed ?? Date.now() % 1_000_000;
  const run = runId();
  const started = performance.now();
  const probe = await openTarget(options.url);
  const crossProcess = probe.capabilities.crossProcess;
  let history: ApiOp[];
  let watchLog: WatchLogRecord[];
  let killed = 0;
  let streamCuts = 0;
  let order: WatchOrder;
  let truth: Truth;
  try {
    order = watchOrder(probe);
    if (crossProcess) {
      ({ history, killed, watchLog, streamCuts } = await runProcesses(options, seed, run));
    } else {
      // An in-process store (memory:) cannot be shared by processes: its clients run here.
      ({ history, watchLog } = await runInProcess(probe, options, seed, run));
    }
    truth = await readTruth(probe, history, watchLog);
  } finally {
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
  const watchStarted = performance.now();
  const segments = segmentsOf(watchLog);
  let watches: WatchSummary | undefined;
  if (segments.length > 0) {
    const committed = committedChanges(history, truth.histories, segments.flatMap((s) => s.events));
    const report = checkWatches(segments, committed.changes, { order, closedKeys: committed.closedKeys });
    watches = { ...report, streamCuts, stalled: report.ends.stalled ?? 0 };
  }
  const watchMs = performance.now() - watchStarted;
  const illegal = !chain.ok || !increments.ok || linearizability.result === 'illegal' || api.result === 'illegal';
  const verdict: CheckVerdict = illegal
    ? 'not linearizable'
    : watches && !watches.ok ? 'watch guarantees broken'
      : linearizability.result === 'ok' && api.result === 'ok' && !watches?.stalled ? 'linearizable' : 'unknown';
  return {
    verdict,
    mode: crossProcess ? 'processes' : 'in-process',
    operations: history.length,
    apiOperations: history.length - storeLevel.length,
    ok: history.filter((o) => o.status === 'ok').length,
    fail: history.filter((o) => o.status === 'fail').length,
    unknown: history.filter((o) => o.status === 'unknown').length,
    killed,
    phases: { runMs, chainMs, linearizabilityMs, apiMs, watchMs },
    chain,
    linearizability,
    increments,
    api,
    ...(watches ? { watches } : {}),
  };
}

/**
 * Backends whose revisions order every commit (memory, SQLite, file, NATS, Redis), and PostgreSQL, whose
 * watches deliver in revision order though commits may finish out of it — behind a server too. Any other: per key.
 */
const ORDER: Record<string, WatchOrder> = { memory: 'store', sqlite: 'store', file: 'store', nats: 'store', redis: 'store', postgres: 'delivery' };

function watchOrder(store: Store): WatchOrder {
  const remote = (store as { remoteBackend?: unknown }).remoteBackend;
  const name = typeof remote === 'string' ? remote : store.backend;
  // A testing wrapper names its inner backend in parentheses: canary(sqlite).
  return ORDER[name.replace(/^(?:[\w-]+\()+|\)+$/g, '')] ?? 'key';
}

interface Truth {
  histories: Map<string, HistoryRecordLike[]>;
}

/** Every key the run wrote or a watch delivered, with its history as the store keeps it at the end. */
async function readTruth(store: Store, history: readonly ApiOp[], watchLog: readonly WatchLogRecord[]): Promise<Truth> {
  const histories = new Map<string, HistoryRecordLike[]>();
  if (!store.capabilities.history) return { histories };
  const keys = new Set<string>();
  for (const op of history) if (op.input.op === 'put' || op.input.op === 'delete' || op.input.op === 'update') keys.add(op.input.key);
  for (const r of watchLog) if (r.t === 'ev') keys.add(r.key);
  for (const key of keys) {
    const records = await store.history(key, { limit: 10_000 });
    histories.set(key, records.map((r) => ('deleted' in r && r.deleted ? { key, revision: r.revision, deleted: true as const } : { key, revision: r.revision, value: (r as { value?: unknown }).value })));
  }
  return { histories };
}

/** The watch log, as segments (records of one segment in order; a segment cut short by a kill has no end). */
export function segmentsOf(records: readonly WatchLogRecord[]): WatchSegment[] {
  const segments = new Map<string, WatchSegment>();
  for (const r of records) {
    if (r.t === 'start') {
      segments.set(r.s, {
        id: r.s, watcher: r.watcher, mode: r.mode, filter: r.filter, returned: r.time, events: [],
        ...(r.from !== undefined ? { fromRevision: r.from } : {}), ...(r.told ? { told: r.told } : {}), ...(r.resumes ? { resumes: r.resumes } : {}),
      });
      continue;
    }
    const s = segments.get(r.s);
    if (!s) continue;
    if (r.t === 'ev') {
      const e: RecordedWatchEvent = { key: r.key, revision: r.rev, type: r.type, ...(r.type === 'put' ? { value: r.value } : {}) };
      s.events.push(e);
    } else {
      s.end = { how: r.how, ...(r.code !== undefined ? { code: r.code } : {}), ...(r.transient !== undefined ? { transient: r.transient } : {}) };
    }
  }
  return [...segments.values()];
}

/** NDJSON of a watch log; a torn last line (the writer was killed mid-write) is left out. */
function parseWatchLog(text: string): WatchLogRecord[] {
  const out: WatchLogRecord[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line) as WatchLogRecord);
    } catch {
      // torn by a SIGKILL
    }
  }
  return out;
}

async function runInProcess(store: Store, options: CheckOptions, seed: number, run: string): Promise<{ history: ApiOp[]; watchLog: WatchLogRecord[] }> {
  const recorder: CheckRecorder = new HistoryRecorder();
  const processes = options.processes ?? 4;
  const clients = processes * (options.clients ?? 4);
  const ops = options.ops ?? 100;
  const watchLog: WatchLogRecord[] = [];
  await runWorkload(store, recorder, {
    clients, ops, keys: options.keys ?? 4, worker: 0, seed, run,
    ...(options.canary ? { canary: options.canary } : {}),
    watchers: processes * (options.watchers ?? 2), watchLog: (record) => watchLog.push(record),
    ...(options.livenessMs !== undefined ? { livenessMs: options.livenessMs } : {}),
    onProgress: (done) => options.onProgress?.(done, clients * ops),
  });
  return { history: recorder.operations(), watchLog };
}

async function runProcesses(options: CheckOptions, seed: number, run: string): Promise<{ history: ApiOp[]; killed: number; watchLog: WatchLogRecord[]; streamCuts: number }> {
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
  // Over HTTP the watchers' streams go through a proxy that cuts them: the client must resume without a gap or a repeat.
  const http = /^https?:/.test(options.url);
  let proxy: CutProxy | undefined;
  if (http && (options.watchers ?? 2) > 0 && options.cutStreams !== false && options.url.startsWith('http:')) proxy = await startCutProxy(options.url, prng(seed ^ 0x5eed));

  const runSlot = async (slot: number): Promise<void> => {
    for (;;) {
      const worker = `${slot}.${generation++}`;
      const config: CheckWorkerConfig = {
        url: options.url, historyFile: join(dir, `worker-${worker}.ndjson`), worker, clients, ops, keys: options.keys ?? 4, seed: Math.floor(random() * 1e9), run,
        ...(options.canary ? { canary: options.canary } : {}),
        watchers: options.watchers ?? 2, watchFile: join(dir, `watch-${worker}.ndjson`),
        ...(proxy ? { watchUrl: proxy.url } : {}),
        ...(options.livenessMs !== undefined ? { livenessMs: options.livenessMs } : {}),
      };
      const child = fork(workerPath, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, [WORKER_ENV]: JSON.stringify(config) } });
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
      // The worker's own error (a store it cannot reach, a store that failed) is in its stderr.
      if (code !== 0) throw new BackendError(`check worker ${worker} failed (exit ${code}): ${stderr.trim().split('\n').slice(0, 3).join(' ')}`, { transient: false });
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
    await proxy?.close();
  }
  const files = readdirSync(dir);
  const histories = files.filter((f) => f.startsWith('worker-') && f.endsWith('.ndjson')).map((f) =>
    operationsFromEvents(parseHistory<ApiKvInput, ApiKvOutput>(readFileSync(join(dir, f), 'utf8'))),
  );
  const watchLog = files.filter((f) => f.startsWith('watch-') && f.endsWith('.ndjson')).flatMap((f) => parseWatchLog(readFileSync(join(dir, f), 'utf8')));
  rmSync(dir, { recursive: true, force: true });
  return { history: mergeHistories(...histories), killed, watchLog, streamCuts: proxy?.cuts ?? 0 };
}
