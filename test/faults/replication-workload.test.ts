/**
 * The failover workload of issue 25 (test/fixtures/replication/workload.mjs)
 * judges from what callers and the watch were told. Before it judges any
 * replicated engine, it must pass a run where nothing goes wrong and catch a
 * store that goes back to the past silently (every counter put back to zero
 * by a plain write mid-run: what a failover to a replica that missed the
 * writes looks like without detection). SQLite, several processes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { open } from '../../dist/open.js';
import { durableViolations, lossyViolations, runReplicationWorkload } from '../fixtures/replication/workload.mjs';

const dir = mkdtempSync(join(tmpdir(), 'revkit-workload-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const log = (line: string) => console.log(`[workload] ${line}`);

describe('the replication workload', () => {
  it('passes a run with nothing wrong: every acknowledged increment stored once, the watch complete', async () => {
    const url = `sqlite:${join(dir, 'clean.db')}`;
    const f = await runReplicationWorkload({ url, log, fault: async (ctl) => {
      await ctl.waitForAcks(200);
      ctl.marked('nothing');
      await ctl.waitForAcks(200);
    } });
    expect(f.acked).toBeGreaterThanOrEqual(400);
    expect(durableViolations(f)).toEqual([]);
    expect(lossyViolations(f)).toEqual([]);
    expect(f.takeoverMs[0]).not.toBeNull();
  }, 120_000);

  it('catches the past served silently: lost increments, counts going back, the watch going back, none reported', async () => {
    const url = `sqlite:${join(dir, 'rollback.db')}`;
    const side = await open(url);
    try {
      const f = await runReplicationWorkload({ url, log, fault: async (ctl) => {
        await ctl.waitForAcks(300);
        const { entries } = await side.list({ prefix: 'rep-' });
        for (const e of entries) await side.put(e.key, { n: 0, w: {} });
        await ctl.waitForAcks(300);
      } });
      expect(f.lost).toBeGreaterThan(0);
      expect(f.reportedLost).toBe(0);
      expect(f.wrongValues.length).toBeGreaterThan(0);
      expect(f.watch.repeats).toBeGreaterThan(0);
      expect(durableViolations(f).length).toBeGreaterThan(0);
      expect(lossyViolations(f).join('\n')).toMatch(/lost, 0 reported lost/);
    } finally {
      await side.close();
    }
  }, 120_000);
});
