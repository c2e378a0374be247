// `revkit lock NAME -- cmd` and `revkit elect NAME VALUE -- cmd`, spawned from
// the built CLI (npm run build first) against real stores: a SQLite file, the
// machine's PostgreSQL (a private table prefix, dropped afterwards), and a
// `revkit serve` reached with --server/--token. Every verdict waits on a
// condition (a line in a log, a key in the store, a process's exit), never on
// how long something took.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { open } from '../src/open.js';
import { HttpStore } from '../src/http/index.js';
import { observe } from '../src/lock/index.js';
import { LockLostError, LockTimeoutError, type Store } from '../src/core/index.js';
import { EXIT, exitCodeFor } from '../src/cli/main.js';
import { registerLock } from '../src/cli/lock.js';
import { MemoryStore } from '../src/memory/index.js';
import { Command } from 'commander';
import { backends } from './checkpoints-backends.js';
import { tempDir, uniqueName } from './helpers.js';
import { sessionKeyTakenOn } from './support/session-key-taken.js';
import { MAIN, inProcess, serve } from './support/revkit-process.js';

vi.setConfig({ testTimeout: 120_000 });
const dir = tempDir('lock-cli');

/**
 * The command the tests run under the lock: appends JSON lines to `log`
 * ("start" with what it sees in its environment, "end", the signals it
 * gets), and ends (with $EXIT_CODE) once the file `go` exists ('-': never).
 * mode: 'trap-term' ends on SIGTERM, 'ignore-term' notes SIGTERM and goes on,
 * 'trap-int' ends with 3 on SIGINT.
 */
const CMD = join(dir, 'cmd.mjs');
writeFileSync(CMD, `
import { appendFileSync, existsSync } from 'node:fs';
const [log, tag, go = '-', mode = ''] = process.argv.slice(2);
const note = (event) => appendFileSync(log, JSON.stringify({ event, tag }) + '\\n');
appendFileSync(log, JSON.stringify({ event: 'start', tag, fence: process.env.REVKIT_FENCE, lock: process.env.REVKIT_LOCK, pid: process.pid }) + '\\n');
if (mode === 'trap-term') process.on('SIGTERM', () => { note('SIGTERM'); process.exit(0); });
if (mode === 'ignore-term') process.on('SIGTERM', () => note('SIGTERM'));
if (mode === 'trap-int') process.on('SIGINT', () => { note('SIGINT'); process.exit(3); });
setInterval(() => {
  if (go !== '-' && existsSync(go)) { note('end'); process.exit(Number(process.env.EXIT_CODE ?? 0)); }
}, 10);
`);

interface LogLine { event: string; tag: string; fence?: string; lock?: string; pid?: number }
const readLog = (log: string): LogLine[] => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogLine) : []);
const cmd = (log: string, tag: string, go = '-', mode = '') => ['--', process.execPath, CMD, log, tag, go, mode];

/** This process's environment without REVKIT_* variables, plus `env`. */
function environment(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REVKIT_')) out[k] = v;
  return { ...out, ...env };
}

interface Run { child: ChildProcess; done: Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }> }
const running = new Set<ChildProcess>();
afterAll(() => {
  for (const child of running) child.kill('SIGKILL');
});

/** `revkit …` as a process of its own; `done` settles when it and everything holding its output (the command) are gone. */
function revkit(args: string[], env: Record<string, string> = {}): Run {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: dir, env: environment(env), stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>((resolve) => {
    child.on('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal, out, err });
    });
  });
  return { child, done };
}

