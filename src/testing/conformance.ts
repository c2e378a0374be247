import { afterEach, describe, it } from 'vitest';
import type { Store } from '../core/index.js';
import type { CounterRunOptions } from './multiprocess.js';
import type { StoreTest } from './conformance/harness.js';
import { describeGetPutDelete, describeHistory, describeList, describeTtl } from './conformance/entries.js';
import { describeConditions } from './conformance/conditions.js';
import { describeUpdate, describeUpdateUnderFaults } from './conformance/update.js';
import { describeAtomic } from './conformance/atomic.js';
import { describeWatch } from './conformance/watch.js';
import { describeKeysValuesErrors } from './conformance/keys-values-errors.js';
import { describeMultiProcess } from './conformance/multi-process.js';

export interface ConformanceTarget {
  /** Shown in test names. */
  name: string;
  /** A fresh, isolated, empty store. */
  create(): Promise<Store>;
  /**
   * A fresh URL that other OS processes can `open()` (sharing one store);
   * enables the multi-process part. Omit for in-process-only stores.
   */
  url?(): Promise<string>;
  multiProcess?: CounterRunOptions;
  /** Slower stores need longer per-test timeouts; default 20 s. */
  timeoutMs?: number;
}

/**
 * The one suite every backend runs (Keyv-style): call it inside a vitest file
 * with a factory for fresh stores. It needs vitest as a test runner.
 * Each group of checks lives in its own file under conformance/; the groups
 * are registered here in the order the suite reports them.
 */
export function describeConformance(target: ConformanceTarget): void {
  const open: Store[] = [];
  const timeout = target.timeoutMs ?? 20_000;
  const test = (name: string, fn: StoreTest, t = timeout) =>
    it(name, async () => {
      const store = await target.create();
      open.push(store);
      await fn(store);
    }, t);

  describe(`conformance: ${target.name}`, () => {
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close().catch(() => undefined)));
    });

    describeGetPutDelete(test);
    describeConditions(test);
    describeUpdate(test);
    describeUpdateUnderFaults(test);
    describeAtomic(test);
    describeList(test);
    describeWatch(test, timeout);
    describeHistory(test);
    describeTtl(test);
    describeKeysValuesErrors(test);
    if (target.url) describeMultiProcess(target.name, target.url, target.multiProcess);
  });
}
