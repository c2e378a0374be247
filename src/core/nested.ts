/**
 * An update() of a key started from inside a mutation of that key's own
 * attempt (a mutation that calls update() on its key) must not race that
 * attempt: the attempt's write would conflict, its mutation run again and
 * start another update(), and so on. It waits for the attempt to end (as it
 * waited behind the combined attempt before the key was released while a
 * mutation waits: combine.ts). Only calls made synchronously inside a
 * mutation are seen: one after an `await` in it cannot be told from any other.
 */
export interface MutatingAttempt {
  readonly owner: object;
  readonly key: string;
  /** Settles when the attempt (and any loop that goes on with it) has ended. */
  end(): Promise<void>;
}

let current: MutatingAttempt | undefined;

/** Marks `attempt` as the one whose mutation runs until leave(returned value). */
export function enterMutation(attempt: MutatingAttempt | undefined): MutatingAttempt | undefined {
  const outer = current;
  current = attempt;
  return outer;
}

export function leaveMutation(outer: MutatingAttempt | undefined): void {
  current = outer;
}

/** The end of the attempt of `key` on `owner` whose mutation is running now, when this call comes from inside it. */
export function endOfMutatingAttempt(owner: object, key: string): Promise<void> | undefined {
  return current !== undefined && current.owner === owner && current.key === key ? current.end() : undefined;
}

/** An attempt's end, as a promise made only when someone asks (almost never). */
export class AttemptEnd {
  private promise: Promise<void> | undefined;
  private resolve: (() => void) | undefined;
  private ended = false;

  get(): Promise<void> {
    if (this.ended) return Promise.resolve();
    return (this.promise ??= new Promise<void>((r) => (this.resolve = r)));
  }

  done(): void {
    this.ended = true;
    this.resolve?.();
  }
}
