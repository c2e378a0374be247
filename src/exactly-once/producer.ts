import { assertOptions, type Store } from '../core/index.js';
import { assertProducerId, layout, partitionName, type Layout } from './keys.js';
import { assertAtomic } from './support.js';
import type { DedupRecord, EpochRecord, ExactlyOnceOptions, Stamp } from './types.js';

export interface Producer {
  readonly producerId: string;
  readonly epoch: number;
  /** The next stamp of a partition: sequences count up by one per partition, continuing across epochs. */
  stamp(partition: string | number): Stamp;
  /** The sequence the next stamp of `partition` will carry. */
  next(partition: string | number): number;
  /** The last sequence of `partition` that a consumer committed (-1 when none): read from the store. */
  committed(partition: string | number): Promise<number>;
}

/**
 * Registers an instance of a producer: bumps its epoch, which fences every
 * older instance (from this commit on, no consumer applies a stamp of an
 * older epoch), then reads where each of its partitions was committed.
 *
 * The new instance continues from the last COMMITTED sequence, that is the
 * last one a consumer applied (the dedup record), not the last one the old
 * instance sent: whatever the old instance sent after that is fenced and will
 * never apply, so the new one re-issues those sequences — it must resend
 * every message from `next(partition)` on. Reading after the epoch bump makes
 * that position final: no older-epoch commit can land after it.
 */
export async function registerProducer(store: Store, producerId: string, options: ExactlyOnceOptions = {}): Promise<Producer> {
  assertAtomic(store, 'registerProducer');
  assertOptions(options, 'registerProducer()');
  assertProducerId(producerId);
  const keys = layout(options.prefix);
  const bumped = await store.update<EpochRecord>(keys.epochKey(producerId), nextEpoch, { combine: false });
  const epoch = (bumped as { value: EpochRecord }).value.epoch;
  const next = new Map<string, number>();
  for (const [partition, dedup] of await dedupRecords(store, keys, producerId)) next.set(partition, dedup.lastSequence + 1);

  return {
    producerId,
    epoch,
    stamp(partition) {
      const p = partitionName(partition);
      const sequence = next.get(p) ?? 0;
      next.set(p, sequence + 1);
      return { producerId, epoch, partition: p, sequence };
    },
    next: (partition) => next.get(partitionName(partition)) ?? 0,
    async committed(partition) {
      const dedup = await store.get<DedupRecord>(keys.dedupKey(producerId, partitionName(partition)));
      return dedup?.value.lastSequence ?? -1;
    },
  };
}

/**
 * Retires a producer: fences every instance for good, then deletes its dedup
 * records (the only way they go: never by age). The small epoch record stays,
 * so late stamps remain fenced; registering the id again starts a new epoch at
 * sequence 0. Safe to repeat after a crash halfway.
 */
export async function retireProducer(store: Store, producerId: string, options: ExactlyOnceOptions = {}): Promise<{ partitions: number }> {
  assertAtomic(store, 'retireProducer');
  assertOptions(options, 'retireProducer()');
  assertProducerId(producerId);
  const keys = layout(options.prefix);
  await store.update<EpochRecord>(keys.epochKey(producerId), (current) => ({ epoch: (current?.epoch ?? 0) + 1, retired: true }), { combine: false });
  const records = await dedupRecords(store, keys, producerId);
  for (const [partition] of records) await store.delete(keys.dedupKey(producerId, partition));
  return { partitions: records.size };
}

/**
 * The epoch record of a new registration: the next epoch, remembering up to
 * which epoch a retirement deleted the dedup records (so that consumers answer
 * "unknown", not "never applied", for stamps of those epochs).
 */
function nextEpoch(current: EpochRecord | undefined): EpochRecord {
  const next: EpochRecord = { epoch: (current?.epoch ?? 0) + 1 };
  const retiredEpoch = current?.retired ? current.epoch : current?.retiredEpoch;
  if (retiredEpoch !== undefined) next.retiredEpoch = retiredEpoch;
  return next;
}

async function dedupRecords(store: Store, keys: Layout, producerId: string): Promise<Map<string, DedupRecord>> {
  const found = new Map<string, DedupRecord>();
  const prefix = keys.dedupPrefix(producerId);
  let after: string | undefined;
  do {
    const page = await store.list<DedupRecord>(after === undefined ? { prefix, limit: 500 } : { prefix, limit: 500, after });
    for (const entry of page.entries) found.set(keys.partitionOf(entry.key, producerId), entry.value);
    after = page.cursor;
  } while (after !== undefined);
  return found;
}

