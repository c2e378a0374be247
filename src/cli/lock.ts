import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { CommanderError, InvalidArgumentError as CommanderArgumentError, type Command } from 'commander';
import { ConflictError, LockLostError, type Store } from '../core/index.js';
import { DEFAULT_PREFIX, DEFAULT_TTL_MS, MAX_TTL_MS, MIN_TTL_MS, openSession, type Lock } from '../lock/index.js';

/**
 * `revkit lock NAME -- cmd args…` and `revkit elect NAME VALUE -- cmd args…`:
 * run a command while holding a lock (or leading an election), with the
 * lock's fence in its environment. The exit codes (docs/semantics.md, "CLI
 * exit codes"): the command's own; 5 when the lock was lost while it ran
 * (a LockLostError, which main() maps to 5); 1 when --wait ran out or the
 * store failed; 2 for bad usage; 128 + n when signal n ended the command,
 * or interrupted revkit before the command started; 126 / 127 when the
 * command could not be run / was not found (as a shell says).
 */

interface Connection {
  store?: string;
  server?: string;
  token?: string;
}

interface HoldOptions {
  ttl: number;
  wait?: number;
  prefix: string;
  killAfter?: number;
}

/** Signals revkit passes on to the command (and that stop a wait for the lock). */
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

const CANNOT_RUN = 126;
const NOT_FOUND = 127;

export function registerLock(program: Command, connect: (opts: Connection) => Promise<Store>, parseValue: (text: string) => unknown): void {
  const withOptions = (cmd: Command) => cmd
    .option('--ttl <ms>', 'how long the store keeps the lock after the last keepalive (kept alive every ttl/3); a holder that cannot keep it alive gives it up, and stops the command, before that', parseTtl, DEFAULT_TTL_MS)
    .option('--wait <ms>', 'give up (exit 1) when not acquired within this many milliseconds; 0: only if free right now (default: wait as long as it takes)', parseMs)
    .option('--prefix <prefix>', 'where lock keys live: the lock key is prefix + name', DEFAULT_PREFIX)
    .option('--kill-after <ms>', 'when the lock is lost, SIGKILL the command this many milliseconds after SIGTERM, at most a day (default: half the time between the holder giving up and the store letting the next one in, a tenth of --ttl)', parseKillAfter)
    .addHelpText('after', `
The command runs with its standard input and output, and in its environment
REVKIT_FENCE (a number that grows with every new holder of this lock: hand it
to whatever the command writes, so that writes of a holder that lost the lock
can be refused) and REVKIT_LOCK (the name).

SIGINT, SIGTERM and SIGHUP sent to revkit are passed on to the command, and
revkit exits as it does. If the lock is lost while the command runs (the store
could not be reached to keep it alive, or the lock key was deleted), the
command gets SIGTERM, then SIGKILL after --kill-after, and revkit exits 5.
When standard input is not a terminal, the command runs in a process group
of its own and signals go to the whole group (a script's children too);
from a terminal they go to the command's own process (a group of its own
could not read the terminal), and Ctrl-C reaches it from the terminal
directly. If revkit itself is killed with SIGKILL the command keeps running
without the lock: hand REVKIT_FENCE to what it writes.

Exit codes: the command's own (128 + n when signal n ended it); 5 the lock was
lost while the command ran; 1 not acquired within --wait, or the store failed;
2 bad usage; 126 / 127 the command could not be run / was not found; 128 + n
revkit got signal n before the command started.`);

  withOptions(program.command('lock').argument('<name>').argument('[cmd...]'))
    .usage('NAME [options] -- cmd [args...]')
    .description('run a command while holding the lock NAME (waiting for it in arrival order); it is released when the command ends')
    .action(async (name: string, args: string[], opts: HoldOptions, cmd: Command) => {
      const argv = commandAfterDashes(cmd, args, 'revkit lock NAME [options] -- cmd [args...]');
      await runHolding(cmd, connect, opts, name, argv, (session, signal) => session.lock(name, { signal, ...waitOf(opts) }));
    });

  withOptions(program.command('elect').argument('<name>').argument('<value>').argument('[cmd...]'))
    .usage('NAME VALUE [options] -- cmd [args...]')
    .description('campaign in the election NAME announcing the JSON VALUE, and run a command while leader; leadership ends with the command')
    .action(async (name: string, json: string, args: string[], opts: HoldOptions, cmd: Command) => {
      const argv = commandAfterDashes(cmd, args, 'revkit elect NAME VALUE [options] -- cmd [args...]');
      const value = parseValue(json);
      await runHolding(cmd, connect, opts, name, argv, (session, signal) => session.campaign(name, value, { signal, ...waitOf(opts) }));
    });
}

