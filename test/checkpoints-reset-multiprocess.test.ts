/**
 * A reset across processes: follow() runs in one process (the consumer of
 * test/fixtures/checkpoints-follow-consumer.mjs, which logs every change it
 * handles), the cursor is reset from another (`revkit checkpoints reset`, and
 * delete() from this test's process). The rewound events must be handled
 * again. Verdicts wait on conditions (the cursor reaching the event written
 * after the reset), never on a delay. Runs the built code: `npx tsc -p tsconfig.build.json`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { open } from '../src/open.js';
import type { Store } from '../src/core/index.js';
import { checkpoints, resumeKey } from '../src/checkpoints/index.js';
import { backends } from './checkpoints-backends.js';
import { tempDir, uniqueName } from './helpers.js';

const consumerPath = fileURLToPath(new URL('./fixtures/checkpoints-follow-consumer.mjs', import.meta.url));
const cliPath = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
/** The identity the consumer fixture follows under, and its checkpoints' prefix. */
const IDENTITY = { consumer: 'follow-kill', prefix: 'data/' };
const key = resumeKey(IDENTITY);
const dir = tempDir('cp-reset-mp');

async function until(what: string, condition: () => boolean | Promise<boolean>, limitMs = 60_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function startConsumer(url: string, logFile: string): Promise<{ child: ChildProcess; stderr: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [consumerPath, url, logFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.once('error', reject);
    child.stdout.once('data', () => resolve({ child, stderr: () => err }));
    child.once('exit', (code) => reject(new Error(`consumer exited with ${code} before it started: ${err}`)));
  });
}

function revkit(url: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, '--store', url, 'checkpoints', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out: out.trim(), err: err.trim() }));
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

const readLog = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : []);

for (const backend of backends('reset-mp').filter((b) => ['sqlite', 'postgres'].includes(b.name))) {
  describe(`a follow() in another process yields to a reset on ${backend.name}`, () => {
    let store: Store | undefined;
    let consumer: ChildProcess | undefined;
    afterEach(async () => {
      if (consumer) await stop(consumer);
      consumer = undefined;
      await store?.close();
    });

    it('reset by `revkit checkpoints reset` (to a sequence, then removed) and delete({ ifAt }) from a third process: the rewound events are handled again', async () => {
      const url = backend.freshUrl();
      const logFile = join(dir, `${uniqueName('handled')}.log`);
      store = await open(url);
      const cps = checkpoints(store, { prefix: 'cp/' });
      let written = 0;
      /** Writes `n` changes under data/; returns them as the consumer logs them: `<key> <revision>`. */
      const produce = async (n: number) => {
        const lines: string[] = [];
        for (let i = 0; i < n; i++, written++) lines.push(`data/k${written} ${(await (store as Store).put(`data/k${written}`, written)).revision}`);
        return lines;
      };
      const revisionOf = (line: string) => Number(line.split(' ')[1]);
      const cursorAt = (line: string) => async () => (await cps.get(key))?.sequence === revisionOf(line);

      const events = await produce(5);
      const started = await startConsumer(url, logFile);
      consumer = started.child;
      await until('the consumer to record the last event', cursorAt(events[4] as string));
      expect(readLog(logFile)).toEqual(events);

      // 1. Back to the second event, from the CLI.
      let mark = readLog(logFile).length;
      const back = await revkit(url, ['reset', '--identity', JSON.stringify(IDENTITY), '--prefix', 'cp/', '--sequence', String(revisionOf(events[1] as string))]);
      expect(back, back.err).toMatchObject({ code: 0 });
      expect(JSON.parse(back.out)).toEqual({ key, cursor: { sequence: revisionOf(events[1] as string) } });
      const [first] = await produce(1);
      await until('the cursor to reach the event written after the reset', cursorAt(first as string));
      // The consumer may have handled the new event once before it saw the reset: judge the tail.
      expect(readLog(logFile).slice(mark).slice(-4)).toEqual([...events.slice(2), first]);

      // 2. Removed, from the CLI: it starts again from the beginning.
      mark = readLog(logFile).length;
      const removed = await revkit(url, ['reset', key, '--prefix', 'cp/']);
      expect(removed, removed.err).toMatchObject({ code: 0 });
      const [second] = await produce(1);
      await until('the cursor to reach the event written after the removal', cursorAt(second as string));
      expect(readLog(logFile).slice(mark).slice(-7)).toEqual([...events, first, second]);

      // 3. delete({ ifAt }) from this process, at the cursor it saw.
      mark = readLog(logFile).length;
      expect(await cps.delete(key, { ifAt: revisionOf(second as string) })).toBe(true);
      const [third] = await produce(1);
      await until('the cursor to reach the event written after the delete', cursorAt(third as string));
      expect(readLog(logFile).slice(mark).slice(-8)).toEqual([...events, first, second, third]);

      expect(await stop(consumer), started.stderr()).toBe(0);
      consumer = undefined;
    }, 120_000);
  });
}
