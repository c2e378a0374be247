import { createHash } from 'node:crypto';
import { InvalidArgumentError, canonicalJson as canonicalJsonOf } from '../core/index.js';

/** Canonical JSON (RFC 8785) of a subscription identity; see core's canonicalJson. */
export function canonicalJson(identity: unknown): string {
  return canonicalJsonOf(identity, 'a subscription identity');
}

/**
 * The resume key of a subscription: SHA-256 (lowercase hex) of the canonical
 * JSON of whatever identifies it — e.g. `{ stream: 'orders', consumer: 'billing' }`.
 * A JSON text (string) is also accepted via `resumeKeyOfJson`, so that `1.0`
 * and `1e0` written by another program give the same key as `1`.
 */
export function resumeKey(identity: unknown): string {
  if (identity === undefined) throw new InvalidArgumentError('resumeKey() needs the identity of a subscription');
  return createHash('sha256').update(canonicalJson(identity), 'utf8').digest('hex');
}

/** `resumeKey` of an identity given as JSON text (as a CLI or another language would give it). */
export function resumeKeyOfJson(text: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new InvalidArgumentError(`the subscription identity is not valid JSON: ${text.length > 60 ? `${text.slice(0, 60)}…` : text}`, { cause });
  }
  return resumeKey(parsed);
}

const RESUME_KEY = /^[0-9a-f]{64}$/;

export function isResumeKey(key: unknown): key is string {
  return typeof key === 'string' && RESUME_KEY.test(key);
}
