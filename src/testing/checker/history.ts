/**
 * History recording for the linearizability checker.
 *
 * A history is a sequence of events: an `invoke` when a client starts an
 * operation, then at most one completion (`ok`, `fail` or `unknown`). The
 * checker works on `Operation`s, which pair each invoke with its completion.
 *
 * Meaning of the completions, which the checker relies on:
 * - `ok(id, output)`: the operation took effect and returned `output`.
 * - `fail(id)`: the operation definitely did not take effect and tells us
 *   nothing about the state, so the checker drops it.
 * - `fail(id, output)`: a definite refusal that *is* an observation, such as
 *   a CAS or conditional write whose condition did not hold (`{ ok: false }`).
 *   It did not change the state, but the model checks that the refusal was
 *   justified, so it is kept.
 * - `unknown(id)`, or no completion at all (a worker killed mid-operation):
 *   the operation may have taken effect at any point after its call, or
 *   never. Its return time is +infinity and its output `undefined`.
 *
 * Times come from one monotonic clock. The default is `process.hrtime`
 * (CLOCK_MONOTONIC on Linux, shared by all processes on a host), in
 * microseconds with a fractional part, so histories written by several
 * worker processes on one machine can be merged and compared.
 */

export type ClientId = number | string;
export type OpStatus = 'ok' | 'fail' | 'unknown';

export interface Operation<I = unknown, O = unknown> {
  clientId: ClientId;
  input: I;
  /** `undefined` when the outcome is unknown (or a `fail` without observation). */
  output: O | undefined;
  call: number;
  /** `Infinity` when the outcome is unknown. */
  return: number;
  status: OpStatus;
}

export type HistoryEvent<I = unknown, O = unknown> =
  | { type: 'invoke'; id: number; clientId: ClientId; time: number; input: I }
  | { type: 'ok'; id: number; time: number; output: O }
  | { type: 'fail'; id: number; time: number; output?: O }
  | { type: 'unknown'; id: number; time: number };

export interface RecorderOptions<I, O> {
  /** Monotonic clock; defaults to `process.hrtime.bigint()` in microseconds. */
  clock?: () => number;
  /** Called with each event and its NDJSON line as it happens, e.g. to append it to a file. */
  onEvent?: (event: HistoryEvent<I, O>, line: string) => void;
}

export function hrtimeMicros(): number {
  // Dividing after conversion keeps sub-microsecond precision; Number() of
  // the raw nanoseconds only loses precision after ~104 days of uptime.
  return Number(process.hrtime.bigint()) / 1000;
}

export class HistoryRecorder<I = unknown, O = unknown> {
  private readonly log: HistoryEvent<I, O>[] = [];
  private readonly open = new Map<number, ClientId>();
  private readonly clock: () => number;
  private readonly onEvent: ((event: HistoryEvent<I, O>, line: string) => void) | undefined;
  private nextId = 0;
  private last = -Infinity;

  constructor(options: RecorderOptions<I, O> = {}) {
    this.clock = options.clock ?? hrtimeMicros;
    this.onEvent = options.onEvent;
  }

  /** Records the start of an operation and returns its id. */
  invoke(clientId: ClientId, input: I): number {
    const id = this.nextId++;
    this.open.set(id, clientId);
    this.push({ type: 'invoke', id, clientId, time: this.now(), input });
    return id;
  }

  ok(id: number, output: O): void {
    this.complete(id);
    this.push({ type: 'ok', id, time: this.now(), output });
  }

  fail(id: number, output?: O): void {
    this.complete(id);
    this.push(output === undefined ? { type: 'fail', id, time: this.now() } : { type: 'fail', id, time: this.now(), output });
  }

  unknown(id: number): void {
    this.complete(id);
    this.push({ type: 'unknown', id, time: this.now() });
  }

  events(): readonly HistoryEvent<I, O>[] {
    return this.log;
  }

  /** Pairs the events; operations still open count as unknown. */
  operations(): Operation<I, O>[] {
    return operationsFromEvents(this.log);
  }

  toNDJSON(): string {
    return this.log.map(eventToLine).join('');
  }

