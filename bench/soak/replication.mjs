#!/usr/bin/env node
// Issue 25 at soak size: each replicated engine (private clusters started here,
// test/support/clusters/*.mjs) under the failover workload
// (test/fixtures/replication/workload.mjs) for `--minutes`, its primary (or the
// stream's leader) SIGKILLed, replaced and brought back over and over.
// CI runs the same at a few failovers (test/faults/replication-*.test.ts).
//   node bench/soak/replication.mjs [--minutes 60] [--engines postgres,nats,redis] [--variants durable,lossy]
//                                   [--acks-between 300] [--pg-kill machine|postmaster-first]
// Prints per engine and variant: failovers, acknowledged vs stored, lost vs
// reported lost, revisions reused, watch gaps/repeats, kill → first write
// (median, worst); exits 1 when a verdict fails.
import { durableViolations, lossyViolations, runReplicationWorkload } from '../../test/fixtures/replication/workload.mjs';
import { flagArgs, median } from '../lib/figures.mjs';
import { SETUPS } from '../lib/replication-setups.mjs';

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => process.exit(130));

const flags = flagArgs();
const minutes = Number(flags.minutes ?? 60);
const engines = String(flags.engines ?? 'postgres,nats,redis,http').split(',');
const variants = String(flags.variants ?? 'durable,lossy').split(',');
const acksBetween = Number(flags['acks-between'] ?? 300);
const began = Date.now();
const log = (tag) => (line) => console.log(`[${tag} +${((Date.now() - began) / 1000).toFixed(0)} s] ${line}`);

const runs = SETUPS.filter((s) => engines.includes(s.engine) && variants.includes(s.variant));
const budgetMs = (minutes * 60_000) / Math.max(1, runs.length);
let violations = 0;
const rows = [];
for (const setup of runs) {
  const tag = `${setup.engine}/${setup.variant}`;
  const cluster = await setup.start({ pgKill: flags['pg-kill'] });
  try {
    const until = Date.now() + budgetMs;
    let failovers = 0;
    const f = await runReplicationWorkload({
      // Durable setups accept a reported loss too: it is a violation all the same (durableViolations), but
      // accepting lets the run go on and the final read tell whether the loss reported was real (acknowledged
      // vs stored); without it every caller, the final read included, fails for the rest of the run.
      url: setup.url(cluster), acceptLoss: true, log: log(tag),
      fault: async (ctl) => {
        while (Date.now() < until) {
          await ctl.waitForAcks(acksBetween);
          await setup.failover(cluster, { log: log(tag), mark: () => ctl.marked('kill'), ctl });
          failovers++;
        }
        await ctl.waitForAcks(acksBetween);
      },
    });
    const broken = setup.variant === 'lossy' ? lossyViolations(f) : durableViolations(f);
    violations += broken.length;
    const takeovers = f.takeoverMs.filter((t) => t !== null);
    rows.push({
      setup: tag, minutes: (f.durationMs / 60_000).toFixed(1), failovers, acked: f.acked, stored: f.stored, lost: f.lostAtMost > f.lost ? `${f.lost}–${f.lostAtMost}` : f.lost, reportedLost: f.reportedLost,
      lossesAccepted: f.dataLost.accepted, appliedTwice: f.appliedTwice, unknown: f.unknownOutcome, revisionsReused: f.revisionsReused,
      wrongValues: f.wrongValues.length, watch: f.watch && `${f.watch.events} events, ${f.watch.gaps} gaps (${f.watch.skipped} passed over, ${f.watch.notReached} not reached${f.watch.caughtUp ? '' : ', not caught up'}), ${f.watch.repeats} repeats, ${f.watch.explainedBreaks} typed breaks`,
      takeoverMedianMs: takeovers.length ? median(takeovers) : null, takeoverWorstMs: takeovers.length ? Math.max(...takeovers) : null,
      noWriteAfterKill: f.takeoverMs.length - takeovers.length, errors: JSON.stringify(f.errorsByCode),
    });
    for (const line of broken) console.log(`VIOLATION ${tag}: ${line}`);
    for (const trace of f.watch?.skipTraces ?? []) console.log(`PASSED OVER ${tag}: ${JSON.stringify(trace)}`);
  } finally {
    await cluster.stop();
  }
}
console.log(`\nreplication soak: ${minutes} min over ${runs.length} setups`);
for (const r of rows) console.log(JSON.stringify(r));
console.log(violations === 0 ? 'verdict: every verdict holds' : `verdict: ${violations} violations`);
process.exit(violations === 0 ? 0 : 1);
