/**
 * Loss detection after a failover to an asynchronous standby.
 *
 * A promoted standby may lack commits the old primary acknowledged, and its
 * revision sequence stands where the last WAL it replayed left it — so it
 * would hand out again revisions already handed out. PostgreSQL says when
 * this can have happened: every promotion starts a new WAL timeline. So each
 * new connection asks its member's timeline (TIMELINE_SQL); when it is one
 * this process has not met:
 *
 * 1. Adopt it (once per store, under an advisory lock): the first process to
 *    meet a new timeline after an earlier one records it with the sequence
 *    value found there and raises the sequence by LOSS_GAP above that and
 *    above every revision it knows of — no revision is handed out twice.
 * 2. Check what this process was told, before the connection serves
 *    anything: the acknowledged writes it keeps (a ring of the last
 *    RING_SIZE (key, revision)s: puts, deletes, atomic sets and deletes) and
 *    the newest revision of each of the last DELIVERED_KEYS keys it told a
 *    caller of (get, list, history, watch event, write) must be on the
 *    member, and no revision it delivered may lie above the sequence value
 *    the new timeline started from (a commit that reached the standby
 *    brought the sequence's WAL with it). Anything missing is a loss:
 *    recorded in `<p>losses` (after, upTo], which latches it for every
 *    process — and this process fails its own next call with it, instead of
 *    serving an older revision than one it handed out until another
 *    process's poll.
 * 3. While an unaccepted loss is recorded, every operation of every process
 *    fails with DataLostError (processes learn it on their next new
 *    connection or within POLL_MS) until store.acceptLoss().
 * 4. A process that found what it told missing owes its callers the news,
 *    however soon an operator accepts (possibly before a caller sleeping in
 *    update()'s backoff came by): every operation of it that began before it
 *    learned of the acceptance — an update() counts from its start, a watch
 *    from watch() — fails with DataLostError (owedTo). Its own ranges stay
 *    recorded until accepted: a record lost in the next failover (written
 *    after the standby stopped following) is written again.
 *
 * A failover to a synchronous standby changes the timeline too: the
 * sequence is raised (a gap) and the check finds nothing missing.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { PoolClient } from 'pg';
import { DataLostError, type DataLossDetails } from '../core/index.js';
import type { Durability } from '../core/index.js';
import { StaleConnectionError } from './errors.js';
import { ReadOnlyMemberError } from './hosts.js';
import { durabilityOf } from './replication.js';
import { num, type Row } from './rows.js';
import type { Names } from './schema.js';
import {
  TIMELINE_SQL, acceptLossSql, adoptSql, missingSql, openLossSql, ownLossSql, presentSql, raiseSeqSql, recordLossSql, seqLastSql, timelinesSql,
} from './sql/lineage.js';

/** How far the sequence is raised on a new timeline: above any revision the lost commits can have drawn (a billion per failover). */
export const LOSS_GAP = 1_000_000_000;
/** Acknowledged writes each process keeps to check against a promoted member. */
const RING_SIZE = 4096;
/** Keys whose newest delivered revision each process keeps to check against a promoted member (the least recently delivered go first). */
export const DELIVERED_KEYS = 16_384;
/** How often a process asks whether another one latched a loss. */
export const POLL_MS = 1000;

export interface LossState {
  /** The hull of the ranges. */
  after: number;
  upTo: number;
  detectedAt: string;
  /** Each range recorded (after, upTo]: only revisions of writes this member lacks, never one it has. */
  ranges: { after: number; upTo: number }[];
}

/** Sorted missing revisions → ranges (after, upTo] that hold them and no present revision. */
export function lossRanges(missing: number[], present: number[]): { after: number; upTo: number }[] {
  const out: { after: number; upTo: number }[] = [];
  for (const r of missing) {
    const last = out[out.length - 1];
    // Extend the current range when no present revision lies between its end and r.
    if (last && !present.some((x) => x > last.upTo && x < r)) last.upTo = r;
    else out.push({ after: r - 1, upTo: r });
  }
  return out;
}

