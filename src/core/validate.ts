import type { StandardSchemaV1 } from '@standard-schema/spec';
import { RevkitError, ValidationError } from './errors.js';
import type { UpdateOptions } from './types.js';

/**
 * Runs `opts.schema` (any Standard Schema validator) and then `opts.validate`
 * on a candidate value. Returns the schema's output (schemas may normalise).
 */
export async function validateCandidate<T>(key: string, candidate: T, opts: Pick<UpdateOptions<T>, 'schema' | 'validate'>): Promise<T> {
  return validateNow(key, candidate, opts);
}

/**
 * validateCandidate() without a promise when there is nothing to wait for (no
 * schema, no validate): update()'s attempt loop takes the answer at once.
 */
export function validateNow<T>(key: string, candidate: T, opts: Pick<UpdateOptions<T>, 'schema' | 'validate'>): T | Promise<T> {
  // A forgotten `return`: refused as a value no store can hold — combined, it was taken for "no change" and dropped its neighbours' writes.
  if (candidate === undefined) throw new ValidationError([{ message: 'the mutation returned undefined: return the next value, or SKIP to change nothing' }], key);
  if (!opts.schema && !opts.validate) return candidate;
  return validateBy(key, candidate, opts);
}

async function validateBy<T>(key: string, candidate: T, opts: Pick<UpdateOptions<T>, 'schema' | 'validate'>): Promise<T> {
  let value: T = candidate;
  if (opts.schema) {
    const result = await (opts.schema as StandardSchemaV1<unknown, T>)['~standard'].validate(value);
    if (result.issues) {
      throw new ValidationError(result.issues.map((i) => ({ message: i.message, ...(i.path ? { path: i.path } : {}) })), key);
    }
    value = result.value;
  }
  if (opts.validate) {
    let verdict: void | string | boolean;
    try {
      verdict = await opts.validate(value);
    } catch (err) {
      if (RevkitError.is(err)) throw err;
      const error = new ValidationError([{ message: err instanceof Error ? err.message : String(err) }], key);
      (error as { cause?: unknown }).cause = err;
      throw error;
    }
    if (verdict === false) throw new ValidationError([{ message: 'rejected by validate()' }], key);
    if (typeof verdict === 'string') throw new ValidationError([{ message: verdict }], key);
  }
  return value;
}
