#!/usr/bin/env node
// Soak of follow() (issue 12): a consumer SIGKILLed at random 50 times while a producer writes
// 10,000 changes must miss none. Runs on SQLite by default; --store URL (repeatable) for others.
//   node bench/soak/checkpoints-follow.mjs [--kills 50] [--changes 10000] [--store URL ...]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runFollowKills } from '../../test/fixtures/checkpoints-follow-run.mjs';

const { values } = parseArgs({ options: { kills: { type: 'string', default: '50' }, changes: { type: 'string', default: '10000' }, store: { type: 'string', multiple: true } } });
const dir = mkdtempSync(join(tmpdir(), 'revkit-soak-follow-'));
const stores = values.store ?? [`sqlite:${join(dir, 'follow.db')}?synchronous=normal`];
let failed = 0;
try {
  for (const url of stores) {
    const report = await runFollowKills({
      url, kills: Number(values.kills), changes: Number(values.changes), catchUpMs: 600_000,
      onProgress: ({ killed, produced }) => killed % 10 === 0 && process.stderr.write(`  ${killed} kills, ${produced} changes written\n`),
    });
    const ok = report.missed === 0 && report.unexpected === 0 && report.failures.length === 0;
    if (!ok) failed++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${report.url}: ${report.kills} kills, ${report.changes} changes, ${report.missed} missed, `
      + `${report.redelivered} handled twice, ${(report.elapsedMs / 1000).toFixed(1)} s`);
    if (!ok) console.log(JSON.stringify({ missedSample: report.missedSample, unexpected: report.unexpected, failures: report.failures }));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed === 0 ? 0 : 1);