export class Lineage {
  /** The timeline this process last served from (undefined until the first connection after open). */
  timeline: number | undefined;
  /** Timeline changes this process met since it opened. */
  failovers = 0;
  /** An unaccepted loss: every operation fails with DataLostError while it is set. */
  lost: LossState | undefined;
  /** After migrations ran: before, the tables this needs may not exist. */
  ready = false;
  /** The durability the serving member's settings give (read on every new connection; onDurability hears of changes). */
  durability: Durability | undefined;
  onDurability: ((d: Durability) => void) | undefined;
  /** The highest timeline met: a member on a lower one is an old primary that kept running after a promotion, refused. */
  private maxTimeline = 0;
  private readonly ringKeys: string[] = [];
  private readonly ringRevs: number[] = [];
  private ringNext = 0;
  /** key → the newest revision of it told to a caller (Map order: least recently delivered first). */
  private readonly delivered = new Map<string, number>();
  /** The highest revision of a commit this process told a caller of. */
  private highest = 0;
  /** Each connection checked, with the WAL timeline its member served when it was made. */
  private readonly checked = new WeakMap<PoolClient, number>();
  private adopting: { timeline: number; done: Promise<void> } | undefined;
  /** The highest timeline an adoption began for, even one that failed: a member on it was seen serving writes. */
  private newestSeen = 0;
  /** What this process found missing of what it told, until it learns that an operator accepted it. */
  private owed: LossState | undefined;
  /** The last loss owed, once accepted: operations begun before the acceptance was learned still fail with it. */
  private settled: LossState | undefined;
  /** Grows each time this process learns that its own loss was accepted; operations note it when they begin. */
  private epoch = 0;
  /** An update()'s epoch, for the store calls it makes (its reads after a backoff begin later than it did). */
  private readonly operation = new AsyncLocalStorage<number>();

  constructor(
    private readonly names: Names,
    /** The store's address for DataLostError's details (redacted). */
    private readonly address: () => string,
    /** false: no detection at all (a test-only canary: revisions repeat, losses go unreported). */
    readonly enabled: boolean,
  ) {}

  /** A write of `key` was acknowledged at `revision`. */
  noteAck(key: string, revision: number): void {
    if (!this.enabled) return;
    this.noteDelivered(key, revision);
    this.ringKeys[this.ringNext] = key;
    this.ringRevs[this.ringNext] = revision;
    this.ringNext = (this.ringNext + 1) % RING_SIZE;
  }

  /** A committed revision was delivered to a caller (a read, a watch event, an atomic commit). */
  noteSeen(revision: number): void {
    if (revision > this.highest) this.highest = revision;
  }

  /**
   * Revision `revision` of `key` was told to a caller. Per key the newest is
   * enough: a key's revisions commit in order (its row lock), so a member
   * that has it has every older one.
   */
  noteDelivered(key: string, revision: number): void {
    if (!this.enabled || revision <= 0) return;
    this.noteSeen(revision);
    const had = this.delivered.get(key);
    if (had !== undefined && had >= revision) return;
    this.delivered.delete(key);
    this.delivered.set(key, revision);
    if (this.delivered.size > DELIVERED_KEYS) this.delivered.delete(this.delivered.keys().next().value as string);
  }

  /** The epoch an operation began in: the enclosing update()'s, else now. */
  begin(): number {
    return this.operation.getStore() ?? this.epoch;
  }

  /** Runs an update(): the store calls it makes count as begun when it began (see owedTo). */
  within<R>(fn: () => Promise<R>): Promise<R> {
    if (!this.enabled || this.operation.getStore() !== undefined) return fn();
    return this.operation.run(this.epoch, fn);
  }

  /**
   * Throws the DataLostError an operation begun at epoch `begun` is owed:
   * while a loss is latched; while this process's own loss is not known to
   * be accepted; and, once it is, to an operation begun before this process
   * learned so — its caller may have been told a revision that is gone and
   * must hear of it before it is answered from the state that lacks it.
   */
  owedTo(begun: number): void {
    this.assertNotLost();
    const owed = this.owed ?? (begun < this.epoch ? this.settled : undefined);
    if (owed) throw this.lostError(owed);
  }

  /** Throws DataLostError while a loss is latched. */
  assertNotLost(): void {
    const l = this.lost;
    if (l) throw this.lostError(l);
  }

  private lostError(l: LossState): DataLostError {
    return new DataLostError(
      `postgres at ${this.address()} lost acknowledged writes in a failover: revisions after ${l.after} up to ${l.upTo} that callers were told of are not on the serving member ` +
        `(detected ${l.detectedAt}). Every operation fails with this until an operator accepts the loss (store.acceptLoss(), revkit accept-loss)`,
      // ranges: the exact ranges (after/upTo is their hull, which may cover writes that survived between them).
      { store: this.address(), after: l.after, upTo: l.upTo, detectedAt: l.detectedAt, ranges: l.ranges } as DataLossDetails,
    );
  }

