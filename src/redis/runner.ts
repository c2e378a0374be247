import { randomBytes } from 'node:crypto';
import { BackendError, DataLostError } from '../core/index.js';
import type { InFlight } from './connection.js';
import { mapRedisError } from './records.js';
import { SCRIPTS, type Script } from './scripts.js';

/** A script's answer; the first element (a status) is turned into a string. */
export type Reply = Array<Buffer | number | string | null | Reply>;

/** How the scripts of a store guard against lost data, and what an acknowledgement waits for. */
export interface RunnerSettings {
  /** The store's prefix, for messages. */
  prefix: string;
  /** The store's redacted address, for DataLostError's details. */
  address: string;
  /** Loss detection across failovers (lineage.ts). */
  detectLoss: boolean;
  /** Replicas every answer waits for (0: none), and for how long. */
  wait: number;
  waitTimeoutMs: number;
  /** The channel a read publishes to so that its WAIT covers what it read. */
  barrier: string;
}

/**
 * Runs the store's scripts, each with the store's incarnation marker and the
 * highest revision this store has seen: a server that lost the data
 * (restarted without persistence, flushed) answers LOST or ROLLBACK — latched
 * here, every later call fails the same way until acceptLoss() or the store
 * is opened again —; with loss detection, a failover that lost revisions this
 * process saw answers DATALOST, latched in the store's meta hash for every
 * process (lineage.ts). With `wait`, each script is followed by WAIT on the
 * same connection: an answer the replicas did not confirm is not an "ok".
 */
export class ScriptRunner {
  private incarnation = '';
  /** The highest revision this store has seen: the server's counter below it means it lost writes. */
  private highest = 0;
  private lostData: DataLostError | undefined;
  /** The highest gap base (lineage.ts) this process was told of with a DataLostError. */
  private told = 0;
  /** The last loss the server reported (cleared by the next answer that is not one). */
  private lastLoss: DataLostError | undefined;
  private readonly assertOpen: () => void;

  constructor(private readonly inFlight: InFlight, private readonly settings: RunnerSettings, assertOpen: () => void) {
    this.assertOpen = assertOpen;
  }

  /** Writes this opening's incarnation marker, or learns the one there. */
  async open(metaKey: string): Promise<void> {
    const marker = `${Date.now().toString(36)}-${randomBytes(8).toString('hex')}`;
    this.incarnation = String(await this.inFlight.evalsha(SCRIPTS.open, [metaKey], [marker]));
  }

  /** The highest revision this store has seen. */
  get seen(): number {
    return this.highest;
  }

  /** The error every operation fails with once the server lost data; undefined until then. */
  get lost(): DataLostError | undefined {
    return this.lostData ?? this.lastLoss;
  }

  /** Notes a revision the server answered; returns it. */
  saw(revision: number): number {
    if (revision > this.highest) this.highest = revision;
    return revision;
  }

