import type { Store } from '../../core/index.js';

/** One conformance check: it gets a fresh store of the target, closed after the test. */
export type StoreTest = (store: Store) => Promise<void>;
/** Registers a check as a test of the current describe block; the timeout defaults to the target's. */
export type RegisterStoreTest = (name: string, fn: StoreTest, timeoutMs?: number) => void;

export function sleepMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function withTimeout<T>(p: Promise<T>, ms: number, describe: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${describe()}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

