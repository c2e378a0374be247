import { createHash } from 'node:crypto';
import { canonicalJson as canonicalJsonOf } from '../core/index.js';

/**
 * Canonical JSON (RFC 8785) of a payload or result: anything JSON cannot carry
 * faithfully is refused, so two different payloads never share a hash.
 */
export function canonicalJson(value: unknown): string {
  return canonicalJsonOf(value, 'an exactly-once payload or result (or a Uint8Array payload)');
}

/** SHA-256 (base64url) of a payload: of its bytes when it is a Uint8Array, else of its canonical JSON. */
export function payloadHash(payload: unknown): string {
  const hash = createHash('sha256');
  if (payload instanceof Uint8Array) hash.update('bytes:').update(payload);
  else hash.update('json:').update(canonicalJson(payload), 'utf8');
  return hash.digest('base64url');
}
