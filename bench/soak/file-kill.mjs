#!/usr/bin/env node
// Soak (issue 12): 4 processes increment counters in one `file:` store while
// random SIGKILLs land (each killed worker is replaced). Afterwards the file
// parses, every increment a worker reported as acknowledged is there, and
// revisions never went backwards (neither in the file's header, sampled all
// along, nor along any key's acknowledged values).
//
//   node bench/soak/file-kill.mjs                 200 kills (what `npm run soak` runs)
//   node bench/soak/file-kill.mjs --kills 20      CI size (test/faults/file-kill.test.ts)
//   --canary    run the workers on the broken canary store: the check must find lost updates
//   --json      print the report as one JSON line
//
// Workers print one line per acknowledged write (`A key value revision`), synchronously
// to a pipe, so what the parent counts is exactly what a caller was told.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const dist = (p) => new URL(`../../dist/${p}`, import.meta.url).href;

export function flags(argv = process.argv.slice(2)) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) continue;
    const next = argv[i + 1];
    out[argv[i].slice(2)] = next === undefined || next.startsWith('--') ? true : (i++, next);
  }
  return out;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A fresh folder with the store's URL; `cleanup()` removes it. */
export function scratch(label, query = '') {
  const dir = mkdtempSync(join(tmpdir(), `revkit-soak-${label}-`));
  const path = join(dir, 'state.json');
  return { dir, path, url: `file:${path}${query}`, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A pool of worker processes. Tallies acknowledged writes per key and the
 * errors workers reported; `replace(i)` SIGKILLs worker i and starts another.
 */
export class Workers {
  constructor({ url, keys, writers, count, canary = false, deadlineMs = 60_000, maxAttempts = 10_000 }) {
    this.config = { url: canary ? `canary:${url}` : url, keys, writers, deadlineMs, maxAttempts };
    this.acks = new Map(keys.map((k) => [k, []]));
    this.errors = new Map();
    this.spawned = 0;
    this.procs = Array.from({ length: count }, () => this.start());
  }

  start() {
    this.spawned++;
    const child = spawn(process.execPath, [self, 'worker', JSON.stringify(this.config)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buffered = '';
    child.acked = 0;
    child.stdout.on('data', (d) => {
      buffered += d;
      const lines = buffered.split('\n');
      buffered = lines.pop();
      for (const line of lines) if (this.onLine(line)) child.acked++;
    });
    child.stderr.on('data', (d) => {
      const text = String(d).trim();
      if (text) this.count(`stderr: ${text.split('\n')[0]}`);
    });
    child.exited = new Promise((resolve) => child.on('exit', resolve));
    return child;
  }

  onLine(line) {
    const [tag, ...rest] = line.split(' ');
    if (tag === 'A') {
      const [key, value, revision] = rest;
      this.acks.get(key).push({ value: Number(value), revision: Number(revision) });
      return true;
    } else if (tag === 'E') {
      this.count(rest.join(' '));
    }
    return false;
  }

  /** A random worker that is already writing (a kill before that would test only start-up); waits for one. */
  async busyOne() {
    for (;;) {
      const busy = this.procs.map((p, i) => (p.acked > 0 ? i : -1)).filter((i) => i >= 0);
      if (busy.length > 0) return busy[Math.floor(Math.random() * busy.length)];
      await sleep(10);
    }
  }

  count(what) {
    this.errors.set(what, (this.errors.get(what) ?? 0) + 1);
  }

  get ackCount() {
    let n = 0;
    for (const list of this.acks.values()) n += list.length;
    return n;
  }

  async replace(i) {
    const victim = this.procs[i];
    victim.kill('SIGKILL');
    await victim.exited;
    this.procs[i] = this.start();
  }

  async stopAll() {
    for (const p of this.procs) {
      p.kill('SIGCONT');
      p.kill('SIGKILL');
    }
    await Promise.all(this.procs.map((p) => p.exited));
  }
}

/** The store-wide revision in the file's header, or null when there is no file yet. */
export function headerRevision(path) {
  let fd;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(96);
    const n = readSync(fd, buf, 0, 96, 0);
    const m = /"revision":(\d+),/.exec(buf.toString('utf8', 0, n));
    return m ? Number(m[1]) : null;
  } finally {
    closeSync(fd);
  }
}

/** Samples the header revision every few ms; `backwards` counts every decrease seen. */
export function watchHeader(path, everyMs = 5) {
  const seen = { samples: 0, backwards: 0, last: 0 };
  const timer = setInterval(() => {
    const rev = headerRevision(path);
    if (rev === null) return;
    seen.samples++;
    if (rev < seen.last) seen.backwards++;
    seen.last = Math.max(seen.last, rev);
  }, everyMs);
  seen.stop = () => clearInterval(timer);
  return seen;
}

/**
 * What must hold after any crash: the file parses as a revkit store; per key,
 * no two acknowledged increments returned the same value (that would be a
 * lost update), the stored counter is at least every acknowledged value, and
 * acknowledged revisions rise with the values; no temp file survives the next commit.
 */
export async function verify(path, workers) {
  const { FileStore } = await import(dist('file/index.js'));
  const report = { fileParses: false, acks: workers.ackCount, lost: 0, revisionsBackwards: 0, tempsLeftByCrashes: 0, tempsAfterNextCommit: 0 };
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  report.fileParses = doc.revkit === 'file' && doc.version === 1;
  const temps = () => readdirSync(join(path, '..')).filter((n) => n.endsWith('.revkit-tmp')).length;
  report.tempsLeftByCrashes = temps();
  const store = new FileStore(path);
  try {
    let maxAcked = 0;
    for (const [key, acks] of workers.acks) {
      const stored = (await store.get(key))?.value ?? 0;
      const values = acks.map((a) => a.value);
      const distinct = new Set(values);
      report.lost += values.length - distinct.size + values.filter((v) => v > stored).length;
      const byValue = [...acks].sort((a, b) => a.value - b.value);
      for (let i = 1; i < byValue.length; i++) if (byValue[i].revision <= byValue[i - 1].revision) report.revisionsBackwards++;
      for (const a of acks) maxAcked = Math.max(maxAcked, a.revision);
    }
    if (doc.revision < maxAcked) report.revisionsBackwards++;
    await store.put('soak/after', Date.now());
    report.tempsAfterNextCommit = temps();
  } finally {
    await store.close();
  }
  return report;
}

export function errorsObject(workers) {
  return Object.fromEntries([...workers.errors].sort((a, b) => b[1] - a[1]).slice(0, 10));
}

async function main() {
  const args = flags();
  const kills = Number(args.kills ?? 200);
  const canary = Boolean(args.canary);
  const { path, url, cleanup } = scratch('file-kill');
  const keys = Array.from({ length: 8 }, (_, i) => `counter/${i}`);
  const started = Date.now();
  const workers = new Workers({ url, keys, writers: 4, count: 4, canary });
  const header = watchHeader(path);
  try {
    for (let k = 0; k < kills; k++) {
      const victim = await workers.busyOne();
      await sleep(Math.random() * 100);
      await workers.replace(victim);
    }
    await sleep(1000);
    await workers.stopAll();
    header.stop();
    const report = {
      scenario: 'file-kill', kills, canary, workersStarted: workers.spawned,
      ...(await verify(path, workers)),
      headerSamples: header.samples, headerBackwards: header.backwards,
      elapsedMs: Date.now() - started,
      workerErrors: errorsObject(workers),
    };
    report.ok = report.fileParses && report.lost === 0 && report.revisionsBackwards === 0 && report.headerBackwards === 0 && report.tempsAfterNextCommit === 0 && report.acks > 0;
    if (args.json) console.log(JSON.stringify(report));
    else {
      console.log(`file-kill: ${kills} SIGKILLs over ${workers.spawned} workers in ${(report.elapsedMs / 1000).toFixed(1)} s; ${report.acks} acknowledged increments`);
      console.log(`  file parses: ${report.fileParses}; lost: ${report.lost}; revisions backwards: ${report.revisionsBackwards} (keys), ${report.headerBackwards} (header, ${report.headerSamples} samples)`);
      console.log(`  temp files left by killed writers: ${report.tempsLeftByCrashes}, after the next commit: ${report.tempsAfterNextCommit}`);
      console.log(`  worker errors: ${JSON.stringify(report.workerErrors)}`);
      console.log(report.ok ? '  OK' : '  FAILED');
    }
    process.exitCode = report.ok || canary ? 0 : 1;
  } finally {
    header.stop();
    await workers.stopAll();
    cleanup();
  }
}

async function worker(config) {
  const { openTarget } = await import(dist('testing/index.js'));
  const store = await openTarget(config.url);
  const write = (line) => writeSync(1, `${line}\n`);
  const loop = async () => {
    for (;;) {
      const key = config.keys[Math.floor(Math.random() * config.keys.length)];
      try {
        const e = await store.update(key, (n) => (n ?? 0) + 1, { combine: false, maxAttempts: config.maxAttempts, deadlineMs: config.deadlineMs });
        write(`A ${key} ${e.value} ${e.revision}`);
      } catch (err) {
        const last = err.lastError ? ` (last: ${err.lastError.code} ${err.lastError.message})` : ` ${err.message}`;
        write(`E ${err.code ?? 'no-code'}${last.replace(/\/tmp\/\S+/g, '<path>').replace(/\d+/g, 'N').replace(/\n/g, ' ')}`);
      }
    }
  };
  await Promise.all(Array.from({ length: config.writers }, loop));
}

if (process.argv[1] === self) {
  const run = process.argv[2] === 'worker' ? worker(JSON.parse(process.argv[3])) : main();
  run.catch((err) => {
    console.error(err?.stack ?? String(err));
    process.exit(1);
  });
}
