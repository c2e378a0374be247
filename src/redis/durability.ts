import type { Durability } from '../core/index.js';

/** appendonly + appendfsync say what an acknowledged write survives (README: "Redis"); `note` says how that was found out. */
export async function detectDurability(call: (...args: string[]) => Promise<unknown>): Promise<{ durability: Durability; note: string }> {
  let durability: Durability;
  let note: string;
  try {
    // Sent together: one round trip.
    const [aof, fsync, maxmemory, policy] = (await Promise.all(['appendonly', 'appendfsync', 'maxmemory', 'maxmemory-policy']
      .map((name) => call('CONFIG', 'GET', name)))).map((pair) => (pair as string[])[1]);
    durability = aof !== 'yes' ? 'memory' : fsync === 'always' ? 'fsync' : 'os-buffered';
    note = `appendonly ${aof ?? '?'}, appendfsync ${fsync ?? '?'}`;
    // An evicting server may drop a record or its history at any time: no better than memory.
    if (maxmemory !== '0' && policy !== 'noeviction') {
      durability = 'memory';
      note += `; maxmemory ${maxmemory} with maxmemory-policy ${policy ?? '?'} may evict this store's keys (use noeviction)`;
    }
  } catch (err) {
    durability = 'memory';
    note = `CONFIG GET was refused (${(err as Error).message}): assumed memory, as an acknowledged write may live in memory only`;
  }
  return { durability, note };
}
