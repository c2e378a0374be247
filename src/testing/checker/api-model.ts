/**
 * The API-level model: what callers of a revkit store are *told*, checked
 * against one sequential key-value store (docs/semantics.md, "update()"; the proof of what callers are told).
 *
 * A store-level history (versionedKvModel) sees the reads and guarded writes
 * that reach the store; it cannot see a combiner handing one caller another
 * caller's value, or an update() that runs its mutation a second time after
 * a lost acknowledgement — the store-level operations stay linearizable.
 * Here each update() is one operation whose mutation is known, so the model
 * can require `output.value === f(value at its linearization point)`.
 *
 * Combining: k combined update()s commit once, at one revision r, and each
 * caller gets its own value. They linearize as k consecutive updates "at"
 * revision r: an update may return the revision of the state before it when
 * that state was itself made by an update (the batch), and no read can see
 * the intermediate values (a read ends the batch), since only the last one
 * was ever stored. An update() of unknown outcome may have joined the batch
 * before it (a process killed with its batch in flight lands it whole).
 * Which process, and when, is not modelled: any update() may share the commit
 * of the update() before it, even one that returned before it began (a review
 * wrote such histories). Tracking each update()'s combiner in the state was
 * tried and dropped: it made the search of a SIGKILL run of revkit check take
 * up to 14 s and time out (1–2.5 s without it, both beside a soak), for cases the store-level model
 * and the increments check catch in a recorded run.
 */
import type { Model } from './model.js';
import { canonicalJson } from './canonical-json.js';
import { versionedKvModel, type KvCondition, type VersionedKvInput, type VersionedKvOutput, type VersionedKvState } from './versioned-kv-model.js';

/** A mutation the checker can re-run: the workload's update() functions. */
export type RecordedMutation =
  | { kind: 'increment' }
  /** Prepends `<tag><` to the current string (missing: ''), keeping 64 characters: every result names its writer. */
  | { kind: 'prepend'; tag: string };

export function applyMutation(mutation: RecordedMutation, current: unknown): unknown {
  if (mutation.kind === 'increment') return (typeof current === 'number' ? current : 0) + 1;
  return `${mutation.tag}<${String(current ?? '')}`.slice(0, 64);
}

/**
 * Store-level operations (`get` / `put` / `delete`) plus `update`. The API
 * recorder marks the put/delete calls a client made with `api: true`, to tell
 * them from the guarded puts an update() makes inside.
 */
export type ApiKvInput =
  | VersionedKvInput
  | { op: 'update'; key: string; mutation: RecordedMutation }
  | { api: true; op: 'put'; key: string; value: unknown; cond?: KvCondition }
  | { api: true; op: 'delete'; key: string; cond?: KvCondition };

/** update → the entry it returned, `{ value, revision }` (`null`: it skipped on a missing key). */
export type ApiKvOutput = VersionedKvOutput;

export interface ApiKvState extends VersionedKvState {
  /** The current revision was made by an update(), so a combined caller may still return it. */
  batch: boolean;
}

export const isApiLevel = (input: ApiKvInput): boolean => input.op === 'update' || 'api' in input;

function updateStep(s: ApiKvState, mutation: RecordedMutation, output: ApiKvOutput | undefined): [boolean, ApiKvState] {
  const next = s.known ? applyMutation(mutation, s.live ? s.value : undefined) : undefined;
  if (output === undefined) {
    // Applied exactly once at some point, or never (then it linearizes last, after everything). Applied, it may
    // have been combined into the commit of the update() before it (a killed process's batch lands whole), so
    // the revision moves on only where no update() made the state; and a batch may still follow.
    const revision = s.batch ? s.revision : s.revision + 1;
    if (!s.known) return [true, { ...s, revision, exact: false, batch: true }];
    return [true, { known: true, live: true, value: next, revision, exact: false, batch: true }];
  }
  if (output === null || !('value' in output && 'revision' in output)) return [false, s];
  const valueOk = !s.known || canonicalJson(output.value) === canonicalJson(next);
  const revisionOk = s.exact ? output.revision > s.revision || (s.batch && output.revision === s.revision) : output.revision >= s.revision;
  return [valueOk && revisionOk, { known: true, live: true, value: output.value, revision: output.revision, exact: true, batch: true }];
}

export const apiKvModel: Model<ApiKvState, ApiKvInput, ApiKvOutput> = {
  name: 'api-kv',
  keyOf: (input) => input.key,
  init: () => ({ ...versionedKvModel.init(), batch: false }),
  step(s, input, output) {
    if (input.op === 'update') return updateStep(s, input.mutation, output);
    const [ok, next] = versionedKvModel.step(s, input, output);
    return [ok, { ...next, batch: false }];
  },
  hash: (s) => `${s.batch ? 'b' : ''}${versionedKvModel.hash(s)}`,
  describeState: (s) => `${versionedKvModel.describeState!(s)}${s.batch ? ' (made by an update)' : ''}`,
  describeOperation(input, output) {
    if (input.op !== 'update') return versionedKvModel.describeOperation!(input, output);
    const m = input.mutation.kind === 'increment' ? 'n => n + 1' : `prepend ${JSON.stringify(input.mutation.tag)}`;
    const res = output === undefined ? '?' : output === null ? 'null' : 'value' in output ? `${JSON.stringify(output.value)} at revision ${output.revision}` : JSON.stringify(output);
    return `update(${JSON.stringify(input.key)}, ${m}) -> ${res}`;
  },
};
