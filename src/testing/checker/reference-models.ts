// The models of the reference histories (test/fixtures/histories): Jepsen's etcd register and porcupine's key-value logs.
import type { Model } from './model.js';
import { canonicalJson, same, show } from './canonical-json.js';

/** A single compare-and-swap register; `null` is "never written". */
export type CasInput<V = unknown> = { op: 'read' } | { op: 'write'; value: V } | { op: 'cas'; from: V; to: V };
/** read → `{ value }`; write → `{ ok: true }`; cas → `{ ok }` (`ok: false`: the value was not `from`). */
export type CasOutput<V = unknown> = { value: V | null } | { ok: boolean };

export const casRegisterModel: Model<unknown, CasInput, CasOutput> = {
  name: 'cas-register',
  init: () => null,
  step(state, input, output) {
    switch (input.op) {
      case 'read':
        return [output === undefined || ('value' in output && same(output.value, state)), state];
      case 'write':
        return [true, input.value];
      case 'cas': {
        const matches = same(state, input.from);
        const next = matches ? input.to : state;
        return [output === undefined || ('ok' in output && output.ok === matches), next];
      }
    }
  },
  hash: canonicalJson,
  describeState: show,
  describeOperation(input, output) {
    if (input.op === 'read') return `read() -> ${output === undefined ? '?' : 'value' in output ? show(output.value) : show(output)}`;
    const res = output === undefined ? '?' : 'ok' in output ? (output.ok ? 'ok' : 'fail') : show(output);
    return input.op === 'write' ? `write(${show(input.value)}) -> ${res}` : `cas(${show(input.from)}, ${show(input.to)}) -> ${res}`;
  },
};

/** Porcupine's string key-value store (get / put / append), one key per partition. */
export type StringKvInput = { op: 'get'; key: string } | { op: 'put'; key: string; value: string } | { op: 'append'; key: string; value: string };
/** get → `{ value }` (missing key reads as ""); put and append → `{}`. */
export type StringKvOutput = { value?: string };

export const stringKvModel: Model<string, StringKvInput, StringKvOutput> = {
  name: 'string-kv',
  keyOf: (input) => input.key,
  init: () => '',
  step(state, input, output) {
    if (input.op === 'get') return [output === undefined || output.value === state, state];
    return [true, input.op === 'put' ? input.value : state + input.value];
  },
  hash: (s) => s,
  describeState: show,
  describeOperation(input, output) {
    if (input.op === 'get') return `get(${show(input.key)}) -> ${show(output?.value)}`;
    return `${input.op}(${show(input.key)}, ${show(input.value)})`;
  },
};
