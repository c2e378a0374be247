#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { RevkitError, SKIP, ValidationError, lossIn, mergePatch, type PutOptions, type Store } from '../core/index.js';
import { open } from '../open.js';
import { assertFaithfulText } from '../core/faithful.js';
import { redactText, urlSecrets } from '../core/redact.js';
import { registerServe } from './serve.js';
import { registerCheck } from './check.js';
import { registerBench } from './bench.js';
import { registerCheckpoints } from './checkpoints.js';
import { registerLock } from './lock.js';
import { registerReplication } from './replication.js';
import { parseNumber, parsePositive, parseRevision } from './args.js';

export { DEFAULT_STORE } from './default-store.js';
import { DEFAULT_STORE, storeUrl } from './default-store.js';

/** This package's version, from its package.json (two folders up from src/cli/ and from dist/cli/). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Exit codes (docs/semantics.md): 0 ok, 1 error, 2 usage, 3 precondition failed, 4 not found, 5 lock lost (`revkit lock`, `revkit elect`). */
export const EXIT = { ok: 0, error: 1, usage: 2, precondition: 3, notFound: 4, lockLost: 5 } as const;

class UsageError extends Error {}

interface Connection {
  store?: string;
  server?: string;
  token?: string;
}

async function connect(opts: Connection): Promise<Store> {
  if (opts.server) {
    const [{ HttpStore }, { unusableToken }] = await Promise.all([import('../http/index.js'), import('../server/auth.js')]);
    // Caught here, not by fetch: its error quotes the header, token and all.
    const problem = opts.token === undefined ? undefined : unusableToken(opts.token);
    if (problem !== undefined) throw new UsageError(`--token (or REVKIT_TOKEN): the token ${problem}; a bearer token is visible ASCII (! to ~)`);
    // One server, or several over one store (replicas): full URLs, comma-separated (docs/replication-http.md).
    return HttpStore.fromUrl(opts.server, opts.token ? { token: opts.token } : {});
  }
  return open(storeUrl(opts.store));
}

