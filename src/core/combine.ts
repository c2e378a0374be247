import { UPDATE_DEFAULTS } from './retry.js';
import type { Entry, Mutation, UpdateOptions } from './types.js';
import { Caller } from './caller.js';
import { AttemptLoop, type UpdatableStore } from './update.js';

/**
 * docs/semantics.md, "update()": concurrent update()s of one key in one
 * process are combined — read once, apply each queued mutation in arrival
 * order, write once — and combining is invisible except in speed. This file
 * only gathers the callers: compose.ts decides what one attempt writes and
 * what each caller is answered, update.ts's attempt loop does the rest.
 * A loop runs while the next one gathers arrivals, so a process does not
 * compete with itself for the key — until the loop waits for a mutation:
 * then the next one goes ahead, since a slow mutation must not hold callers
 * that alone would not wait for it (the two may then conflict, and retry).
 */
export class WriteCombiner {
  private readonly forming = new Map<string, Caller[]>();
  /** Per key: settles when its last loop ends or waits for a mutation. */
  private readonly busy = new Map<string, Promise<void>>();
  /** Per key: callers started inside a mutation of its running attempt, gathered until that attempt ends. */
  private readonly nested = new Map<string, { after: Promise<void>; callers: Caller[] }>();

  constructor(private readonly store: UpdatableStore) {}

  /** Per-caller TTLs and retry policies do not merge into one write. */
  static canCombine(opts: UpdateOptions<unknown>): boolean {
    return opts.ttlMs === undefined && opts.retry === undefined;
  }

  /** No caller of `key` gathering, and no loop of its that callers arriving now would wait for. */
  isIdle(key: string): boolean {
    return !this.busy.has(key);
  }

  /**
   * `after`: the caller comes from inside a mutation of the key's running attempt (nested.ts); it runs
   * in an attempt of its own once that one has ended, whatever the key's other callers do meanwhile.
   */
  private afterAttempt(key: string, caller: Caller, after: Promise<void>): void {
    const gathering = this.nested.get(key);
    if (gathering?.after === after) return void gathering.callers.push(caller);
    const callers = [caller];
    this.nested.set(key, { after, callers });
    void after.then(() => {
      if (this.nested.get(key)?.callers === callers) this.nested.delete(key);
      return new AttemptLoop(this.store, key, callers, { retry: UPDATE_DEFAULTS.retry }).run();
    });
  }

  update<T>(key: string, fn: Mutation<T>, opts: UpdateOptions<T>, after?: Promise<void>): Promise<Entry<T> | null> {
    return new Promise((resolve, reject) => {
      const caller = new Caller(key, fn as Mutation<unknown>, opts as UpdateOptions<unknown>, resolve as (e: Entry<unknown> | null) => void, reject);
      if (caller.settled) return;
      if (after !== undefined) return this.afterAttempt(key, caller, after);
      let gathering = this.forming.get(key);
      if (!gathering) {
        const callers: Caller[] = [];
        gathering = callers;
        this.forming.set(key, callers);
        const previous = this.busy.get(key) ?? Promise.resolve();
        let release!: () => void;
        const done = new Promise<void>((r) => (release = r));
        this.busy.set(key, done);
        void done.then(() => {
          if (this.busy.get(key) === done) this.busy.delete(key);
        });
        void previous.then(() => {
          this.forming.delete(key);
          return new AttemptLoop(this.store, key, callers, { retry: UPDATE_DEFAULTS.retry }, release).run();
        });
      }
      gathering.push(caller);
    });
  }
}