const waitOf = (opts: HoldOptions) => (opts.wait === undefined ? {} : { waitMs: opts.wait });

function parseMs(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw new CommanderArgumentError('must be a non-negative integer (milliseconds)');
  return n;
}

/** A day at most, as --ttl: a timer past 2^31 - 1 ms would fire at once (SIGKILL right after SIGTERM). */
function parseKillAfter(text: string): number {
  const n = parseMs(text);
  if (n > MAX_TTL_MS) throw new CommanderArgumentError(`must be at most ${MAX_TTL_MS} (milliseconds: a day)`);
  return n;
}

function parseTtl(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < MIN_TTL_MS || n > MAX_TTL_MS) throw new CommanderArgumentError(`must be an integer of at least ${MIN_TTL_MS} and at most ${MAX_TTL_MS} (milliseconds: a day)`);
  return n;
}

/**
 * The command to run: the operands after `--`. Commander drops the `--`
 * itself, so it is looked for in the raw arguments: the operands must be
 * exactly what follows the last `--`. Without it the command's own options
 * would be taken for revkit's, so it is required.
 */
function commandAfterDashes(cmd: Command, operands: string[], usage: string): string[] {
  let root = cmd;
  while (root.parent) root = root.parent;
  const raw = (root as unknown as { rawArgs?: string[] }).rawArgs ?? process.argv;
  const at = raw.length - operands.length - 1;
  const dashed = at >= 0 && raw[at] === '--' && operands.every((arg, i) => raw[at + 1 + i] === arg);
  if (operands.length === 0) throw usageError(`give the command to run after --: ${usage}`);
  if (!dashed) throw usageError(`the command to run goes after --, so that its options are not taken for revkit's: ${usage}`);
  return operands;
}

const usageError = (message: string) => new CommanderError(2, 'revkit.usage', message);

type Acquire = (session: Awaited<ReturnType<typeof openSession>>, signal: AbortSignal) => Promise<Lock>;

async function runHolding(cmd: Command, connect: (opts: Connection) => Promise<Store>, opts: HoldOptions, name: string, argv: string[], acquire: Acquire): Promise<void> {
  const store = await connect(cmd.optsWithGlobals<Connection>());
  try {
    const session = await openSession(store, { ttlMs: opts.ttl, prefix: opts.prefix }).catch((err: unknown) => {
      // A session key held by another writer is no failed condition of the caller's (exit 3): it could not start (exit 1).
      if (ConflictError.is(err)) throw new Error(`could not open a session in the store: ${err.message}`, { cause: err });
      throw err;
    });
    // From here on SIGINT, SIGTERM and SIGHUP stop the wait, or go to the command; until here they end revkit as usual.
    const signals = new Signals();
    try {
      let held: Lock;
      try {
        held = await acquire(session, signals.stop.signal);
      } catch (err) {
        if (signals.received) return interrupted(signals.received, `while waiting for the lock ${JSON.stringify(name)}`);
        // The session's own key could not be kept alive: an outage (exit 1), not a lock lost by a running command (exit 5).
        if (LockLostError.is(err)) throw new Error(`could not keep a session in the store while waiting for the lock ${JSON.stringify(name)}: ${err.message}`, { cause: err });
        throw err;
      }
      let outcome: Outcome;
      try {
        // SIGKILL lands before the store lets the next holder in: the holder gives up ttl/5 before that.
        const killAfter = opts.killAfter ?? Math.floor(opts.ttl / 10);
        outcome = signals.received ? { kind: 'interrupted' } : await runCommand(held, argv, killAfter, signals);
      } finally {
        await held.release().catch(() => undefined);
      }
      report(outcome, signals, held, argv[0] as string);
    } finally {
      try {
        await session.close();
      } finally {
        signals.dispose();
      }
    }
  } finally {
    await store.close();
  }
}

type Outcome =
  | { kind: 'exited'; code: number | null; signal: NodeJS.Signals | null }
  | { kind: 'lost'; err: LockLostError; started: boolean; killed: boolean }
  | { kind: 'not-run'; err: NodeJS.ErrnoException }
  | { kind: 'interrupted' };