/** Waits until `check` holds, looking again every 20 ms (the test's timeout bounds it). */
async function until<T>(check: () => T | Promise<T>): Promise<NonNullable<T>> {
  for (;;) {
    const result = await check();
    if (result) return result as NonNullable<T>;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const started = (log: string, tag: string) => until(() => readLog(log).find((l) => l.event === 'start' && l.tag === tag));
const oneLine = (err: string) => {
  expect(err.trim().split('\n'), err).toHaveLength(1);
  expect(err).not.toMatch(/\n\s+at /);
};

const waiting = async (store: Store, name: string) => (await store.list({ prefix: `locks/${name}/.waiting/` })).entries;

for (const backend of backends('lock-cli').filter((b) => b.name === 'sqlite' || b.name === 'postgres')) {
  describe(`revkit lock / elect on ${backend.name}`, () => {
    const url = backend.freshUrl();
    let store: Store;
    beforeAll(async () => {
      store = await open(url);
    });
    afterAll(async () => {
      await store?.close();
    });

    it('runs the command with REVKIT_FENCE (the lock key\'s createdRevision) and REVKIT_LOCK, passes its exit code through, and releases the lock', async () => {
      const log = join(dir, uniqueName('fence'));
      const go = `${log}.go`;
      const run = revkit(['--store', url, 'lock', 'job1', ...cmd(log, 'A', go)], { EXIT_CODE: '7' });
      const start = await started(log, 'A');
      const key = await store.get('locks/job1');
      expect(key?.value).toEqual({ revkitLock: 1, session: expect.any(String), token: expect.any(String), ttlMs: 10_000 });
      expect(start.fence).toBe(String(key?.createdRevision));
      expect(start.lock).toBe('job1');
      writeFileSync(go, '');
      const r = await run.done;
      expect({ code: r.code, out: r.out, err: r.err }).toEqual({ code: 7, out: '', err: '' });
      expect(await store.get('locks/job1')).toBeNull();
      expect(await waiting(store, 'job1')).toEqual([]);

      // Ended by a signal: 128 + its number; and the next holder gets a greater fence.
      const log2 = join(dir, uniqueName('fence'));
      const killed = await revkit(['--store', url, 'lock', 'job1', '--', process.execPath, '-e', `require('node:fs').writeFileSync(${JSON.stringify(log2)}, process.env.REVKIT_FENCE); process.kill(process.pid, 'SIGTERM')`]).done;
      expect({ code: killed.code, err: killed.err }).toEqual({ code: 128 + 15, err: '' });
      expect(Number(readFileSync(log2, 'utf8'))).toBeGreaterThan(Number(start.fence));
    });

    it('two, then three, holders of one name run one after another, in arrival order, with fences that grow', async () => {
      const log = join(dir, uniqueName('mutex'));
      const go = `${log}.go`;
      const a = revkit(['--store', url, 'lock', 'job2', ...cmd(log, 'A', go)]);
      await started(log, 'A');
      const b = revkit(['--store', url, 'lock', 'job2', ...cmd(log, 'B', go)]);
      // B is in the queue (its waiter key is there) while A holds the lock: it arrived before C.
      await until(async () => (await waiting(store, 'job2')).length === 1);
      const c = revkit(['--store', url, 'lock', 'job2', ...cmd(log, 'C', go)]);
      await until(async () => (await waiting(store, 'job2')).length === 2);
      expect(readLog(log).map((l) => `${l.event} ${l.tag}`)).toEqual(['start A']);
      writeFileSync(go, '');
      const results = await Promise.all([a.done, b.done, c.done]);
      for (const r of results) expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: '' });
      const lines = readLog(log);
      // Never interleaved: each start is followed by its own end before anyone else starts.
      expect(lines.map((l) => `${l.event} ${l.tag}`)).toEqual(['start A', 'end A', 'start B', 'end B', 'start C', 'end C']);
      const fences = lines.filter((l) => l.event === 'start').map((l) => Number(l.fence));
      expect(fences[0]).toBeLessThan(fences[1]!);
      expect(fences[1]).toBeLessThan(fences[2]!);
      expect(await store.get('locks/job2')).toBeNull();
      expect(await waiting(store, 'job2')).toEqual([]);
    });

    it('a lost lock (its key deleted) stops the command with SIGTERM and exits 5', async () => {
      const log = join(dir, uniqueName('lost'));
      // A generous --kill-after: on a loaded machine the command may take longer than the default 300 ms to end after SIGTERM.
      const run = revkit(['--store', url, 'lock', 'job3', '--ttl', '3000', '--kill-after', '30000', ...cmd(log, 'A', '-', 'trap-term')]);
      const start = await started(log, 'A');
      expect(await store.get('locks/job3')).toMatchObject({ createdRevision: Number(start.fence) });
      expect(await store.delete('locks/job3')).not.toBeNull();
      const r = await run.done;
      expect(r.code).toBe(EXIT.lockLost);
      expect(r.code).toBe(5);
      oneLine(r.err);
      expect(r.err.trim()).toMatch(new RegExp(`^revkit: ERR_LOCK_LOST: lock "job3" \\(fence ${start.fence}\\) lost: .*; the command was stopped with SIGTERM$`));
      expect(readLog(log).map((l) => `${l.event} ${l.tag}`)).toEqual(['start A', 'SIGTERM A']);
    });

    it('a command that ignores SIGTERM gets SIGKILL after --kill-after; still exit 5', async () => {
      const log = join(dir, uniqueName('lost-kill'));
      const run = revkit(['--store', url, 'lock', 'job3k', '--ttl', '3000', '--kill-after', '200', ...cmd(log, 'A', '-', 'ignore-term')]);
      const start = await started(log, 'A');
      await store.delete('locks/job3k');
      const r = await run.done;
      expect(r.code).toBe(5);
      oneLine(r.err);
      expect(r.err.trim()).toMatch(/^revkit: ERR_LOCK_LOST: lock "job3k" .*stopped with SIGTERM, then SIGKILL$/);
      expect(readLog(log).map((l) => `${l.event} ${l.tag}`)).toEqual(['start A', 'SIGTERM A']);
      expect(() => process.kill(start.pid!, 0)).toThrow(/ESRCH/);
    });

    it('--wait runs out while another holds the lock: exit 1, one line, the command not run, nothing left queued; --wait 0 takes a free lock', async () => {
      const log = join(dir, uniqueName('wait'));
      const go = `${log}.go`;
      const holder = revkit(['--store', url, 'lock', 'job4', ...cmd(log, 'A', go)]);
      await started(log, 'A');
      const [now, soon] = await Promise.all([
        revkit(['--store', url, 'lock', 'job4', '--wait', '0', ...cmd(log, 'B', go)]).done,
        revkit(['--store', url, 'lock', 'job4', '--wait', '300', ...cmd(log, 'C', go)]).done,
      ]);
      for (const [r, ms] of [[now, 0], [soon, 300]] as const) {
        expect(r.code).toBe(1);
        oneLine(r.err);
        expect(r.err.trim()).toBe(`revkit: ERR_LOCK_TIMEOUT: the lock "job4" was not acquired within ${ms} ms`);
      }
      expect(await waiting(store, 'job4')).toEqual([]);
      writeFileSync(go, '');
      expect((await holder.done).code).toBe(0);
      expect(readLog(log).map((l) => `${l.event} ${l.tag}`)).toEqual(['start A', 'end A']);
      // --wait 0 bounds the waiting for others, not the store's round trips: a free lock is taken.
      expect(await revkit(['--store', url, 'lock', 'job4', '--wait', '0', ...cmd(log, 'D', go)]).done).toMatchObject({ code: 0, err: '' });
      expect(readLog(log).map((l) => `${l.event} ${l.tag}`)).toEqual(['start A', 'end A', 'start D', 'end D']);
    });

    it('SIGINT or SIGTERM to revkit goes to the command, and revkit exits as it does, releasing the lock', async () => {
      const log = join(dir, uniqueName('signal'));
      const trapped = revkit(['--store', url, 'lock', 'job6', ...cmd(log, 'A', '-', 'trap-int')]);
      await started(log, 'A');
      trapped.child.kill('SIGINT');
      expect(await trapped.done).toMatchObject({ code: 3, err: '' });
      expect(readLog(log).map((l) => `${l.event} ${l.tag}`)).toEqual(['start A', 'SIGINT A']);
      expect(await store.get('locks/job6')).toBeNull();

      const plain = revkit(['--store', url, 'lock', 'job6', ...cmd(log, 'B')]);
      await started(log, 'B');
      // Before its command starts, a signal stops revkit's wait: 128 + n, one line, its place in the queue given up.
      const queued = revkit(['--store', url, 'lock', 'job6', ...cmd(log, 'C')]);
      await until(async () => (await waiting(store, 'job6')).length === 1);
      queued.child.kill('SIGTERM');
      const stopped = await queued.done;
      expect(stopped.code).toBe(128 + 15);
      oneLine(stopped.err);
      expect(stopped.err.trim()).toBe('revkit: interrupted by SIGTERM while waiting for the lock "job6"');
      expect(await waiting(store, 'job6')).toEqual([]);

      plain.child.kill('SIGTERM');
      expect(await plain.done).toMatchObject({ code: 128 + 15, err: '' });
      expect(await store.get('locks/job6')).toBeNull();
      expect(readLog(log).filter((l) => l.tag === 'C')).toEqual([]);
    });

    it('elect: the leader\'s VALUE is on the lock key and seen by observe(); leadership ends with the command; a lost leadership exits 5', async () => {
      const log = join(dir, uniqueName('elect'));
      const go = `${log}.go`;
      const run = revkit(['--store', url, 'elect', 'sched', '{"id":"node-3","n":1}', ...cmd(log, 'L', go)]);
      const start = await started(log, 'L');
      const key = await store.get('locks/sched');
      expect(key?.value).toEqual({ revkitLock: 1, session: expect.any(String), token: expect.any(String), ttlMs: 10_000, value: { id: 'node-3', n: 1 } });
      expect(start).toMatchObject({ fence: String(key?.createdRevision), lock: 'sched' });
      const stop = new AbortController();
      const leaders = observe(store, 'sched', { signal: stop.signal });
      expect((await leaders.next()).value).toEqual({ id: 'node-3', n: 1 });
      writeFileSync(go, '');
      expect(await run.done).toMatchObject({ code: 0, err: '' });
      expect((await leaders.next()).value).toBeNull();
      stop.abort();
      await leaders.return(undefined);

      const lostLog = join(dir, uniqueName('elect-lost'));
      const lost = revkit(['--store', url, 'elect', 'sched', '"node-4"', '--ttl', '3000', ...cmd(lostLog, 'L', '-', 'trap-term')]);
      await started(lostLog, 'L');
      expect((await store.get('locks/sched'))?.value).toMatchObject({ value: 'node-4' });
      await store.delete('locks/sched');
      const r = await lost.done;
      expect(r.code).toBe(5);
      oneLine(r.err);
      expect(r.err).toMatch(/^revkit: ERR_LOCK_LOST: lock "sched" /);
      expect(readLog(lostLog).map((l) => l.event)).toEqual(['start', 'SIGTERM']);
    });
  });
}

