/**
 * Issue 10, "High availability, the way services run it": three `revkit
 * serve` over one PostgreSQL, 64 clients spread over them — half calling
 * update() (the library loop over HttpStore, failing over to another replica
 * when theirs gives no answer), half plain GET → PUT If-Match loops — one
 * replica SIGKILLed and restarted mid-run, a watch on a replica that is never
 * killed. Only our own `revkit serve` processes are killed; PostgreSQL is the
 * shared one, with a schema of this run's own (dropped at the end).
 * The harness is test/fixtures/ha/run.mjs; bench/soak/ha.mjs runs it longer,
 * with several kills. Needs `npm run build` (servers and clients run dist/).
 */
import { describe, expect, it } from 'vitest';
import { CI_SIZE, runHa } from '../fixtures/ha/run.mjs';

const log = (line: string) => console.log(`[ha] ${line}`);

describe('high availability: 3 revkit serve over one PostgreSQL, a replica SIGKILLed and restarted mid-run', () => {
  it('update() callers: every acknowledged increment stored exactly once; plain If-Match loops: acknowledged ≤ stored ≤ acknowledged + cut; the watch sees every write in order', async () => {
    const f = await runHa(CI_SIZE, log);
    log(`figures: ${JSON.stringify({ kills: f.kills, update: f.update, plain: { ...f.plain, errors: f.plain.errors.length }, watch: f.watch })}`);

    // The kill happened under load and moved clients to the other replicas.
    expect(f.kills).toHaveLength(1);
    expect(f.update.replicaSwitches + f.plain.replicaSwitches).toBeGreaterThan(0);
    expect(f.update.acked).toBeGreaterThan(0);
    expect(f.plain.acked).toBeGreaterThan(0);

    // update(): a write cut by the kill is recognised by its writer token on another replica.
    expect({
      lost: f.update.lost, appliedTwice: f.update.appliedTwice, excess: f.update.excess, duplicateWriterTokens: f.duplicateWriterTokens,
      wrongValues: f.update.wrongValues, inconsistentValues: f.update.inconsistentValues,
      unknownOutcome: f.update.unknownOutcome, failed: f.update.failed,
    }).toEqual({
      lost: 0, appliedTwice: 0, excess: [], duplicateWriterTokens: [], wrongValues: [], inconsistentValues: 0, unknownOutcome: 0, failed: 0,
    });
    // An update() that gave up by its deadline committed nothing (the check above counts it so);
    // on a loaded machine a few may; most must not.
    expect(f.update.exhausted).toBeLessThan(f.update.acked / 10);
    expect(f.update.stored).toBe(f.update.acked);

    // Plain loops cannot tell a cut write from a lost one: the bound is all they get.
    expect(f.plain.keysOutOfBounds).toEqual([]);
    expect(f.plain.stored).toBeGreaterThanOrEqual(f.plain.acked);
    expect(f.plain.stored).toBeLessThanOrEqual(f.plain.acked + f.plain.cut + f.plain.answered5xx);

    expect({ caughtUp: f.watch.caughtUp, error: f.watch.error, gaps: f.watch.gaps, extra: f.watch.extra, outOfOrder: f.watch.outOfOrder, valueBreaks: f.watch.valueBreaks, firstProblems: f.watch.firstProblems })
      .toEqual({ caughtUp: true, error: undefined, gaps: 0, extra: 0, outOfOrder: 0, valueBreaks: 0, firstProblems: [] });
    expect(f.watchedReplicaLog).toBeUndefined();
    expect(f.watch.events).toBe(f.watch.committed);
  }, 420_000);

  it('the verdicts catch broken clients: update() without writer tokens that loses acknowledgements applies twice; blind PUTs lose updates', async () => {
    const f = await runHa({ ...CI_SIZE, canary: true, processesPerKind: 1, loadMs: 4_000, kills: [] }, log);
    log(`canary figures: ${JSON.stringify({ update: { ...f.update, excess: f.update.excess.length, errors: f.update.errors.length }, plain: { ...f.plain, keysOutOfBounds: f.plain.keysOutOfBounds.length, errors: f.plain.errors.length } })}`);
    expect(f.update.appliedTwice).toBeGreaterThan(0);
    expect(f.update.stored).toBeGreaterThan(f.update.acked);
    expect(f.plain.keysOutOfBounds.length).toBeGreaterThan(0);
    expect(f.plain.stored).toBeLessThan(f.plain.acked);
  }, 420_000);
});