/** What revkit says and exits with, once the lock is released. */
function report(outcome: Outcome, signals: Signals, held: Lock, file: string): void {
  switch (outcome.kind) {
    case 'exited':
      process.exitCode = outcome.code ?? 128 + signalNumber(outcome.signal);
      return;
    case 'interrupted':
      return interrupted(signals.received!, `before the command started (the lock ${JSON.stringify(held.name)} was acquired and released)`);
    case 'not-run': {
      const code = outcome.err.code === 'ENOENT' ? NOT_FOUND : CANNOT_RUN;
      process.stderr.write(`revkit: cannot run ${JSON.stringify(file)}: ${outcome.err.code === 'ENOENT' ? 'command not found' : outcome.err.message}\n`);
      process.exitCode = code;
      return;
    }
    case 'lost': {
      const { err } = outcome;
      const what = !outcome.started ? 'the command was not started' : `the command was stopped with SIGTERM${outcome.killed ? ', then SIGKILL' : ''}`;
      throw new LockLostError(`${err.message}; ${what}`, err.details, { cause: err });
    }
  }
}

function interrupted(signal: NodeJS.Signals, when: string): void {
  process.stderr.write(`revkit: interrupted by ${signal} ${when}\n`);
  process.exitCode = 128 + signalNumber(signal);
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return (signal && constants.signals[signal]) || 0;
}

/** Runs the command while `held` lasts; stops it (SIGTERM, then SIGKILL after `killAfterMs`) when the lock is lost. */
function runCommand(held: Lock, argv: string[], killAfterMs: number, signals: Signals): Promise<Outcome> {
  const lostNow = () => ({ kind: 'lost' as const, err: held.signal.reason as LockLostError, started: false, killed: false });
  if (held.signal.aborted) return Promise.resolve(lostNow());
  return new Promise((resolve) => {
    const env = { ...process.env, REVKIT_FENCE: String(held.fence), REVKIT_LOCK: held.name };
    // Not from a terminal: a process group of its own, so that a lost lock stops a script's children too.
    const group = !process.stdin.isTTY;
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: 'inherit', env, detached: group });
    let lost: LockLostError | undefined;
    let killed = false;
    let killTimer: NodeJS.Timeout | undefined;
    const onLost = () => {
      lost = held.signal.reason as LockLostError;
      signalCommand(child, 'SIGTERM', group);
      killTimer = setTimeout(() => {
        killed = true;
        signalCommand(child, 'SIGKILL', group);
      }, killAfterMs);
    };
    held.signal.addEventListener('abort', onLost, { once: true });
    const done = (outcome: Outcome) => {
      held.signal.removeEventListener('abort', onLost);
      clearTimeout(killTimer);
      signals.forwardTo(undefined);
      resolve(outcome);
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      // Only a spawn that failed ends here without an 'exit' (a failed kill of a running child is no outcome).
      if (child.pid === undefined) done({ kind: 'not-run', err });
    });
    child.once('exit', (code, signal) => {
      done(lost ? { kind: 'lost', err: lost, started: true, killed: killed && signal === 'SIGKILL' } : { kind: 'exited', code, signal });
    });
    if (child.pid !== undefined) signals.forwardTo(child, group);
  });
}

function signalCommand(child: ChildProcess, signal: NodeJS.Signals, group: boolean): void {
  try {
    if (group && child.pid !== undefined) process.kill(-child.pid, signal);
    else child.kill(signal);
  } catch {
    // Already gone.
  }
}

/**
 * SIGINT, SIGTERM and SIGHUP for as long as revkit runs: while it waits for
 * the lock they stop the wait; while the command runs they are passed on to
 * it (and revkit exits as the command does).
 */
class Signals {
  readonly stop = new AbortController();
  received: NodeJS.Signals | undefined;
  private child: ChildProcess | undefined;
  private group = false;
  private readonly handlers: Array<[NodeJS.Signals, () => void]> = [];

  constructor() {
    for (const signal of FORWARDED) {
      const handler = () => {
        this.received ??= signal;
        // A terminal's Ctrl-C already reached a command in revkit's own process group: not a second time.
        if (this.child && !(signal === 'SIGINT' && !this.group && process.stdin.isTTY)) signalCommand(this.child, signal, this.group);
        else if (!this.child) this.stop.abort();
      };
      this.handlers.push([signal, handler]);
      process.on(signal, handler);
    }
  }

  forwardTo(child: ChildProcess | undefined, group = false): void {
    this.child = child;
    this.group = group;
  }

  dispose(): void {
    for (const [signal, handler] of this.handlers) process.off(signal, handler);
  }
}
