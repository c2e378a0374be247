// Re-applying a user's edit on top of a value that changed meanwhile: the edit
// is taken as the JSON Merge Patch (RFC 7396) from what the user started from to
// what the user wrote, and applied to the current value.

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
// A member named `__proto__` stays an ordinary member (plain assignment would set the prototype).
const set = (o: Obj, k: string, v: unknown) => Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });

/** The merge patch that turns `from` into `to`. `undefined` when nothing changed. */
export function mergePatchBetween(from: unknown, to: unknown): unknown {
  if (!isObject(from) || !isObject(to)) return same(from, to) ? undefined : to;
  const patch: Obj = {};
  for (const k of Object.keys(from)) if (!Object.hasOwn(to, k)) set(patch, k, null);
  for (const [k, v] of Object.entries(to)) {
    if (!Object.hasOwn(from, k)) set(patch, k, v);
    else {
      const sub = mergePatchBetween(from[k], v);
      if (sub !== undefined) set(patch, k, sub);
    }
  }
  return Object.keys(patch).length === 0 ? undefined : patch;
}

export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: Obj = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete result[k];
    else set(result, k, applyMergePatch(Object.hasOwn(result, k) ? result[k] : undefined, v));
  }
  return result;
}

/** The user's edit (base → mine) re-applied on top of `current`. */
export function reapply(base: unknown, mine: unknown, current: unknown): unknown {
  const patch = mergePatchBetween(base, mine);
  return patch === undefined ? current : applyMergePatch(current, patch);
}
