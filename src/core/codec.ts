import { ValidationError } from './errors.js';
import type { Codec } from './types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export const jsonCodec: Codec = {
  name: 'json',
  encode(value) {
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (err) {
      throw new ValidationError([{ message: `value cannot be encoded as JSON: ${(err as Error).message}` }]);
    }
    if (text === undefined) throw new ValidationError([{ message: `value of type ${typeof value} cannot be encoded as JSON` }]);
    return encoder.encode(text);
  },
  decode(bytes) {
    return JSON.parse(decoder.decode(bytes));
  },
};

/** Stores bytes as they are; values must be Uint8Array (or Buffer). */
export const rawCodec: Codec = {
  name: 'raw',
  encode(value) {
    if (!(value instanceof Uint8Array)) throw new ValidationError([{ message: 'the raw codec stores only Uint8Array values' }]);
    return value;
  },
  decode(bytes) {
    return bytes;
  },
};