async function withStore<R>(cmd: Command, fn: (store: Store) => Promise<R>): Promise<R> {
  const store = await connect(cmd.optsWithGlobals<Connection>());
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** JSON from the command line; a number it cannot carry as written (12345678901234567891, 1e400) is a ValidationError (exit 2) naming its path. */
function parseJson(text: string, what: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${what} is not valid JSON: ${text.length > 60 ? `${text.slice(0, 60)}…` : text}`);
  }
  assertFaithfulText(text);
  return value;
}

function readValueArg(value: string | undefined): unknown {
  const text = value === undefined || value === '-' ? readFileSync(0, 'utf8') : value;
  return parseJson(text.trim(), 'the value');
}

function conditionFrom(opts: { ifRevision?: number; ifAbsent?: boolean; ifValue?: string }): PutOptions {
  const given = [opts.ifRevision !== undefined, opts.ifAbsent === true, opts.ifValue !== undefined].filter(Boolean).length;
  if (given > 1) throw new UsageError('give at most one of --if-revision, --if-absent, --if-value');
  if (opts.ifRevision !== undefined) return { ifRevision: opts.ifRevision };
  if (opts.ifAbsent) return { ifAbsent: true };
  if (opts.ifValue !== undefined) return { ifValue: parseJson(opts.ifValue, '--if-value') };
  return {};
}

const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

export function buildProgram(): Command {
  const program = new Command('revkit')
    .description('Shared state that never loses an update.')
    .version(VERSION, '-v, --version', 'print the version')
    .addOption(new Option('--store <url>', 'store URL (memory:, sqlite:./path.db, file:./state.json, postgres://…, nats://…, redis://…, http://revkit-server)').env('REVKIT_STORE'))
    .addOption(new Option('--server <url>', 'talk to a revkit server over HTTP instead of a store (several over one store: full URLs, comma-separated)').env('REVKIT_SERVER'))
    .addOption(new Option('--token <token>', 'bearer token for --server').env('REVKIT_TOKEN'))
    // Usage errors are one line (printed by main()), never the full help; subcommands inherit this.
    .configureOutput({ outputError: () => undefined, writeErr: () => undefined })
    .exitOverride()
    // Flags that contradict each other are refused, not quietly dropped (from the environment, they may be set for other uses).
    .hook('preAction', (root) => {
      const given = (name: string) => root.getOptionValueSource(name) === 'cli';
      if (given('server') && given('store')) throw new UsageError('give --store or --server, not both');
      if (given('token') && !root.opts<{ server?: string }>().server) throw new UsageError('--token goes with --server (a revkit server); a store URL carries its own credentials');
    });

  program.command('get <key>').description('print the value of a key (--entry: with its revision)')
    .option('--entry', 'print the whole entry: key, value, revision, createdRevision, updatedAt')
    .action(async (key: string, opts: { entry?: boolean }, cmd: Command) => withStore(cmd, async (s) => {
      const entry = await s.get(key);
      if (entry === null) throw new NotFound(key);
      print(opts.entry ? entry : entry.value);
    }));

  program.command('put <key> [json]').description('write a JSON value (from the argument or standard input)')
    .option('--if-revision <n>', 'only if the key is at this revision', parseRevision)
    .option('--if-absent', 'only if the key has no live value')
    .option('--if-value <json>', 'only if the current value equals this JSON')
    .option('--ttl <ms>', 'expire after this many milliseconds', parsePositive)
    .action(async (key: string, json: string | undefined, opts: { ifRevision?: number; ifAbsent?: boolean; ifValue?: string; ttl?: number }, cmd: Command) => {
      const value = readValueArg(json);
      const options = conditionFrom(opts);
      if (opts.ttl !== undefined) options.ttlMs = opts.ttl;
      await withStore(cmd, async (s) => print(await s.put(key, value, options)));
    });

  program.command('rm <key>').description('delete a key (writes a tombstone)')
    .option('--if-revision <n>', 'only if the key is at this revision', parseRevision)
    .option('--if-value <json>', 'only if the current value equals this JSON')
    .action(async (key: string, opts: { ifRevision?: number; ifValue?: string }, cmd: Command) => {
      const options = conditionFrom(opts);
      // Nothing to delete is "not found" (exit 4), the same directly and over HTTP (where it is a 404).
      await withStore(cmd, async (s) => {
        const revision = await s.delete(key, options);
        if (revision === null) throw new NotFound(key, 'nothing to delete');
        print({ key, revision });
      });
    });

  program.command('update <key>').description('read-modify-write with retries: --set, --merge or --incr')
    .option('--set <json>', 'replace the value')
    .option('--merge <json>', 'apply a JSON Merge Patch (RFC 7396) to the current value')
    .addOption(new Option('--incr [n]', 'add n (default 1) to a numeric value; missing counts as 0').preset('1').argParser(parseNumber))
    .option('--max-attempts <n>', 'give up after n attempts', parsePositive)
    .option('--deadline <ms>', 'give up after this long', parsePositive)
    .action(async (key: string, opts: { set?: string; merge?: string; incr?: number; maxAttempts?: number; deadline?: number }, cmd: Command) => {
      const given = [opts.set, opts.merge, opts.incr].filter((o) => o !== undefined).length;
      if (given !== 1) throw new UsageError('give exactly one of --set, --merge, --incr');
      let mutate: (current: unknown) => unknown;
      if (opts.set !== undefined) {
        const next = parseJson(opts.set, '--set');
        mutate = () => next;
      } else if (opts.merge !== undefined) {
        const patch = parseJson(opts.merge, '--merge');
        mutate = (current) => mergePatch(current, patch);
      } else {
        const by = opts.incr as number;
        mutate = (current) => {
          if (current !== undefined && typeof current !== 'number') throw new UsageError(`the value of ${key} is not a number`);
          const sum = ((current as number | undefined) ?? 0) + by;
          // Past 2^53 a sum rounds (x + 1 === x): refuse rather than store, or skip, a number that is not the sum.
          if (!Number.isFinite(sum) || (Number.isInteger(sum) && !Number.isSafeInteger(sum))) {
            throw new ValidationError([{ message: `${String(current ?? 0)} + ${String(by)} is beyond the integers a JSON number holds exactly (±2^53)` }], key);
          }
          return sum;
        };
      }
      await withStore(cmd, async (s) => {
        const entry = await s.update(key, (current) => {
          const next = mutate(current);
          return JSON.stringify(next) === JSON.stringify(current) ? SKIP : next;
        }, { ...(opts.maxAttempts ? { maxAttempts: opts.maxAttempts } : {}), ...(opts.deadline ? { deadlineMs: opts.deadline } : {}) });
        print(entry);
      });
    });

  program.command('list').description('list live entries in key order (one JSON line each)')
    .option('--prefix <prefix>', 'only keys starting with this', '')
    .option('--limit <n>', 'at most n entries', parsePositive)
    .option('--after <key>', 'start after this key (the cursor of the previous page)')
    .action(async (opts: { prefix: string; limit?: number; after?: string }, cmd: Command) => withStore(cmd, async (s) => {
      const page = await s.list({ prefix: opts.prefix, ...(opts.limit ? { limit: opts.limit } : {}), ...(opts.after !== undefined ? { after: opts.after } : {}) });
      for (const entry of page.entries) print(entry);
      if (page.cursor !== undefined) process.stderr.write(`more: --after ${JSON.stringify(page.cursor)}\n`);
    }));

  program.command('history <key>').description('past revisions of a key, newest first (one JSON line each)')
    .option('--limit <n>', 'at most n revisions', parsePositive)
    .action(async (key: string, opts: { limit?: number }, cmd: Command) => withStore(cmd, async (s) => {
      for (const record of await s.history(key, opts.limit ? { limit: opts.limit } : {})) print(record);
    }));

  program.command('watch').description('print changes as JSON lines until interrupted')
    .option('--prefix <prefix>', 'keys starting with this (default: every key)')
    .option('--key <key>', 'one key only')
    .option('--from-revision <n>', 'replay every change after this revision first', parseRevision)
    .action(async (opts: { prefix?: string; key?: string; fromRevision?: number }, cmd: Command) => withStore(cmd, async (s) => {
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      process.once('SIGTERM', () => controller.abort());
      // Both given: the store refuses it (InvalidArgumentError), rather than one of them being ignored.
      const options = { signal: controller.signal, ...(opts.key !== undefined ? { key: opts.key } : {}), ...(opts.prefix !== undefined || opts.key === undefined ? { prefix: opts.prefix ?? '' } : {}), ...(opts.fromRevision !== undefined ? { fromRevision: opts.fromRevision } : {}) };
      for await (const event of s.watch(options)) print(event);
    }));

  registerServe(program);
  registerCheck(program, DEFAULT_STORE);
  registerBench(program, DEFAULT_STORE);
  registerCheckpoints(program, DEFAULT_STORE);
  registerLock(program, connect, (text) => parseJson(text.trim(), 'the value'));
  registerReplication(program, withStore);
  return program;
}

class NotFound extends Error {
  constructor(key: string, what = 'no live value') {
    super(`not found: ${JSON.stringify(key)} (${what})`);
  }
}

/** What to do about an authentication failure, on the same line. */
const HINTS: Partial<Record<string, string>> = {
  ERR_UNAUTHORIZED: 'give a valid token with --token or REVKIT_TOKEN',
  ERR_FORBIDDEN: 'the token lacks the scope this needs; use a token with access to this key or prefix',
  ERR_DATA_LOST: 'see `revkit status`; an operator accepts the loss with `revkit accept-loss`',
};

const oneLine = (text: string) => text.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim();

/** One line on stderr, never a stack trace; the exit code says what kind of failure. */
export function exitCodeFor(err: unknown): { code: number; message: string } {
  if (err instanceof CommanderError) {
    if (err.exitCode === 0) return { code: EXIT.ok, message: '' };
    // `revkit` alone (commander would print the whole help on stderr).
    if (err.code === 'commander.help') return { code: EXIT.usage, message: 'give a command; `revkit --help` lists them' };
    return { code: EXIT.usage, message: `${oneLine(err.message)} (see --help)` };
  }
  if (err instanceof UsageError) return { code: EXIT.usage, message: err.message };
  if (err instanceof NotFound) return { code: EXIT.notFound, message: err.message };
  if (RevkitError.is(err)) {
    const code = err.code === 'ERR_CONFLICT' ? EXIT.precondition
      : err.code === 'ERR_LOCK_LOST' ? EXIT.lockLost
      : ['ERR_INVALID_ARGUMENT', 'ERR_INVALID_KEY', 'ERR_VALIDATION', 'ERR_TOO_LARGE'].includes(err.code) ? EXIT.usage
      : EXIT.error;
    const hint = HINTS[err.code];
    return { code, message: oneLine(`${err.code}: ${err.message}${lossNamed(err)}${hint ? ` (${hint})` : ''}`) };
  }
  return { code: EXIT.error, message: oneLine(`${err instanceof Error ? err.message : String(err)}${lossNamed(err)}`) };
}

/** A loss reported as a cause (an outcome unknown over it) may be the only report of it anyone gets: named on the line. */
function lossNamed(err: unknown): string {
  if (RevkitError.is(err) && err.code === 'ERR_DATA_LOST') return '';
  const loss = lossIn(err);
  if (!loss) return '';
  let message: string;
  try {
    message = String(loss.message ?? 'acknowledged writes were lost');
  } catch {
    message = 'acknowledged writes were lost';
  }
  return `; the store reported a loss: ${message} (${HINTS.ERR_DATA_LOST})`;
}

export async function main(argv = process.argv): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    const { code, message } = exitCodeFor(err);
    // A driver or a URL check may quote the store URL, its password or the token (DESIGN §6).
    const { store, server, token } = program.opts<Connection>();
    const secrets = [...urlSecrets(store ?? ''), ...urlSecrets(server ?? ''), ...(token ? [token] : [])];
    if (message) process.stderr.write(`revkit: ${redactText(message, secrets)}\n`);
    return code;
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolveLink(process.argv[1])).href;
if (invokedDirectly) {
  main().then((code) => {
    // A command may have set its own exit code (check: 1 when not linearizable).
    if (code !== EXIT.ok || process.exitCode === undefined) process.exitCode = code;
  });
}

// npm installs the bin as a symlink; compare the real file.
function resolveLink(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
