import { FencedError, InvalidArgumentError, OutOfOrderError, SequenceReusedError } from '../core/index.js';
import type { DedupRecord, EpochRecord, Outcome, Stamp } from './types.js';

export type Decision<R> = { apply: true } | { apply: false; outcome: Outcome<R> };

/**
 * The producer-state rules, as Kafka's broker applies them to a batch, for
 * one stamp against the producer's epoch record and its partition's dedup
 * record. Pure, so the rules can be read (and tested) in one place.
 */
export function decide<R>(stamp: Stamp, hash: string, epochRecord: EpochRecord | null, dedup: DedupRecord | null): Decision<R> {
  const where = { producerId: stamp.producerId, partition: stamp.partition, epoch: stamp.epoch, sequence: stamp.sequence };
  const seen = dedup?.recent.find((r) => r.sequence === stamp.sequence);
  // A redelivery of exactly what was applied is a duplicate even after its producer moved on to a newer epoch.
  if (seen && seen.epoch === stamp.epoch && seen.payloadHash === hash) return duplicate(seen.result as R);

  const current = epochRecord?.epoch ?? 0;
  if (stamp.epoch < current || epochRecord?.retired) {
    throw new FencedError(
      `producer ${JSON.stringify(stamp.producerId)} epoch ${stamp.epoch} is fenced: ${epochRecord?.retired ? 'the producer was retired' : `epoch ${current} was registered since`}`,
      { ...where, currentEpoch: current },
    );
  }
  if (stamp.epoch > current) {
    throw new InvalidArgumentError(`producer ${JSON.stringify(stamp.producerId)} never registered epoch ${stamp.epoch} (current: ${current})`);
  }

  const last = dedup?.lastSequence ?? -1;
  if (stamp.sequence <= last) {
    if (seen) {
      throw new SequenceReusedError(
        `sequence ${stamp.sequence} of ${JSON.stringify(stamp.producerId)}/${JSON.stringify(stamp.partition)} was applied with another payload`,
        where,
      );
    }
    // Older than the recent window: applied for sure (sequences only move forward), but the payload can no longer be compared.
    return { apply: false, outcome: { status: 'duplicate', result: undefined, resultAvailable: false } };
  }
  if (stamp.sequence > last + 1) {
    throw new OutOfOrderError(
      `sequence ${stamp.sequence} of ${JSON.stringify(stamp.producerId)}/${JSON.stringify(stamp.partition)} arrived before ${last + 1}: nothing written, retry later`,
      { ...where, expectedSequence: last + 1 },
    );
  }
  return { apply: true };
}

function duplicate<R>(result: R): Decision<R> {
  return { apply: false, outcome: { status: 'duplicate', result, resultAvailable: true } };
}

export function nextDedup(dedup: DedupRecord | null, stamp: Stamp, hash: string, result: unknown, window: number, commit: string): DedupRecord {
  const recent = [...(dedup?.recent ?? []), { epoch: stamp.epoch, sequence: stamp.sequence, payloadHash: hash, result, commit }];
  return { epoch: stamp.epoch, lastSequence: stamp.sequence, recent: recent.slice(Math.max(0, recent.length - window)) };
}
