import { FencedError, InvalidArgumentError, OutOfOrderError, SequenceReusedError } from '../core/index.js';
import type { DedupRecord, EpochRecord, FencedDetails, Outcome, RecentResult, Stamp } from './types.js';

export type Decision<R> = { apply: true } | { apply: false; outcome: Outcome<R> };

/**
 * How many earlier epochs a dedup record remembers the end of (`past`): a
 * stamp of one of them is told applied (duplicate) or never applied (fenced)
 * exactly; a stamp of an epoch further back only when its sequence is above
 * everything those epochs applied, else "unknown". 16 pairs are ~250 bytes,
 * written only once a partition has seen a second epoch.
 */
export const EPOCHS_KEPT = 16;

/**
 * The producer-state rules, as Kafka's broker applies them to a batch, for
 * one stamp against the producer's epoch record and its partition's dedup
 * record. Pure, so the rules can be read (and tested) in one place.
 */
export function decide<R>(stamp: Stamp, hash: string, epochRecord: EpochRecord | null, dedup: DedupRecord | null): Decision<R> {
  const where = { producerId: stamp.producerId, partition: stamp.partition, epoch: stamp.epoch, sequence: stamp.sequence };
  const name = `${JSON.stringify(stamp.producerId)}/${JSON.stringify(stamp.partition)}`;
  const seen = dedup?.recent.find((r) => r.sequence === stamp.sequence);
  // A redelivery of exactly what was applied is a duplicate even after its producer moved on to a newer epoch.
  if (seen && seen.epoch === stamp.epoch && seen.payloadHash === hash) return duplicate(seen);

  const current = epochRecord?.epoch ?? 0;
  if (stamp.epoch < current || epochRecord?.retired) {
    // Too old to apply now. What the caller is told says whether this stamp was applied before, truthfully.
    const applied = appliedUnder(stamp.epoch, stamp.sequence, dedup, forgottenEpochs(epochRecord));
    if (applied === true) {
      if (seen && seen.epoch === stamp.epoch) throw new SequenceReusedError(`sequence ${stamp.sequence} of ${name} was applied under epoch ${stamp.epoch} with another payload`, where);
      return { apply: false, outcome: { status: 'duplicate', result: undefined, resultAvailable: false } };
    }
    const why = epochRecord?.retired ? 'the producer was retired' : `epoch ${current} was registered since`;
    const was = applied === false
      ? `sequence ${stamp.sequence} was never applied under epoch ${stamp.epoch}, and now never will be`
      : `whether sequence ${stamp.sequence} was applied under epoch ${stamp.epoch} is no longer recorded (${stamp.epoch <= forgottenEpochs(epochRecord) ? 'the producer was retired since' : `more than ${EPOCHS_KEPT} epochs ago on this partition`})`;
    const details: FencedDetails = { ...where, currentEpoch: current, applied };
    throw new FencedError(`producer ${JSON.stringify(stamp.producerId)} epoch ${stamp.epoch} is fenced: ${why}; ${was}`, details);
  }
  if (stamp.epoch > current) {
    throw new InvalidArgumentError(`producer ${JSON.stringify(stamp.producerId)} never registered epoch ${stamp.epoch} (current: ${current})`);
  }

  const last = dedup?.lastSequence ?? -1;
  if (stamp.sequence <= last) {
    if (seen) throw new SequenceReusedError(`sequence ${stamp.sequence} of ${name} was applied with another payload`, where);
    // Older than the recent window: applied for sure (sequences only move forward), but the payload can no longer be compared.
    return { apply: false, outcome: { status: 'duplicate', result: undefined, resultAvailable: false } };
  }
  if (stamp.sequence > last + 1) {
    throw new OutOfOrderError(
      `sequence ${stamp.sequence} of ${name} arrived before ${last + 1}: nothing written, retry later`,
      { ...where, expectedSequence: last + 1 },
    );
  }
  return { apply: true };
}

function duplicate<R>(seen: RecentResult): Decision<R> {
  return 'result' in seen
    ? { apply: false, outcome: { status: 'duplicate', result: seen.result as R, resultAvailable: true } }
    : { apply: false, outcome: { status: 'duplicate', result: undefined, resultAvailable: false } };
}

/** Epochs whose dedup records may have been deleted (by retireProducer): all up to the retired one. */
function forgottenEpochs(epochRecord: EpochRecord | null): number {
  if (epochRecord?.retired) return epochRecord.epoch;
  return epochRecord?.retiredEpoch ?? 0;
}