describe('revkit lock against a revkit server (--server URL --token T)', () => {
  const TOKEN = 'lock-cli-admin-token-0123456789';
  let server: Extract<Awaited<ReturnType<typeof serve>>, { started: true }>;
  let store: Store;
  beforeAll(async () => {
    const s = await serve(['--store', `sqlite:${join(dir, `${uniqueName('server')}.db`)}`, '--port', '0', '--admin-token', TOKEN]);
    if (!s.started) throw new Error(`serve exited with ${s.code}: ${s.stderr}`);
    server = s;
    store = await HttpStore.fromUrl(`${server.url}?token=${TOKEN}`);
  }, 120_000);
  afterAll(async () => {
    await store?.close();
    await server?.stop();
  });

  it('holds the lock through the server: REVKIT_FENCE is the lock key\'s createdRevision, the exit code is passed through; a held lock and --wait 0 exit 1', async () => {
    const log = join(dir, uniqueName('server'));
    const go = `${log}.go`;
    const run = revkit(['--server', server.url, '--token', TOKEN, 'lock', 'srv', ...cmd(log, 'A', go)], { EXIT_CODE: '4' });
    const start = await started(log, 'A');
    expect(start.fence).toBe(String((await store.get('locks/srv'))?.createdRevision));
    const busy = await revkit(['lock', 'srv', '--wait', '0', ...cmd(log, 'B', go)], { REVKIT_SERVER: server.url, REVKIT_TOKEN: TOKEN }).done;
    expect(busy.code).toBe(1);
    expect(busy.err.trim()).toBe('revkit: ERR_LOCK_TIMEOUT: the lock "srv" was not acquired within 0 ms');
    writeFileSync(go, '');
    expect(await run.done).toMatchObject({ code: 4, err: '' });
    expect(await store.get('locks/srv')).toBeNull();
    expect(readLog(log).map((l) => `${l.event} ${l.tag}`)).toEqual(['start A', 'end A']);
  });
});