  /**
   * Runs a script; its first reply element is a status. LOST and ROLLBACK
   * mean the server lost data under this store (latched here), DATALOST that
   * a failover lost revisions a process was told of (latched in the store).
   * With `wait`, fewer confirming replicas than asked: a write that
   * committed is ambiguous (it is on the master, it may be lost in a
   * failover), anything else a transient error.
   */
  /**
   * `background`: a call no caller waits for (the TTL sweeper, replication()'s look at the latch):
   * a DataLostError it meets does not count as this process having been told — only one delivered
   * to a caller of an operation does (issue 25: the sweeper's call used up the one error meant for
   * the process, and dropped it).
   */
  async run(script: Script, keys: string[], args: Array<string | number | Buffer>, what: string, write: boolean, background = false): Promise<Reply> {
    this.assertOpen();
    if (this.lostData) throw this.lostData;
    const { wait, waitTimeoutMs, barrier, detectLoss } = this.settings;
    const all = [this.incarnation, `${this.highest}${detectLoss ? `L${this.told}` : ''}`, ...args];
    let reply: Reply;
    let confirmed = wait;
    try {
      if (wait > 0) {
        const [answer, replicas] = await this.inFlight.evalshaWait(script, keys, all, write, { replicas: wait, timeoutMs: waitTimeoutMs, ...(write ? {} : { barrier }) });
        reply = answer as Reply;
        confirmed = replicas;
      } else {
        reply = (await this.inFlight.evalsha(script, keys, all, write)) as Reply;
      }
    } catch (err) {
      throw mapRedisError(err, what, write);
    }
    const status = String(reply[0]);
    reply[0] = status;
    if (status === 'LOST' || status === 'ROLLBACK') throw this.loseData(status, String(reply[1]));
    if (status === 'DATALOST') {
      const after = Number(reply[1]);
      // Told of the gap its own revisions lie in (a latch of a later gap does not tell it of an earlier one).
      if (!background && this.highest > after && after > this.told) this.told = after;
      throw (this.lastLoss = this.dataLost(after, Number(reply[2]), Number(reply[3])));
    }
    // A watch whose position lies in a gap delivered changes the serving master lacks (scripts.ts CHANGES).
    if (status === 'WATCHLOST') throw this.watchLost(Number(reply[1]), Number(reply[2]), Number(reply[3]));
    this.lastLoss = undefined;
    if (confirmed < wait) {
      const committed = write && status === 'OK';
      throw new BackendError(
        `redis ${what}: only ${confirmed} of ${wait} replicas confirmed within ${waitTimeoutMs} ms (WAIT)`
        + (committed ? ': the write committed on the master but may be lost in a failover, so it is not acknowledged' : ''),
        { transient: true, ambiguous: committed },
      );
    }
    return reply;
  }

  /**
   * An operator accepts the loss: the store's latch goes (every process goes
   * on), and revisions go on above every revision this process was told of.
   */
  async acceptLoss(metaKey: string): Promise<void> {
    this.assertOpen();
    const local = this.lostData;
    try {
      // The marker is gone (flushed, restarted empty): this opening adopts the one there now, or makes one.
      if (local !== undefined && /incarnation marker/.test(local.message)) await this.open(metaKey);
      const reply = (await this.inFlight.evalsha(SCRIPTS.acceptLoss, [metaKey], [this.incarnation, local === undefined ? 0 : this.highest], true)) as Reply;
      if (String(reply[0]) === 'LOST') throw this.loseData('LOST', String(reply[1]));
    } catch (err) {
      throw mapRedisError(err, 'accept loss', true);
    }
    this.lostData = undefined;
    this.lastLoss = undefined;
  }

  private dataLost(after: number, upTo: number, at: number): DataLostError {
    const detectedAt = new Date(at).toISOString();
    return new DataLostError(
      `the redis store "${this.settings.prefix}" lost acknowledged writes in a failover: the serving master lacks revisions ${after + 1} to ${upTo} `
      + `(at least) that were handed out before; detected ${detectedAt}. Every operation fails until an operator accepts the loss (store.acceptLoss(), revkit accept-loss)`,
      { store: this.settings.address, after, upTo, detectedAt },
    );
  }

  private watchLost(after: number, upTo: number, at: number): DataLostError {
    const detectedAt = new Date(at).toISOString();
    return new DataLostError(
      `a watch of the redis store "${this.settings.prefix}" delivered changes up to revision ${upTo} that the serving master lacks (revisions above ${after} `
      + `were lost in a failover; detected ${detectedAt}): it cannot go on in the new history without its consumer knowing. Rebuild what was `
      + `derived from the watch (a new watch from a revision the store has)`,
      { store: this.settings.address, after, upTo, detectedAt },
    );
  }

  private loseData(status: string, found: string): DataLostError {
    const why = status === 'LOST'
      ? `its incarnation marker ${this.incarnation} is ${found === '' ? 'gone' : `replaced by ${found}`} (the server restarted without persistence, or the data was flushed)`
      : `its revision counter went back from at least ${this.highest} to ${found} (the server restarted and lost acknowledged writes)`;
    const details = status === 'LOST'
      ? { store: this.settings.address, detectedAt: new Date().toISOString() }
      : { store: this.settings.address, after: Number(found), upTo: this.highest, detectedAt: new Date().toISOString() };
    this.lostData ??= new DataLostError(
      `the redis store "${this.settings.prefix}" lost data: ${why}. Revisions would start again and an old revision could match new data, so every operation fails until an operator accepts the loss (store.acceptLoss()) or the application opens the store again`,
      details,
    );
    return this.lostData;
  }
}
