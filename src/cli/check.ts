import { InvalidArgumentError as CommanderArgumentError, type Command } from 'commander';
import { parsePositive } from './args.js';
import { targetUrl } from './target.js';
import { redactUrl } from '../core/redact.js';
import { runCheck, type CheckSummary } from '../testing/check/run.js';
import { checkCanaryKinds as canaryKinds, type CheckCanaryKind as CanaryKind } from '../testing/check/canaries.js';

function rate(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new CommanderArgumentError('must be a number ≥ 0 (kills per second)');
  return n;
}

function canaryKind(text: string): CanaryKind {
  if (!(canaryKinds as readonly string[]).includes(text)) throw new CommanderArgumentError(`must be one of ${canaryKinds.join(', ')}`);
  return text as CanaryKind;
}

/** `revkit check`: the proof of what callers are told — record a multi-process history against a store and check it. */
export function registerCheck(program: Command, defaultStore: string): void {
  program.command('check')
    .description('run a multi-process read / CAS / update() / watch workload against a store (or --server), kill workers, and check the history for linearizability and the watches for their guarantees')
    .option('--processes <n>', 'worker processes', parsePositive, 4)
    .option('--clients <n>', 'concurrent clients per process', parsePositive, 4)
    .option('--ops <n>', 'operations per client', parsePositive, 100)
    .option('--keys <n>', 'keys the clients share', parsePositive, 4)
    .option('--kill-rate <r>', 'SIGKILLs of worker processes per second (0: none)', rate, 0)
    .option('--seed <s>', 'seed of the operation mix and the kills', parsePositive)
    .option('--timeout <ms>', 'time bound of the linearizability search', parsePositive, 60_000)
    .option('--watchers <n>', 'watchers per worker process, checked against the commits (0: none)', watcherCount, 2)
    .option('--canary <kind>', `check a deliberately broken layer instead, to see it caught: ${canaryKinds.join(' | ')}`, canaryKind)
    .option('--json', 'print the summary as JSON')
    .action(async (opts: { processes: number; clients: number; ops: number; keys: number; killRate: number; seed?: number; timeout: number; watchers: number; json?: boolean; canary?: CanaryKind }, cmd: Command) => {
      const url = await targetUrl(cmd.optsWithGlobals<{ store?: string; server?: string; token?: string }>(), defaultStore);
      const tty = process.stderr.isTTY === true;
      const summary = await runCheck({
        url, processes: opts.processes, clients: opts.clients, ops: opts.ops, keys: opts.keys, killRate: opts.killRate, timeoutMs: opts.timeout, watchers: opts.watchers,
        ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
        ...(opts.canary !== undefined ? { canary: opts.canary } : {}),
        ...(tty ? { onProgress: (done: number, total: number) => progress(done, total) } : {}),
      });
      if (tty) process.stderr.write('\r\x1b[K');
      if (opts.json) process.stdout.write(`${JSON.stringify(summaryJson(redactUrl(url), summary))}\n`);
      else process.stdout.write(describe(redactUrl(url), summary));
      if (summary.verdict !== 'linearizable') process.exitCode = 1;
    });
}

function watcherCount(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new CommanderArgumentError('must be an integer ≥ 0');
  return n;
}