  /** This process learned that its own loss was accepted: operations begun from now on go on. */
  private ownLossAccepted(): void {
    if (!this.owed) return;
    this.settled = this.owed;
    this.owed = undefined;
    this.epoch += 1;
  }

  /** Ranges this process found missing of what it told: owed to its callers until accepted. */
  private noteOwn(ranges: { after: number; upTo: number }[]): void {
    const all = [...(this.owed?.ranges ?? []), ...ranges];
    this.owed = {
      after: Math.min(...all.map((r) => r.after)), upTo: Math.max(...all.map((r) => r.upTo)),
      detectedAt: this.owed?.detectedAt ?? new Date().toISOString(), ranges: all,
    };
  }

  /** A new connection: its member must be writable; a timeline this process has not met is adopted and checked first. */
  async check(client: PoolClient): Promise<void> {
    if (!this.ready) return;
    if (this.checked.has(client)) {
      // A pooled connection to a member this process has since seen superseded (the old primary's sessions can
      // outlive its promotion elsewhere): statements there would read a past the new member has moved on from.
      if (this.isStale(client)) throw new StaleConnectionError(`a pooled connection made on WAL timeline ${this.checked.get(client)}, older than timeline ${this.maxTimeline}`);
      return;
    }
    const row = (await client.query<Row>(TIMELINE_SQL)).rows[0] ?? {};
    if (row.recovery === true) throw new ReadOnlyMemberError(`postgres at ${this.address()} is a standby in recovery: it takes no writes`);
    // Another member, a failover or a reload may have changed what an acknowledgement means.
    const durability = durabilityOf(String(row.fsync), String(row.sc), String(row.standbys));
    if (durability !== this.durability) {
      this.durability = durability;
      this.onDurability?.(durability);
    }
    const timeline = parseInt(String(row.tli), 16);
    if (!this.enabled) {
      this.checked.set(client, timeline);
      return;
    }
    if (timeline < this.maxTimeline) {
      // A primary on a timeline older than one this process served from: the old primary restarted as a primary
      // after a standby was promoted (split brain). Writing there would diverge silently.
      throw new ReadOnlyMemberError(`postgres at ${this.address()} serves WAL timeline ${timeline}, older than timeline ${this.maxTimeline} this process already served from: ` +
        'an old primary that kept running (or came back) after a standby was promoted; refused (rebuild it as a standby of the new primary)');
    }
    if (timeline !== this.timeline) {
      // One adoption at a time per process: connections made meanwhile wait for it.
      while (this.adopting && this.adopting.timeline !== timeline) await this.adopting.done.catch(() => undefined);
      if (timeline !== this.timeline) {
        if (!this.adopting) {
          if (timeline > this.newestSeen) this.newestSeen = timeline;
          const done = this.adopt(client, timeline).finally(() => (this.adopting = undefined));
          this.adopting = { timeline, done };
        }
        await this.adopting.done;
      }
    }
    this.checked.set(client, timeline);
  }

  /** Whether `client` was made on a timeline older than one this process has met since: check() discards it. */
  isStale(client: PoolClient): boolean {
    const made = this.checked.get(client);
    return made !== undefined && made < this.maxTimeline;
  }

  /**
   * Whether a statement that just ended on `client` may not be acknowledged:
   * its member was superseded — a newer timeline met, or seen: being adopted
   * now, or an adoption that failed (the promoted member died during it). An
   * acknowledgement noted during the adoption would miss checkTold(), which
   * has read (and then clears) what this process was told; one noted after
   * a failed adoption would be served from the old member as if nothing had
   * been promoted (review, 2026-12-06).
   */
  endedSuperseded(client: PoolClient): boolean {
    const made = this.checked.get(client);
    // newestSeen is raised when an adoption begins, maxTimeline when it ends: it is never the lower.
    return made !== undefined && made < this.newestSeen;
  }

  private async adopt(client: PoolClient, timeline: number): Promise<void> {
    const n = this.names;
    const previous = this.timeline;
    await client.query('BEGIN');
    let rows: Row[];
    try {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`${n.lockKey}:timelines`]);
      rows = (await client.query<Row>(timelinesSql(n))).rows;
      if (!rows.some((r) => num(r.timeline) === timeline)) {
        const s = num((await client.query<Row>(seqLastSql(n))).rows[0]?.s);
        // An earlier timeline recorded: this member was promoted since. Revisions go on far above anything handed out there.
        const floor = rows.length > 0 ? Math.max(s, this.highest) + LOSS_GAP : s;
        if (floor > s) await client.query(raiseSeqSql(n), [floor]);
        await client.query(adoptSql(n), [timeline, s, floor]);
        rows.push({ timeline, seq_at_adoption: s, floor });
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    if (previous !== undefined) {
      this.failovers += 1;
      await this.checkTold(client, previous, timeline, rows);
    }
    this.timeline = timeline;
    if (timeline > this.maxTimeline) this.maxTimeline = timeline;
    await this.refresh(client);
  }

