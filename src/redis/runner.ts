import { randomBytes } from 'node:crypto';
import { BackendError } from '../core/index.js';
import type { InFlight } from './connection.js';
import { mapRedisError } from './records.js';
import { SCRIPTS, type Script } from './scripts.js';

/** A script's answer; the first element (a status) is turned into a string. */
export type Reply = Array<Buffer | number | string | null | Reply>;

/**
 * Runs the store's scripts, each with the store's incarnation marker and the
 * highest revision this store has seen: a server that lost the data
 * (restarted without persistence, flushed) answers LOST or ROLLBACK, and
 * every later call fails the same way until the application opens the store again.
 */
export class ScriptRunner {
  private incarnation = '';
  /** The highest revision this store has seen: the server's counter below it means it lost writes. */
  private highest = 0;
  private lostData: BackendError | undefined;

  constructor(private readonly inFlight: InFlight, private readonly prefix: string, private readonly assertOpen: () => void) {}

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
  get lost(): BackendError | undefined {
    return this.lostData;
  }

  /** Notes a revision the server answered; returns it. */
  saw(revision: number): number {
    if (revision > this.highest) this.highest = revision;
    return revision;
  }

  /**
   * Runs a script; its first reply element is a status. LOST and ROLLBACK
   * mean the server lost data under this store: that is latched, and every
   * later call fails the same way until the store is opened again.
   */
  async run(script: Script, keys: string[], args: Array<string | number | Buffer>, what: string, write: boolean): Promise<Reply> {
    this.assertOpen();
    if (this.lostData) throw this.lostData;
    let reply: Reply;
    try {
      reply = (await this.inFlight.evalsha(script, keys, [this.incarnation, this.highest, ...args], write)) as Reply;
    } catch (err) {
      throw mapRedisError(err, what, write);
    }
    const status = String(reply[0]);
    reply[0] = status;
    if (status === 'LOST' || status === 'ROLLBACK') throw this.loseData(status, String(reply[1]));
    return reply;
  }

  private loseData(status: string, found: string): BackendError {
    const why = status === 'LOST'
      ? `its incarnation marker ${this.incarnation} is ${found === '' ? 'gone' : `replaced by ${found}`} (the server restarted without persistence, or the data was flushed)`
      : `its revision counter went back from at least ${this.highest} to ${found} (the server restarted and lost acknowledged writes)`;
    this.lostData ??= new BackendError(
      `the redis store "${this.prefix}" lost data: ${why}. Revisions would start again and an old revision could match new data, so every operation fails until the application opens the store again`,
      { transient: false },
    );
    return this.lostData;
  }
}
