import type { Operation } from './history.js';

/** What the linearizability checker needs of a sequential specification. */
export interface Model<S, I, O> {
  name: string;
  /** Splits a history into independent sub-histories (e.g. per key). */
  partition?(ops: Operation<I, O>[]): Operation<I, O>[][];
  /** Key of an operation: names partitions in reports, and partitions by key when `partition` is absent. */
  keyOf?(input: I): string;
  init(): S;
  /** `output === undefined` means the outcome is unknown: accept any result. */
  step(state: S, input: I, output: O | undefined): [boolean, S];
  /** Defaults to equality of `hash`. If given, equal states must still hash alike. */
  equal?(a: S, b: S): boolean;
  hash(state: S): string;
  describeOperation?(input: I, output: O | undefined): string;
  describeState?(state: S): string;
}
