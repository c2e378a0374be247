import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

// The soak scripts at CI size; `npm run soak` runs them at full size (200 kills, a 30 s stop).
const script = (name: string) => fileURLToPath(new URL(`../../bench/soak/${name}`, import.meta.url));
const run = async (name: string, args: string[]) => {
  const { stdout } = await promisify(execFile)(process.execPath, [script(name), ...args, '--json'], { maxBuffer: 1 << 20 }).catch((err) => {
    throw new Error(`${name} failed: ${err.stdout}${err.stderr}`);
  });
  return JSON.parse(stdout.trim().split('\n').pop() as string);
};

describe('file: crashes and stalls', () => {
  it('4 writer processes, 20 random SIGKILLs: the file parses, every acknowledged write is there, revisions never went backwards', async () => {
    const r = await run('file-kill.mjs', ['--kills', '20']);
    expect(r).toMatchObject({ kills: 20, fileParses: true, lost: 0, revisionsBackwards: 0, headerBackwards: 0, tempsAfterNextCommit: 0, ok: true });
    expect(r.acks).toBeGreaterThan(0);
    expect(r.headerSamples).toBeGreaterThan(0);
  });

  it('the same check catches the canary store (check, then write without a condition)', async () => {
    const r = await run('file-kill.mjs', ['--kills', '2', '--canary']);
    expect(r.fileParses).toBe(true);
    expect(r.lost).toBeGreaterThan(0);
  });

  it('a holder SIGSTOPped mid-commit for 3 s: others time out clearly, nobody writes under it, nothing is lost after SIGCONT', async () => {
    const r = await run('file-stop.mjs', ['--stop-ms', '3000', '--lock-timeout-ms', '500']);
    expect(r).toMatchObject({ holderHeldLock: true, changedWhileStopped: 0, acksWhileStopped: 0, fileParses: true, lost: 0, revisionsBackwards: 0, ok: true });
    expect(r.timeoutErrorsWhileStopped).toBeGreaterThan(0);
    expect(Object.keys(r.workerErrors).some((e) => /ERR_BACKEND the write lock .* was not free within N ms/.test(e))).toBe(true);
    expect(r.victimAckedAfterResume).toBeGreaterThan(0);
  });
});