  private complete(id: number): void {
    if (!this.open.delete(id)) throw new Error(`history: operation ${id} is not open`);
  }

  private now(): number {
    // Strictly increasing even if the clock repeats a value, so the order of
    // events recorded by one process is never lost to a tie.
    let t = this.clock();
    if (t <= this.last) t = this.last + 1e-3;
    this.last = t;
    return t;
  }

  private push(event: HistoryEvent<I, O>): void {
    this.log.push(event);
    this.onEvent?.(event, eventToLine(event));
  }
}

/** One NDJSON line (with trailing newline). Values must be JSON-serialisable. */
export function eventToLine(event: HistoryEvent<unknown, unknown>): string {
  return JSON.stringify(event) + '\n';
}

/**
 * Parses NDJSON written by a recorder. A torn last line (the writer was
 * killed mid-write) is ignored; any other malformed line is an error.
 */
export function parseHistory<I = unknown, O = unknown>(text: string): HistoryEvent<I, O>[] {
  const lines = text.split('\n');
  const out: HistoryEvent<I, O>[] = [];
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      if (i === lines.length - 1) return;
      throw new Error(`history: line ${i + 1} is not JSON`, { cause: err });
    }
    out.push(validateEvent<I, O>(value, i + 1));
  });
  return out;
}

function validateEvent<I, O>(value: unknown, lineNo: number): HistoryEvent<I, O> {
  const v = value as Partial<Record<string, unknown>>;
  const bad = (): never => {
    throw new Error(`history: line ${lineNo} is not a history event`);
  };
  if (typeof v !== 'object' || v === null || typeof v.id !== 'number' || typeof v.time !== 'number') bad();
  switch (v.type) {
    case 'invoke':
      if (typeof v.clientId !== 'number' && typeof v.clientId !== 'string') bad();
      return v as HistoryEvent<I, O>;
    case 'ok':
    case 'fail':
    case 'unknown':
      return v as HistoryEvent<I, O>;
    default:
      return bad();
  }
}

/**
 * Pairs invokes with completions. An invoke without completion, or one
 * completed as `unknown`, becomes an operation with status `unknown`,
 * output `undefined` and return time +infinity.
 */
export function operationsFromEvents<I, O>(events: readonly HistoryEvent<I, O>[]): Operation<I, O>[] {
  const byId = new Map<number, Operation<I, O>>();
  const ops: Operation<I, O>[] = [];
  for (const e of events) {
    if (e.type === 'invoke') {
      if (byId.has(e.id)) throw new Error(`history: operation ${e.id} invoked twice`);
      const op: Operation<I, O> = { clientId: e.clientId, input: e.input, output: undefined, call: e.time, return: Infinity, status: 'unknown' };
      byId.set(e.id, op);
      ops.push(op);
      continue;
    }
    const op = byId.get(e.id);
    if (op === undefined) throw new Error(`history: completion of unknown operation ${e.id}`);
    if (op.return !== Infinity) throw new Error(`history: operation ${e.id} completed twice`);
    if (e.type === 'unknown') continue;
    op.status = e.type;
    op.return = e.time;
    op.output = e.output;
  }
  return ops;
}

/** Serialises completed operations (not events) as NDJSON; `Infinity` is written as `null`. */
export function operationsToNDJSON(ops: readonly Operation<unknown, unknown>[]): string {
  return ops.map((op) => JSON.stringify({ ...op, return: Number.isFinite(op.return) ? op.return : null }) + '\n').join('');
}

export function operationsFromNDJSON<I = unknown, O = unknown>(text: string): Operation<I, O>[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const raw = JSON.parse(l) as Operation<I, O> & { return: number | null };
      return { ...raw, return: raw.return === null ? Infinity : raw.return };
    });
}

/**
 * Merges the histories of several workers. Client ids must already be
 * distinct across workers (e.g. `"w3/c1"`); operation ids are per file and
 * do not need to be.
 */
export function mergeHistories<I, O>(...histories: readonly (readonly Operation<I, O>[])[]): Operation<I, O>[] {
  return histories.flat().sort((a, b) => a.call - b.call);
}
