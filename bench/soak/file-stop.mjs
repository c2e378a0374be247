#!/usr/bin/env node
// Soak (issue 12): a `file:` writer SIGSTOPped while it holds the write lock,
// in the middle of a commit (checked in /proc/locks), for 30 s. The other
// processes wait and get a clear timeout error after their deadline; nobody
// writes under the stopped holder (the file is sampled all along); after
// SIGCONT the holder finishes its commit and nothing acknowledged is lost.
//
//   node bench/soak/file-stop.mjs                       30 s stop (what `npm run soak` runs)
//   node bench/soak/file-stop.mjs --stop-ms 3000 --lock-timeout-ms 500   CI size
//   --json    print the report as one JSON line
import { readFileSync, statSync } from 'node:fs';
import { Workers, errorsObject, flags, headerRevision, scratch, sleep, verify, watchHeader } from './file-kill.mjs';

/** Whether `pid` holds an fcntl write lock on the file with inode `ino` (SQLite's RESERVED lock: the store's write lock). */
function holdsWriteLock(pid, ino) {
  return readFileSync('/proc/locks', 'utf8').split('\n').some((line) => {
    const f = line.trim().split(/\s+/);
    // "1: POSIX  ADVISORY  WRITE 1234 fd:01:5678 1073741825 1073741825"
    return f[1] === 'POSIX' && f[3] === 'WRITE' && Number(f[4]) === pid && Number(f[5]?.split(':')[2]) === ino;
  });
}

/** How many acknowledged writes have a revision above `revision`. */
function acksAbove(workers, revision) {
  let n = 0;
  for (const list of workers.acks.values()) for (const a of list) if (a.revision > revision) n++;
  return n;
}

const isStopped = (pid) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('T');

async function stopWhileHolding(workers, lockIno) {
  for (let tries = 1; tries <= 5000; tries++) {
    const victim = workers.procs[await workers.busyOne()];
    victim.kill('SIGSTOP');
    while (!isStopped(victim.pid)) await sleep(1);
    if (holdsWriteLock(victim.pid, lockIno)) return { victim, tries };
    victim.kill('SIGCONT');
    await sleep(Math.random() * 15);
  }
  throw new Error('never caught a writer holding the lock');
}

async function main() {
  const args = flags();
  const stopMs = Number(args['stop-ms'] ?? 30_000);
  const lockTimeoutMs = Number(args['lock-timeout-ms'] ?? 5_000);
  const { path, url, cleanup } = scratch('file-stop', `?lockTimeoutMs=${lockTimeoutMs}`);
  const keys = Array.from({ length: 8 }, (_, i) => `counter/${i}`);
  // Each attempt waits up to lockTimeoutMs for the lock; after 3 the caller's update() gives up
  // with the lock timeout as its last error (a deadline shorter than the lock wait would instead
  // abandon a queued write, which update() must then report as of unknown outcome).
  const workers = new Workers({ url, keys, writers: 4, count: 4, maxAttempts: 3, deadlineMs: 60_000 });
  const header = watchHeader(path);
  try {
    while (workers.procs.some((p) => p.acked === 0)) await sleep(20);
    const lockIno = statSync(`${path}.lock`).ino;
    const { victim, tries } = await stopWhileHolding(workers, lockIno);
    const before = { stat: statSync(path), revision: headerRevision(path), acks: workers.ackCount, victimAcks: victim.acked, errors: new Map(workers.errors) };
    let changedWhileStopped = 0;
    const t0 = Date.now();
    while (Date.now() - t0 < stopMs) {
      await sleep(20);
      const st = statSync(path);
      if (st.ino !== before.stat.ino || st.mtimeMs !== before.stat.mtimeMs || headerRevision(path) !== before.revision) changedWhileStopped++;
    }
    const timeouts = [...workers.errors].reduce((n, [what, count]) => n + (/lock/.test(what) ? count - (before.errors.get(what) ?? 0) : 0), 0);
    // Acknowledgements of writes committed after the stop, told by their revisions: a writer that
    // committed before the stop may print its acknowledgement during it (it was slow, not wrong).
    const acksWhileStopped = acksAbove(workers, before.revision);
    victim.kill('SIGCONT');
    // Liveness bound only: the resumed holder finishes its commit, and others write again.
    for (const until = Date.now() + 60_000; Date.now() < until && !(victim.acked > before.victimAcks && acksAbove(workers, before.revision) > acksWhileStopped);) await sleep(20);
    const victimAckedAfterResume = victim.acked - before.victimAcks;
    const acksAfterResume = acksAbove(workers, before.revision) - acksWhileStopped;
    await workers.stopAll();
    header.stop();
    const report = {
      scenario: 'file-stop', stopMs, lockTimeoutMs, triesToCatchHolder: tries, holderHeldLock: true,
      changedWhileStopped, acksWhileStopped, timeoutErrorsWhileStopped: timeouts, acksAfterResume, victimAckedAfterResume,
      ...(await verify(path, workers)),
      headerBackwards: header.backwards,
      workerErrors: errorsObject(workers),
    };
    report.ok = changedWhileStopped === 0 && acksWhileStopped === 0 && timeouts > 0 && acksAfterResume > 0 && victimAckedAfterResume > 0
      && report.fileParses && report.lost === 0 && report.revisionsBackwards === 0 && report.headerBackwards === 0;
    if (args.json) console.log(JSON.stringify(report));
    else {
      console.log(`file-stop: holder SIGSTOPped with the lock held (caught on try ${tries}) for ${stopMs / 1000} s; lock timeout ${lockTimeoutMs} ms`);
      console.log(`  file changed while stopped: ${changedWhileStopped}; acks while stopped: ${acksWhileStopped}; timeout errors meanwhile: ${timeouts}`);
      console.log(`  after SIGCONT: ${acksAfterResume} acks (${victimAckedAfterResume} by the resumed holder); lost: ${report.lost}; file parses: ${report.fileParses}`);
      console.log(`  worker errors: ${JSON.stringify(report.workerErrors)}`);
      console.log(report.ok ? '  OK' : '  FAILED');
    }
    process.exitCode = report.ok ? 0 : 1;
  } finally {
    header.stop();
    await workers.stopAll();
    cleanup();
  }
}

main().catch((err) => {
  console.error(err?.stack ?? String(err));
  process.exit(1);
});