  /** After a move from timeline `from`: what this process was told that the member lacks is recorded as a loss. */
  private async checkTold(client: PoolClient, from: number, to: number, rows: Row[]): Promise<void> {
    // The timeline promoted out of `from` (the next one recorded), else the one met now.
    const next = rows.map((r) => ({
      timeline: num(r.timeline), start: num(r.seq_at_adoption), floor: num(r.floor),
      // Recorded since schema version 3; before, unknown: nothing counts as pruned (a purged key's revision may be reported lost).
      pruned: r.pruned_at_adoption === null || r.pruned_at_adoption === undefined ? 0 : num(r.pruned_at_adoption),
    })).filter((r) => r.timeline > from).sort((a, b) => a.timeline - b.timeline)[0] ?? { timeline: to, start: Infinity, floor: Number.MAX_SAFE_INTEGER, pruned: 0 };
    // The acknowledged writes, and the newest delivered revision of each key (reads, lists, history, watch events).
    const keys = [...this.ringKeys, ...this.delivered.keys()];
    const revs = [...this.ringRevs, ...this.delivered.values()];
    const missing = [...new Set((await client.query<Row>(missingSql(this.names), [keys, revs, next.pruned, next.floor])).rows.map((r) => num(r.revision)))];
    const beyond = this.highest > next.start;
    if (missing.length > 0 || beyond) {
      missing.sort((a, b) => a - b);
      // Revisions are not commit-ordered: a write that survived may lie between lost ones. Ranges are cut around
      // every revision this member has, so a range never covers a write that is there.
      const present = missing.length === 0 ? [] : (await client.query<Row>(presentSql(this.names), [missing[0] as number, missing[missing.length - 1] as number])).rows.map((r) => num(r.revision));
      const ranges = lossRanges(missing, present);
      // Above the sequence value the new timeline started from nothing of the old one can be here.
      if (beyond) ranges.push({ after: next.start, upTo: this.highest });
      for (const r of ranges) await client.query(recordLossSql(this.names), [to, r.after, r.upTo]);
      this.noteOwn(ranges);
    }
    // Checked (and any loss recorded): what follows is told on this timeline.
    this.ringKeys.length = 0;
    this.ringRevs.length = 0;
    this.ringNext = 0;
    this.delivered.clear();
  }

  /** Reads the latch: the unaccepted losses recorded by any process. */
  async refresh(client: PoolClient): Promise<void> {
    if (!this.ready || !this.enabled) return;
    let rows = (await client.query<Row>(openLossSql(this.names))).rows;
    const own = this.owed?.ranges[0];
    if (rows.length === 0 && own) {
      // Nothing open: an operator accepted this process's loss — unless its record was lost in a later
      // failover (written after the standby stopped following): then it is recorded again.
      const kept = num((await client.query<Row>(ownLossSql(this.names), [own.after, own.upTo])).rows[0]?.n);
      if (kept === 0) {
        for (const r of this.owed?.ranges ?? []) await client.query(recordLossSql(this.names), [this.timeline ?? 0, r.after, r.upTo]);
        rows = (await client.query<Row>(openLossSql(this.names))).rows;
      }
    }
    if (rows.length === 0) {
      this.lost = undefined;
      this.ownLossAccepted();
      return;
    }
    const ranges = rows.map((r) => ({ after: num(r.after), upTo: num(r.up_to) }));
    const at = rows.map((r) => (r.detected_at instanceof Date ? r.detected_at.toISOString() : String(r.detected_at))).sort()[0] as string;
    this.lost = { after: Math.min(...ranges.map((r) => r.after)), upTo: Math.max(...ranges.map((r) => r.upTo)), detectedAt: at, ranges };
  }

  /** An operator accepts the recorded losses: operations go on, revisions above every one handed out before (the sequence was raised on adoption, and is raised above what this process saw). */
  async accept(client: PoolClient): Promise<void> {
    await client.query(acceptLossSql(this.names));
    if (this.enabled) await client.query(raiseSeqSql(this.names), [this.highest]);
    this.lost = undefined;
    this.ownLossAccepted();
  }
}
