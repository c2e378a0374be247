/**
 * JSON Merge Patch (RFC 7396). Builds new objects instead of mutating, and
 * defines properties rather than assigning them, so a `__proto__` member is
 * an ordinary key and never reaches a prototype.
 */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: Record<string, unknown> = {};
  if (isObject(target)) for (const k of Object.keys(target)) define(result, k, target[k]);
  for (const k of Object.keys(patch)) {
    const v = patch[k];
    if (v === null) {
      delete result[k];
    } else {
      const current = Object.hasOwn(result, k) ? result[k] : undefined;
      define(result, k, applyMergePatch(current, v));
    }
  }
  return result;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function define(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}
