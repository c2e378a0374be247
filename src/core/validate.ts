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

/** Synchronous when the schema and validate() answer at once: update() can then apply the mutation inside SQLite's write transaction. */
function validateBy<T>(key: string, candidate: T, opts: Pick<UpdateOptions<T>, 'schema' | 'validate'>): T | Promise<T> {
  if (!opts.schema) return runValidate(key, candidate, opts);
  const result = (opts.schema as StandardSchemaV1<unknown, T>)['~standard'].validate(candidate);
  if (isThenable(result)) return Promise.resolve(result).then((r) => afterSchema(key, r, opts));
  return afterSchema(key, result, opts);
}

function afterSchema<T>(key: string, result: StandardSchemaV1.Result<T>, opts: Pick<UpdateOptions<T>, 'validate'>): T | Promise<T> {
  if (result.issues) {
    throw new ValidationError(result.issues.map((i) => ({ message: i.message, ...(i.path ? { path: i.path } : {}) })), key);
  }
  return runValidate(key, result.value, opts);
}

function runValidate<T>(key: string, value: T, opts: Pick<UpdateOptions<T>, 'validate'>): T | Promise<T> {
  if (!opts.validate) return value;
  let verdict: void | string | boolean | Promise<void | string | boolean>;
  try {
    verdict = opts.validate(value);
  } catch (err) {
    throw asValidationError(key, err);
  }
  if (isThenable(verdict)) return Promise.resolve(verdict).then((v) => judged(key, value, v), (err: unknown) => { throw asValidationError(key, err); });
  return judged(key, value, verdict);
}

function judged<T>(key: string, value: T, verdict: void | string | boolean): T {
  if (verdict === false) throw new ValidationError([{ message: 'rejected by validate()' }], key);
  if (typeof verdict === 'string') throw new ValidationError([{ message: verdict }], key);
  return value;
}

function asValidationError(key: string, err: unknown): unknown {
  if (RevkitError.is(err)) return err;
  const error = new ValidationError([{ message: err instanceof Error ? err.message : String(err) }], key);
  (error as { cause?: unknown }).cause = err;
  return error;
}

export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}
