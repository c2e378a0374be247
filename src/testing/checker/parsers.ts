/**
 * Parsers for the reference histories in test/fixtures/histories, following the
 * parsers in porcupine's own tests (porcupine_test.go: parseJepsenLog and
 * parseKvLog) so that our verdicts can be compared with its known answers.
 *
 * Times are event positions (porcupine uses the event index as time too);
 * only their order matters.
 */
import type { Operation } from './history.js';
import type { CasInput, CasOutput, StringKvInput, StringKvOutput } from './reference-models.js';

export type JepsenEtcdOperation = Operation<CasInput<number>, CasOutput<number>>;
export type KvOperation = Operation<StringKvInput, StringKvOutput>;

/** Tracks the open operation of each Jepsen process. */
class Pairing<I, O> {
  readonly ops: Operation<I, O>[] = [];
  private readonly open = new Map<number, Operation<I, O>>();
  invoke(proc: number, input: I, time: number, where: string): void {
    // Jepsen never reuses a process id while its operation is open (a crashed
    // process comes back under a new id), so a reuse means a corrupt log.
    if (this.open.has(proc)) throw new Error(`${where}: process ${proc} invokes while its last operation is open`);
    const op: Operation<I, O> = { clientId: proc, input, output: undefined, call: time, return: Infinity, status: 'unknown' };
    this.open.set(proc, op);
    this.ops.push(op);
  }
  complete(proc: number, status: 'ok' | 'fail' | 'unknown', output: O | undefined, time: number, where: string): void {
    const op = this.open.get(proc);
    if (!op) throw new Error(`${where}: completion for process ${proc} with no open operation`);
    this.open.delete(proc);
    if (status === 'unknown') return; // keeps return = +infinity
    op.status = status;
    op.output = output;
    op.return = time;
  }
}

const JEPSEN_LINE = /^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*?)\s*$/;

/**
 * Jepsen etcd CAS-register logs. Semantics, as in porcupine's parser:
 * - `:ok :read nil|N` reads nothing or N; `:ok :write N` and `:ok :cas [a b]` took effect.
 * - `:fail :cas [a b]` is a definite answer "the value was not a": it is kept
 *   as an observation (output `{ ok: false }`) that the model checks.
 * - `:fail :read :timed-out` and every `:info` (e.g. `:info :cas :timed-out`),
 *   and an operation never completed, have unknown outcome.
 * - `:fail` of a write (absent from the reference logs) did not take effect and is dropped.
 * Lines of other loggers (`INFO jepsen.core …`) are skipped; a malformed
 * `jepsen.util` line is an error rather than silently ignored.
 */
export function parseJepsenEtcdLog(text: string, name = 'jepsen log'): JepsenEtcdOperation[] {
  const h = new Pairing<CasInput<number>, CasOutput<number>>();
  let time = 0;
  text.split('\n').forEach((line, i) => {
    const where = `${name}:${i + 1}`;
    if (!/jepsen\.util/.test(line)) return;
    const m = JEPSEN_LINE.exec(line);
    if (!m) throw new Error(`${where}: unrecognised line ${JSON.stringify(line)}`);
    const [, procText, type, f, arg] = m as unknown as [string, string, string, 'read' | 'write' | 'cas', string];
    const proc = Number(procText);
    const t = time++;
    const int = (s: string): number => {
      if (!/^-?\d+$/.test(s)) throw new Error(`${where}: expected an integer, got ${JSON.stringify(s)}`);
      return Number(s);
    };
    const pair = (s: string): [number, number] => {
      const p = /^\[(-?\d+)\s+(-?\d+)\]$/.exec(s);
      if (!p) throw new Error(`${where}: expected [from to], got ${JSON.stringify(s)}`);
      return [Number(p[1]), Number(p[2])];
    };
    if (type === 'invoke') {
      if (f === 'read') h.invoke(proc, { op: 'read' }, t, where);
      else if (f === 'write') h.invoke(proc, { op: 'write', value: int(arg) }, t, where);
      else {
        const [from, to] = pair(arg);
        h.invoke(proc, { op: 'cas', from, to }, t, where);
      }
      return;
    }
    if (type === 'info' || (type === 'fail' && f === 'read')) return h.complete(proc, 'unknown', undefined, t, where);
    if (type === 'fail') {
      if (f === 'cas') return h.complete(proc, 'fail', { ok: false }, t, where);
      return h.complete(proc, 'fail', undefined, t, where);
    }
    if (f === 'read') return h.complete(proc, 'ok', { value: arg === 'nil' ? null : int(arg) }, t, where);
    return h.complete(proc, 'ok', { ok: true }, t, where);
  });
  return h.ops;
}

const EDN_LINE = /^\{:process (\d+), :type :(invoke|ok|fail|info), :f :(get|put|append), :key "((?:[^"\\]|\\.)*)", :value (nil|"(?:[^"\\]|\\.)*")\}\s*$/;

/** EDN strings use the same escapes as JSON for the characters that occur here. */
const ednString = (s: string): string => JSON.parse(s) as string;

/**
 * Porcupine's key-value histories in Jepsen EDN form. `:ok` completes an
 * operation (a get's value is what it read); `:info` and never completed are
 * unknown; `:fail` did not take effect and is dropped. (porcupine's own
 * parser only knows `:invoke` and `:ok`, which is all the reference files
 * contain; it treats a never-completed get as reading "", we as unknown.)
 */
export function parseKvEdn(text: string, name = 'kv history'): KvOperation[] {
  const h = new Pairing<StringKvInput, StringKvOutput>();
  let time = 0;
  text.split('\n').forEach((line, i) => {
    const where = `${name}:${i + 1}`;
    if (line.trim() === '') return;
    const m = EDN_LINE.exec(line);
    if (!m) throw new Error(`${where}: unrecognised line ${JSON.stringify(line)}`);
    const [, procText, type, f, keyText, valueText] = m as unknown as [string, string, string, 'get' | 'put' | 'append', string, string];
    const proc = Number(procText);
    const key = ednString(`"${keyText}"`);
    const value = valueText === 'nil' ? undefined : ednString(valueText);
    const t = time++;
    if (type === 'invoke') {
      if (f === 'get') h.invoke(proc, { op: 'get', key }, t, where);
      else {
        if (value === undefined) throw new Error(`${where}: ${f} without a value`);
        h.invoke(proc, { op: f, key, value }, t, where);
      }
    } else if (type === 'ok') {
      h.complete(proc, 'ok', f === 'get' ? { value: value ?? '' } : {}, t, where);
    } else {
      h.complete(proc, type === 'fail' ? 'fail' : 'unknown', undefined, t, where);
    }
  });
  return h.ops;
}
