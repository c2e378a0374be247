import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/sqlite/index.js';

// A child process writes from many concurrent callers into one SQLite store, so
// its writes are group-committed; it prints each write it attempts and each one
// it was told is durable, synchronously to a pipe. It is SIGKILLed at random
// points, again and again, on the same file. Afterwards every acknowledged write
// is there, nothing is there that was not attempted, and no counter increment
// was lost or applied twice.

const dir = mkdtempSync(join(tmpdir(), 'revkit-sqlite-kill-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const dist = (p: string) => new URL(`../../dist/${p}`, import.meta.url).href;

const WRITERS = 24;
const COUNTERS = 4;

const child = (path: string, run: number, useCanary: boolean) => `
  const { writeSync } = await import('node:fs');
  const { SqliteStore } = await import(${JSON.stringify(dist('sqlite/index.js'))});
  const { canary } = await import(${JSON.stringify(dist('testing/index.js'))});
  const inner = new SqliteStore(${JSON.stringify(path)});
  const store = ${useCanary ? 'canary(inner)' : 'inner'};
  const say = (line) => writeSync(1, line + '\\n');
  say('R');
  await Promise.all(Array.from({ length: ${WRITERS} }, async (_, w) => {
    for (let seq = 0; ; seq++) {
      const key = 'u/${run}/' + w + '/' + seq;
      say('P ' + key);
      const e = await store.put(key, { w, seq }, { ifAbsent: true });
      say('A ' + key + ' ' + e.revision);
      const counter = 'c/' + (w % ${COUNTERS});
      say('T ' + counter);
      // Uncombined, so that the callers race for the key and the canary's blind write can lose one.
      const c = await store.update(counter, (n) => (n ?? 0) + 1, { combine: false });
      say('C ' + counter + ' ' + c.value + ' ' + c.revision);
    }
  }));
`;

interface Log {
  attempted: Set<string>;
  acked: Map<string, number>;
  counterAttempts: Map<string, number>;
  counterAcks: Array<{ key: string; value: number; revision: number }>;
  stderr: string;
}

/** Runs one child until it has acknowledged some writes, then SIGKILLs it at a random moment. */
function runAndKill(path: string, run: number, useCanary: boolean, log: Log): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--input-type=module', '-e', child(path, run, useCanary)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buffered = '';
    let acks = 0;
    let armed = false;
    const target = 20 + Math.floor(Math.random() * 400);
    proc.stdout.on('data', (d: Buffer) => {
      buffered += d;
      const lines = buffered.split('\n');
      buffered = lines.pop() as string;
      for (const line of lines) {
        const [tag, key, a, b] = line.split(' ') as [string, string, string, string];
        if (tag === 'P') log.attempted.add(key);
        else if (tag === 'A') {
          log.acked.set(key, Number(a));
          acks++;
        } else if (tag === 'T') log.counterAttempts.set(key, (log.counterAttempts.get(key) ?? 0) + 1);
        else if (tag === 'C') {
          log.counterAcks.push({ key, value: Number(a), revision: Number(b) });
          acks++;
        }
      }
      // Kill at a random point after a random number of acknowledgements (mid-batch, most of the time).
      if (!armed && acks >= target) {
        armed = true;
        setTimeout(() => proc.kill('SIGKILL'), Math.random() * 30);
      }
    });
    proc.stderr.on('data', (d: Buffer) => (log.stderr += d));
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`child ${run} ended by itself (${code}): ${log.stderr}`));
    });
  });
}

async function check(path: string, log: Log) {
  const store = new SqliteStore(path);
  try {
    const report = { acked: log.acked.size + log.counterAcks.length, lostAcked: 0, unattempted: 0, lostUpdates: 0, overcounted: 0, revisionReused: 0 };
    for (const [key, revision] of log.acked) {
      if ((await store.get(key))?.revision !== revision) report.lostAcked++;
    }
    const present = await store.list({ prefix: 'u/', limit: 10_000 });
    expect(present.cursor).toBeUndefined();
    for (const e of present.entries) if (!log.attempted.has(e.key)) report.unattempted++;
    const revisions = new Set<number>();
    for (const e of present.entries) revisions.add(e.revision);
    for (let c = 0; c < COUNTERS; c++) {
      const key = `c/${c}`;
      const history = (await store.history<number>(key, { limit: 10_000 })).reverse();
      // An increment that lost another leaves two records with the same value.
      history.forEach((r, i) => {
        if ('deleted' in r || r.value !== i + 1) report.lostUpdates++;
        if (revisions.has(r.revision)) report.revisionReused++;
        revisions.add(r.revision);
      });
      if (history.length > (log.counterAttempts.get(key) ?? 0)) report.overcounted++;
      const byRevision = new Map(history.map((r) => [r.revision, 'deleted' in r ? undefined : r.value]));
      for (const a of log.counterAcks.filter((x) => x.key === key)) if (byRevision.get(a.revision) !== a.value) report.lostAcked++;
    }
    return report;
  } finally {
    await store.close();
  }
}

describe('sqlite group commit: SIGKILL mid-batch', () => {
  it('12 random SIGKILLs of a process group-committing 24 concurrent writers: nothing acknowledged is lost, nothing unattempted is present, no increment lost', async () => {
    const path = join(dir, 'kill.db');
    const log: Log = { attempted: new Set(), acked: new Map(), counterAttempts: new Map(), counterAcks: [], stderr: '' };
    for (let run = 0; run < 12; run++) {
      await runAndKill(path, run, false, log);
      // After each restart, what was acknowledged so far is there.
      const report = await check(path, log);
      expect(report).toMatchObject({ lostAcked: 0, unattempted: 0, lostUpdates: 0, overcounted: 0, revisionReused: 0 });
    }
    const report = await check(path, log);
    expect(report.acked).toBeGreaterThanOrEqual(12 * 20);
    expect(report).toMatchObject({ lostAcked: 0, unattempted: 0, lostUpdates: 0, overcounted: 0, revisionReused: 0 });
    // The writes were grouped: far fewer commits than writes (a fresh run, counted in-process).
    const store = new SqliteStore(join(dir, 'count.db'));
    await Promise.all(Array.from({ length: 100 }, (_, i) => store.put(`k/${i}`, i)));
    expect(store.commitCount).toBeLessThan(10);
    await store.close();
  });

  it('the same check catches the canary store (check, then write without a condition)', async () => {
    const path = join(dir, 'canary.db');
    const log: Log = { attempted: new Set(), acked: new Map(), counterAttempts: new Map(), counterAcks: [], stderr: '' };
    for (let run = 0; run < 2; run++) await runAndKill(path, run, true, log);
    const report = await check(path, log);
    expect(report.lostUpdates).toBeGreaterThan(0);
  });
});
