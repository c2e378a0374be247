import { Option, type Command } from 'commander';
import { InvalidArgumentError, type Store } from '../core/index.js';
import { open } from '../open.js';
import { checkpoints, isResumeKey, resumeKeyOfJson, type Checkpoints, type Cursor } from '../checkpoints/index.js';
import { parseRevision } from './args.js';
import { storeUrl } from './default-store.js';

/** docs/semantics.md, "CLI exit codes": not found. */
const EXIT_NOT_FOUND = 4;

interface Common {
  prefix: string;
  identity?: string;
}

/** `revkit checkpoints list|get|reset`: inspect and rewind the resume cursors of consumers. */
export function registerCheckpoints(program: Command, defaultStore: string): void {
  const group = program.command('checkpoints').description('list, show or reset the resume cursors stored under a prefix');
  const prefixOption = () => new Option('--prefix <prefix>', 'where the cursors are stored (the prefix given to checkpoints())').makeOptionMandatory();
  const identityOption = () => new Option('--identity <json>', 'name the cursor by the JSON identity of its subscription instead of its resume key');

  group.command('list').description('every cursor under the prefix, one JSON line each')
    .addOption(prefixOption())
    .action(async (opts: Common, cmd: Command) => withCheckpoints(cmd, defaultStore, opts, async (cps) => {
      for (const { key, cursor } of await cps.list()) print({ key, ...cursor });
    }));

  group.command('get [key]').description('print one cursor; exit 4 when there is none')
    .addOption(prefixOption())
    .addOption(identityOption())
    .action(async (key: string | undefined, opts: Common, cmd: Command) => withCheckpoints(cmd, defaultStore, opts, async (cps) => {
      const resume = resumeKeyFrom(key, opts);
      const cursor = await cps.get(resume);
      if (cursor === null) return notFound(resume);
      print({ key: resume, ...cursor });
    }));

  group.command('reset [key]').description('move a cursor back to --sequence (or remove it, so its consumer starts from the beginning)')
    .addOption(prefixOption())
    .addOption(identityOption())
    .option('--sequence <n>', 'put the cursor at this sequence instead of removing it', parseRevision)
    .option('--event-id <id>', 'the event id to store with --sequence')
    .action(async (key: string | undefined, opts: Common & { sequence?: number; eventId?: string }, cmd: Command) => withCheckpoints(cmd, defaultStore, opts, async (cps) => {
      const resume = resumeKeyFrom(key, opts);
      if (opts.eventId !== undefined && opts.sequence === undefined) throw new InvalidArgumentError('--event-id needs --sequence');
      const to: Cursor | undefined = opts.sequence === undefined ? undefined : { sequence: opts.sequence, ...(opts.eventId !== undefined ? { eventId: opts.eventId } : {}) };
      if (to === undefined && (await cps.get(resume)) === null) return notFound(resume);
      print({ key: resume, cursor: await cps.reset(resume, to) });
    }));
}

async function withCheckpoints(cmd: Command, defaultStore: string, opts: Common, fn: (cps: Checkpoints) => Promise<void>): Promise<void> {
  const url = storeUrl(cmd.optsWithGlobals<{ store?: string }>().store ?? defaultStore);
  const store: Store = await open(url);
  try {
    await fn(checkpoints(store, { prefix: opts.prefix }));
  } finally {
    await store.close();
  }
}

function resumeKeyFrom(key: string | undefined, opts: Common): string {
  if ((key === undefined) === (opts.identity === undefined)) throw new InvalidArgumentError('give either a resume key or --identity <json>');
  if (opts.identity !== undefined) return resumeKeyOfJson(opts.identity);
  if (!isResumeKey(key)) throw new InvalidArgumentError(`not a resume key (64 lowercase hex digits): ${JSON.stringify(key)}`);
  return key;
}

function notFound(key: string): void {
  process.stderr.write(`revkit: not found: no checkpoint ${key}\n`);
  process.exitCode = EXIT_NOT_FOUND;
}

const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