describe('revkit lock: a session that cannot start', () => {
  it('a session key another writer holds is exit 1 (could not start), not 3 (a failed --if-* condition)', async () => {
    const inner = new MemoryStore();
    const store = sessionKeyTakenOn(inner);
    const program = new Command().exitOverride();
    registerLock(program, async () => store, (text) => JSON.parse(text) as unknown);
    const err = await program.parseAsync(['node', 'revkit', 'lock', 'job', '--', process.execPath, '-e', '1']).then(() => 'ran', (e: unknown) => e);
    expect(exitCodeFor(err).code).toBe(EXIT.error);
    expect(exitCodeFor(err).message).toMatch(/could not open a session/);
    await inner.close();
  });
});

describe('revkit lock / elect usage', () => {
  // A store that cannot be opened: a usage error wrongly let through ends in exit 1, not 2, and runs nothing.
  const BROKEN = ['--store', 'sqlite:/dev/null/x/y.db'];
  const log = join(dir, uniqueName('usage'));
  const CASES: Array<[string[], RegExp]> = [
    [['lock', 'job'], /^revkit: give the command to run after --/],
    [['lock', 'job', '--'], /^revkit: give the command to run after --/],
    [['lock', 'job', process.execPath, CMD, log, 'X', '-'], /^revkit: the command to run goes after --/],
    [['lock', 'job', process.execPath, '--', CMD, log, 'X', '-'], /^revkit: the command to run goes after --/],
    [['lock', 'job', process.execPath, '-e', '1'], /^revkit: unknown option '-e'/],
    [['lock', 'job', '--ttl', '10', ...cmd(log, 'X')], /--ttl.*'10'.*at least 100/],
    [['lock', 'job', '--ttl', '86400001', ...cmd(log, 'X')], /--ttl.*at most 86400000/],
    [['lock', 'job', '--wait', '-1', ...cmd(log, 'X')], /^revkit: /],
    [['lock', 'job', '--kill-after', 'soon', ...cmd(log, 'X')], /--kill-after.*'soon'.*non-negative integer/],
    // Past 2^31 - 1 ms a timer fires at once: SIGKILL right after SIGTERM (review of 2026-12-06).
    [['lock', 'job', '--kill-after', '3000000000', ...cmd(log, 'X')], /--kill-after.*at most 86400000/],
    [['elect', 'job', ...cmd(log, 'X')], /^revkit: the command to run goes after --/],
    [['elect', 'job', '--', 'true'], /^revkit: give the command to run after --/],
    [['elect', 'job', '{not json', ...cmd(log, 'X')], /^revkit: the value is not valid JSON: \{not json$/],
    [['elect', 'job', '1e400', ...cmd(log, 'X')], /^revkit: ERR_VALIDATION: /],
  ];
  const expectUsage = (r: { code: number | null; stdout?: string; out?: string; stderr?: string; err?: string }, args: string[], message: RegExp) => {
    const err = (r.stderr ?? r.err ?? '').trim();
    expect(r.code, `${args.join(' ')}: ${err}`).toBe(2);
    oneLine(err);
    expect(err, args.join(' ')).toMatch(message);
    expect(err).not.toMatch(/Usage:/);
  };

  it('no --, no command, a bad option or VALUE: exit 2 with one line, nothing run (in this process, through the CLI\'s main(); two as processes)', async () => {
    for (const [args, message] of CASES) expectUsage(await inProcess([...BROKEN, ...args]), args, message);
    const picked = [CASES[0]!, CASES[2]!];
    const runs = await Promise.all(picked.map(([args]) => revkit([...BROKEN, ...args]).done));
    for (const [i, [args, message]] of picked.entries()) expectUsage(runs[i]!, args, message);
    expect(readLog(log)).toEqual([]);
  });

  it('a lost lock is exit 5 (EXIT.lockLost) wherever it surfaces; a --wait that ran out is exit 1', () => {
    const details = { name: 'job', key: 'locks/job', fence: 3 };
    expect(exitCodeFor(new LockLostError('lock "job" (fence 3) lost: released', details))).toEqual({ code: EXIT.lockLost, message: 'ERR_LOCK_LOST: lock "job" (fence 3) lost: released' });
    expect(exitCodeFor(new LockTimeoutError({ ...details, waitMs: 0 })).code).toBe(EXIT.error);
  });

  it('--help says what the command gets and what the exit codes mean', async () => {
    for (const command of ['lock', 'elect']) {
      const r = await inProcess([command, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`Usage: revkit ${command} NAME `));
      expect(r.stdout).toContain('REVKIT_FENCE');
      expect(r.stdout).toMatch(/5 the lock was\s+lost/);
      expect(r.stdout).not.toMatch(/DESIGN|shared\/|§/);
    }
  });
});