function progress(done: number, total: number): void {
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} operations`);
}

function summaryJson(url: string, s: CheckSummary) {
  return {
    store: url, verdict: s.verdict, mode: s.mode, operations: s.operations, apiOperations: s.apiOperations, ok: s.ok, fail: s.fail, unknown: s.unknown, killed: s.killed,
    phases: s.phases, chainViolations: s.chain.violations.slice(0, 20),
    linearizability: { result: s.linearizability.result, timedOut: s.linearizability.timedOut, counterExample: s.linearizability.counterExample?.text },
    incrementViolations: s.increments.violations.slice(0, 20),
    api: { result: s.api.result, timedOut: s.api.timedOut, counterExample: s.api.counterExample?.text },
    watches: s.watches && {
      ok: s.watches.ok, segments: s.watches.segments, events: s.watches.events, modes: s.watches.modes, told: s.watches.told, ends: s.watches.ends,
      streamCuts: s.watches.streamCuts, fromNowChecked: s.watches.fromNowChecked, committed: s.watches.committed, order: s.watches.order,
      byGuarantee: s.watches.byGuarantee, violations: s.watches.violations.slice(0, 20),
    },
  };
}

function describe(url: string, s: CheckSummary): string {
  const lines = [
    `store        ${url} (${s.mode === 'processes' ? 'worker processes' : 'in-process clients: this store is not shared across processes'})`,
    `operations   ${s.operations} (${s.apiOperations} of them API-level): ${s.ok} ok, ${s.fail} failed, ${s.unknown} unknown outcome; ${s.killed} worker(s) killed`,
    `time         run ${ms(s.phases.runMs)}, revision-chain check ${ms(s.phases.chainMs)}, linearizability ${ms(s.phases.linearizabilityMs)}, API level ${ms(s.phases.apiMs)}, watches ${ms(s.phases.watchMs)}`,
    'store level  (what reached the store)',
    `  chain check  ${s.chain.ok ? 'ok' : `${s.chain.violations.length} violation(s)`}`,
    ...s.chain.violations.slice(0, 5).map((v) => `    - ${v.kind} on ${v.key}: ${v.detail}`),
    `  linearizable ${s.linearizability.result}${cutOff(s.linearizability.timedOut)}`,
  ];
  if (s.linearizability.counterExample) lines.push(indent(s.linearizability.counterExample.text, 4));
  lines.push(
    'API level    (what each caller was told)',
    `  counters     ${s.increments.ok ? 'ok' : `${s.increments.violations.length} violation(s)`} (${s.increments.increments} increments on ${s.increments.keys} keys)`,
    ...s.increments.violations.slice(0, 5).map((v) => `    - ${v.kind} on ${v.key}: ${v.detail}`),
    `  linearizable ${s.api.result}${cutOff(s.api.timedOut)}`,
  );
  if (s.api.counterExample) lines.push(indent(s.api.counterExample.text, 4));
  lines.push(...describeWatches(s));
  lines.push(`verdict      ${s.verdict.toUpperCase()}`);
  return `${lines.join('\n')}\n`;
}

const ORDER_TEXT = {
  store: 'revisions are the store-wide commit order',
  delivery: 'watches deliver in revision order; a watch from now starts at a moment',
  key: 'order per key only',
} as const;

function describeWatches(s: CheckSummary): string[] {
  const w = s.watches;
  if (!w) return ['watches      none recorded (no watchers, or the store has no watch)'];
  const ends = Object.entries(w.ends).map(([how, n]) => `${n} ${how}`).join(', ');
  const lines = [
    `watches      (what each watch delivered, against the committed writes; ${ORDER_TEXT[w.order]})`,
    `  segments   ${w.segments}: ${w.modes.now} from now, ${w.modes.from} from a revision told (${w.told.commit} by a commit, ${w.told.read} by a read, ${w.told.event} by an event), ${w.modes.resume} resumed after a cut${w.streamCuts ? `; ${w.streamCuts} event stream(s) cut under the client` : ''}`,
    `  delivered  ${w.events} events of ${w.committed} committed changes; ${w.fromNowChecked} writes started after a watch() returned were delivered to it; ended: ${ends}`,
  ];
  for (const g of ['ordered', 'unique', 'atomic', 'reliable', 'resumable', 'from-now', 'faithful'] as const) {
    const n = w.byGuarantee[g];
    lines.push(`  ${g.padEnd(10)} ${n === 0 ? 'ok' : `${n} violation(s)`}`);
    for (const v of w.violations.filter((x) => x.guarantee === g).slice(0, 3)) lines.push(`    - ${v.segment}: ${v.detail}`);
  }
  if (w.stalled) lines.push(`  stalled    ${w.stalled} watch(es) delivered no sentinel within the liveness bound (not a violation; the verdict is unknown)`);
  return lines;
}

const ms = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(0)} ms`);
const indent = (text: string, by: number) => text.split('\n').map((l) => `${' '.repeat(by)}${l}`).join('\n');
const cutOff = (keys: string[]) => (keys.length ? ` (search cut off on ${keys.join(', ')})` : '');