/**
 * Was sequence `sequence` applied under epoch `epoch` on this partition?
 * Sequences of a (producer, partition) apply one after another, epoch after
 * epoch (a new epoch continues after the last sequence committed before its
 * registration, and no older epoch commits after it), so each epoch applied
 * one run of sequences, ending where the record says. Epochs whose end is no
 * longer recorded answer 'unknown' unless the sequence is above all they did.
 */
export function appliedUnder(epoch: number, sequence: number, dedup: DedupRecord | null, forgotten: number): boolean | 'unknown' {
  if (epoch <= forgotten) return 'unknown';
  if (dedup === null || sequence > dedup.lastSequence) return false;
  if (epoch === dedup.epoch) return true;
  if (epoch > dedup.epoch) return false; // that epoch never applied anything here
  if (dedup.past === undefined) {
    // Only a record written before epochs were tracked lacks `past` while holding an older epoch's stamps.
    return 'unknown';
  }
  const kept = dedup.past.find(([e]) => e === epoch);
  if (kept) return sequence <= kept[1];
  if (dedup.cut && epoch <= dedup.cut[0]) return sequence <= dedup.cut[1] ? 'unknown' : false;
  return false; // an epoch within what `past` covers that applied nothing here
}

/**
 * The dedup record after applying `stamp`: the new entry last in `recent`
 * (the last `window` kept), and, when the stamp's epoch is a new one on this
 * partition, the previous epoch's end added to `past` (the last EPOCHS_KEPT).
 * `firstEpoch` is the first epoch of the producer whose applies the store
 * can still hold (1, or the one after its last retirement).
 */
export function nextDedup(dedup: DedupRecord | null, stamp: Stamp, hash: string, result: unknown, window: number, commit: string, firstEpoch: number): DedupRecord {
  const recent = [...(dedup?.recent ?? []), { epoch: stamp.epoch, sequence: stamp.sequence, payloadHash: hash, result, commit }];
  const next: DedupRecord = { epoch: stamp.epoch, lastSequence: stamp.sequence, recent: recent.slice(Math.max(0, recent.length - window)) };
  let past = dedup?.past;
  let cut = dedup?.cut;
  if (dedup === null) {
    // Created under a later epoch: say so, so that the earlier epochs are known to have applied nothing here.
    if (stamp.epoch > firstEpoch) past = [];
  } else if (stamp.epoch !== dedup.epoch) {
    // A record from before epochs were tracked: its earlier epochs ended at or below its last sequence, exactly where is unknown.
    if (past === undefined && dedup.epoch > firstEpoch) cut = [dedup.epoch - 1, dedup.lastSequence];
    past = [...(past ?? []), [dedup.epoch, dedup.lastSequence]];
    if (past.length > EPOCHS_KEPT) {
      cut = past[past.length - EPOCHS_KEPT - 1];
      past = past.slice(past.length - EPOCHS_KEPT);
    }
  }
  if (past !== undefined) next.past = past;
  if (cut !== undefined) next.cut = cut;
  return next;
}

const utf8 = (text: string) => Buffer.byteLength(text, 'utf8');

/**
 * The record made to fit `maxBytes` (UTF-8 bytes of its JSON, what the JSON
 * codec stores): drops the results of the oldest entries first (their
 * sequence, payload hash and token stay), then, if that is not enough, the
 * oldest entries. The newest entry and its result always stay: when they
 * alone do not fit, undefined (the message is refused, nothing written).
 */
export function fitRecord(record: DedupRecord, maxBytes: number): { record: DedupRecord; bytes: number } | undefined {
  let bytes = utf8(JSON.stringify(record));
  if (bytes <= maxBytes) return { record, bytes };
  const recent = record.recent.map((r) => ({ ...r }));
  const newest = recent.length - 1;
  let from = 0;
  for (let i = 0; i < newest && bytes > maxBytes; i++) {
    const entry = recent[i] as RecentResult;
    if (!('result' in entry)) continue;
    bytes -= utf8(JSON.stringify({ result: entry.result })) - 1; // `,"result":…` inside the entry, which has members before it
    delete entry.result;
  }
  for (; from < newest && bytes > maxBytes; from++) bytes -= utf8(JSON.stringify(recent[from])) + 1; // the entry and its comma
  // The counts above are exact for entries as nextDedup() writes them; the exact size decides.
  for (;;) {
    const fitted = { ...record, recent: recent.slice(from) };
    bytes = utf8(JSON.stringify(fitted));
    if (bytes <= maxBytes) return { record: fitted, bytes };
    if (from >= newest) return undefined;
    delete (recent[from] as RecentResult).result;
    from++;
  }
}
