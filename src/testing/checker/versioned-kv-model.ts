import type { Model } from './model.js';
import { canonicalJson, same, show } from './canonical-json.js';

/**
 * The revkit versioned key-value store (docs/semantics.md, "Keys, values, revisions" and "Operations"), one key per
 * partition. Produced by `revkit check` workers calling a Store; an `update`
 * is recorded as its final guarded `put`.
 */
export type KvCondition = { ifAbsent: true } | { ifRevision: number } | { ifValue: unknown };
export type VersionedKvInput =
  | { op: 'get'; key: string }
  | { op: 'put'; key: string; value: unknown; cond?: KvCondition }
  | { op: 'delete'; key: string; cond?: KvCondition };
/**
 * get → the live entry `{ value, revision }` or `null`;
 * put → `{ ok: true, revision }` (the new entry's revision);
 * delete → `{ ok: true, revision }` (the tombstone's) or `{ ok: true, revision: null }` (nothing there);
 * a ConflictError → `{ ok: false }`, with `actual` (the key's current revision, `null` if never written) when known.
 */
export type VersionedKvOutput = { value: unknown; revision: number } | null | { ok: true; revision: number | null } | { ok: false; actual?: number | null };

/**
 * Revisions are opaque increasing integers, so after a write with unknown
 * outcome the state only knows a lower bound (`exact: false`: current
 * revision ≥ `revision`), and after a conditional write whose condition we
 * cannot decide, not even the value (`known: false`). Later observations
 * pin the state again. Both only ever widen what is accepted: no false alarms.
 */
export interface VersionedKvState {
  known: boolean;
  live: boolean;
  value: unknown;
  /** Exact current revision (0 = never written), or a lower bound when `!exact`. */
  revision: number;
  exact: boolean;
}

type Verdict = 'yes' | 'no' | 'maybe';
function holds(s: VersionedKvState, cond: KvCondition | undefined): Verdict {
  if (!cond) return 'yes';
  if ('ifRevision' in cond) return s.exact ? (s.revision === cond.ifRevision ? 'yes' : 'no') : cond.ifRevision >= s.revision ? 'maybe' : 'no';
  if (!s.known) return 'maybe';
  if ('ifAbsent' in cond) return s.live ? 'no' : 'yes';
  return s.live && same(s.value, cond.ifValue) ? 'yes' : 'no';
}
/** What a condition that held tells us about a state where it was only 'maybe'. */
function assume(s: VersionedKvState, cond: KvCondition | undefined): VersionedKvState {
  if (!cond) return s;
  if ('ifRevision' in cond) return { ...s, revision: cond.ifRevision, exact: true };
  if ('ifAbsent' in cond) return { ...s, known: true, live: false, value: null };
  return { ...s, known: true, live: true, value: cond.ifValue };
}
const havoc = (s: VersionedKvState): VersionedKvState => ({ known: false, live: false, value: null, revision: s.revision, exact: false });
const revisionIs = (s: VersionedKvState, r: number): boolean => (s.exact ? s.revision === r : r >= s.revision);

function writeStep(s: VersionedKvState, input: Exclude<VersionedKvInput, { op: 'get' }>, output: VersionedKvOutput | undefined): [boolean, VersionedKvState] {
  const isPut = input.op === 'put';
  const after = (rev: number, exact: boolean): VersionedKvState =>
    isPut ? { known: true, live: true, value: input.value, revision: rev, exact } : { known: true, live: false, value: null, revision: rev, exact };
  if (output === undefined) {
    const v = holds(s, input.cond);
    if (v === 'no') return [true, s];
    if (v === 'maybe') return [true, havoc(s)];
    if (isPut || !s.known || s.live) return [true, after(s.revision + 1, false)];
    return [true, s]; // delete of nothing writes nothing
  }
  if (output === null || !('ok' in output)) return [false, s];
  if (!output.ok) {
    let st = s;
    if (output.actual !== undefined) {
      const actual = output.actual ?? 0;
      if (!revisionIs(st, actual)) return [false, s];
      st = { ...st, revision: actual, exact: true };
    }
    return [holds(st, input.cond) !== 'yes', st];
  }
  if (holds(s, input.cond) === 'no') return [false, s];
  const st = assume(s, input.cond);
  if (output.revision === null) {
    // Only a delete finding nothing there may report no revision.
    return [!isPut && !(st.known && st.live), { ...st, known: true, live: false, value: null }];
  }
  if (!isPut && st.known && !st.live) return [false, s];
  return [output.revision > st.revision, after(output.revision, true)];
}

export const versionedKvModel: Model<VersionedKvState, VersionedKvInput, VersionedKvOutput> = {
  name: 'versioned-kv',
  keyOf: (input) => input.key,
  init: () => ({ known: true, live: false, value: null, revision: 0, exact: true }),
  step(s, input, output) {
    if (input.op !== 'get') return writeStep(s, input, output);
    if (output === undefined) return [true, s];
    if (output !== null && !('value' in output && 'revision' in output)) return [false, s];
    if (output === null) return [!(s.known && s.live), { ...s, known: true, live: false, value: null }];
    const ok = (!s.known || (s.live && same(s.value, output.value))) && revisionIs(s, output.revision);
    return [ok, { known: true, live: true, value: output.value, revision: output.revision, exact: true }];
  },
  hash: (s) => `${s.known ? 'k' : '?'}${s.live ? 'l' : 'd'}${s.exact ? '=' : '>='}${s.revision}:${s.known && s.live ? canonicalJson(s.value) : ''}`,
  describeState: (s) =>
    `${s.known ? (s.live ? show(s.value) : 'absent') : 'value unknown'} at revision ${s.exact ? '' : '≥ '}${s.revision}`,
  describeOperation(input, output) {
    const c = input.op === 'get' || !input.cond ? '' : ', ' + canonicalJson(input.cond);
    const call = input.op === 'put' ? `put(${show(input.key)}, ${show(input.value)}${c})` : `${input.op}(${show(input.key)}${c})`;
    if (output === undefined) return `${call} -> ?`;
    if (output === null) return `${call} -> null`;
    if ('ok' in output) return `${call} -> ${output.ok ? `ok, revision ${String(output.revision)}` : `conflict${output.actual !== undefined ? ` (actual ${String(output.actual)})` : ''}`}`;
    return `${call} -> ${show(output.value)} at revision ${output.revision}`;
  },
};
