/**
 * One OS process of the multi-process counter workload: `writers` concurrent
 * update() loops, each incrementing random keys until `increments` are done.
 * Prints one JSON line with what it did; the parent sums and compares.
 */
import { RevkitError, type Store } from '../core/index.js';
import { openTarget } from './open-target.js';

export interface CounterWorkerConfig {
  url: string;
  keys: string[];
  writers: number;
  increments: number;
  startAt: number;
  combine: boolean;
  maxAttempts: number;
  deadlineMs: number;
}

export interface CounterWorkerResult {
  succeeded: Record<string, number>;
  failed: number;
  errors: string[];
  attempts: number;
  elapsedMs: number;
}

export async function runCounterWorker(config: CounterWorkerConfig, store: Store): Promise<CounterWorkerResult> {
  const succeeded: Record<string, number> = Object.fromEntries(config.keys.map((k) => [k, 0]));
  const result: CounterWorkerResult = { succeeded, failed: 0, errors: [], attempts: 0, elapsedMs: 0 };
  let remaining = config.increments;
  const wait = config.startAt - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const started = performance.now();
  const writer = async () => {
    while (remaining > 0) {
      remaining--;
      const key = config.keys[Math.floor(Math.random() * config.keys.length)] as string;
      try {
        await store.update<number>(key, (n) => (n ?? 0) + 1, {
          combine: config.combine,
          maxAttempts: config.maxAttempts,
          deadlineMs: config.deadlineMs,
          onRetry: () => void result.attempts++,
        });
        result.attempts++;
        (succeeded[key] as number)++;
      } catch (err) {
        result.failed++;
        if (result.errors.length < 5) result.errors.push(describeError(err));
      }
    }
  };
  await Promise.all(Array.from({ length: config.writers }, writer));
  result.elapsedMs = performance.now() - started;
  return result;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] as string) as CounterWorkerConfig;
  const store = await openTarget(config.url);
  try {
    const result = await runCounterWorker(config, store);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await store.close();
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}

/** The error and its chain of causes, one line: what a failed run needs to be diagnosed. */
function describeError(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    parts.push(RevkitError.is(e) ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e));
    e = (e as { cause?: unknown }).cause;
  }
  return parts.join(' <- ');
}
