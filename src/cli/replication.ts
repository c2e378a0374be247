import type { Command } from 'commander';
import { UnsupportedError, type Store } from '../core/index.js';

type WithStore = <R>(cmd: Command, fn: (store: Store) => Promise<R>) => Promise<R>;

const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

/**
 * `revkit status`: the store's replication state as JSON (null for a store
 * without replication). `revkit accept-loss`: an operator accepts a loss of
 * acknowledged writes the store detected (every operation fails with
 * ERR_DATA_LOST until then); prints what was accepted (null: nothing was
 * lost) and the state after. Both work with --store and with --server.
 */
export function registerReplication(program: Command, withStore: WithStore): void {
  program.command('status').description('print the store\'s replication state as JSON: serving member, members and roles, durability, failovers, a detected loss (null: no replication)')
    .action(async (_opts: unknown, cmd: Command) => withStore(cmd, async (s) => {
      print(s.replication ? await s.replication() : null);
    }));

  program.command('accept-loss').description('accept a detected loss of acknowledged writes, so that operations stop failing with ERR_DATA_LOST; prints what was accepted')
    .action(async (_opts: unknown, cmd: Command) => withStore(cmd, async (s) => {
      if (!s.acceptLoss) throw new UnsupportedError('acceptLoss', s.backend);
      // Over HTTP the replication state comes from the server; a store that cannot report one just says null.
      const before = s.replication ? await s.replication() : null;
      await s.acceptLoss();
      const after = s.replication ? await s.replication() : null;
      print({ accepted: before?.lost ?? null, replication: after });
    }));
}
