// Re-applying a user's edit on top of a value that changed meanwhile: a
// three-way merge where the members the user changed, added or removed (from
// the value they started from) are applied to the current value, and every
// other member keeps its current state. Unlike a JSON Merge Patch, setting a
// member to null stays a null.

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
// A member named `__proto__` stays an ordinary member (plain assignment would set the prototype).
const set = (o: Obj, k: string, v: unknown) => Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });

/** The user's edit (base → mine) applied to `current`; objects merge member by member, anything else is the user's. */
export function reapply(base: unknown, mine: unknown, current: unknown): unknown {
  if (same(base, mine)) return current;
  if (!isObject(base) || !isObject(mine) || !isObject(current)) return mine;
  const result: Obj = { ...current };
  for (const k of Object.keys(base)) if (!Object.hasOwn(mine, k)) delete result[k];
  for (const [k, v] of Object.entries(mine)) {
    if (Object.hasOwn(base, k) && same(base[k], v)) continue;
    set(result, k, Object.hasOwn(base, k) && Object.hasOwn(current, k) ? reapply(base[k], v, current[k]) : v);
  }
  return result;
}
