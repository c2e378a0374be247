import type { FileRecord, FileState } from './format.js';

export interface EncodedValue {
  encoding: 'json' | 'base64';
  data: string;
}

export function isLive(r: FileRecord | null | undefined, now: number): boolean {
  return r != null && !r.deleted && !(r.expiresAt !== undefined && r.expiresAt <= now);
}

/**
 * The writes of one rewrite, as an overlay on the state read under the lock:
 * nothing touches that state until the new file is in place, so a failed
 * write leaves no trace and readers in this process never see it early.
 */
export class Transaction {
  readonly writes = new Map<string, FileRecord>();
  readonly changes: FileRecord[] = [];
  revision: number;
  readonly now = Date.now();

  constructor(readonly base: FileState) {
    this.revision = base.revision;
  }

  get(key: string): FileRecord | null {
    return this.writes.get(key) ?? this.base.records.get(key) ?? null;
  }

  nextRevision(): number {
    return ++this.revision;
  }

  put(key: string, value: EncodedValue, revision: number, ttlMs: number | undefined, writer: string | undefined): FileRecord {
    const previous = this.get(key);
    const rec: FileRecord = {
      key, revision,
      createdRevision: isLive(previous, this.now) ? ((previous as FileRecord).createdRevision as number) : revision,
      updatedAt: this.now,
      encoding: value.encoding,
      data: value.data,
    };
    if (ttlMs !== undefined) rec.expiresAt = this.now + ttlMs;
    if (writer !== undefined) rec.writer = writer;
    return this.record(rec);
  }

  remove(key: string, revision: number, writer: string | undefined): FileRecord {
    const rec: FileRecord = { key, revision, deleted: true, updatedAt: this.now };
    if (writer !== undefined) rec.writer = writer;
    return this.record(rec);
  }

  private record(rec: FileRecord): FileRecord {
    this.writes.set(rec.key, rec);
    this.changes.push(rec);
    return rec;
  }
}

/**
 * What the state becomes once the transaction commits: the change log trimmed
 * to `logSize` (with an eighth of slack, so the log is not cut on every
 * commit), and tombstones whose change left the log purged — revisions are
 * store-wide, so a purged tombstone's revision is never handed out again.
 */
export interface NextState {
  revision: number;
  prunedBelow: number;
  changes: FileRecord[];
  purged: Set<string>;
  records(): Iterable<FileRecord>;
  current(key: string): FileRecord | null;
  /** Applies the commit to the base state in place. */
  apply(): void;
}

export function nextState(tx: Transaction, logSize: number): NextState {
  const base = tx.base;
  let changes = base.changes.concat(tx.changes);
  let prunedBelow = base.prunedBelow;
  const purged = new Set<string>();
  if (changes.length > logSize + Math.ceil(logSize / 8)) {
    let drop = changes.length - logSize;
    prunedBelow = (changes[drop - 1] as FileRecord).revision;
    // A multi-key commit leaves the log whole or not at all.
    while (drop < changes.length && (changes[drop] as FileRecord).revision === prunedBelow) drop++;
    for (let i = 0; i < drop; i++) {
      const c = changes[i] as FileRecord;
      const current = tx.get(c.key);
      if (c.deleted && current?.deleted && current.revision === c.revision) purged.add(c.key);
    }
    changes = changes.slice(drop);
  }
  return {
    revision: tx.revision,
    prunedBelow,
    changes,
    purged,
    *records() {
      for (const [key, r] of base.records) if (!purged.has(key)) yield tx.writes.get(key) ?? r;
      for (const [key, r] of tx.writes) if (!base.records.has(key) && !purged.has(key)) yield r;
    },
    current: (key) => (purged.has(key) ? null : tx.get(key)),
    apply() {
      let keysChanged = purged.size > 0;
      for (const [key, r] of tx.writes) {
        if (!base.records.has(key)) keysChanged = true;
        base.records.set(key, r);
      }
      for (const key of purged) base.records.delete(key);
      base.changes = changes;
      base.prunedBelow = prunedBelow;
      base.revision = tx.revision;
      if (keysChanged) delete base.sortedKeys;
    },
  };
}
