import { randomBytes } from 'node:crypto';
import { HistoryGoneError, type Store } from '../core/index.js';

/**
 * Where a watch "from now" over HTTP starts (DESIGN §3, *from now*).
 *
 * HttpStore's watch() returns before its request reaches the server, so the
 * server cannot take "now" as the moment the request arrives: a write another
 * process started after watch() returned may have committed by then. The
 * client names the moment instead, on this server's clock: every response
 * carries `Revkit-Clock: <instance>;<ms>` (this process's monotonic clock),
 * from which the client knows a lower bound of this clock at any moment of
 * its own (see ServerClock in src/http/http-store-clock.ts), and a watch request
 * carries `since=<instance>;<ms>`: the moment watch() was called.
 *
 * This clock answers "which revision had committed by server time t?" from
 * samples (t, revision), each a fact "revision r had committed by t": a head
 * revision read, every event of a watch of the whole store, noted as it
 * arrives. A write that starts after t draws a revision above every one
 * committed by t — on every backend, PostgreSQL included (its revisions are
 * drawn from a sequence as the write runs) — so a watch from revisionAt(t)
 * misses nothing that started after t. It may deliver writes that committed
 * shortly before t: the samples are coarse (at least COALESCE_MS apart) and
 * the events arrive after their commits.
 */
export class RevisionClock {
  readonly instance = randomBytes(9).toString('base64url');
  private times: number[] = [];
  private revisions: number[] = [];
  /** Samples before this index are dropped (for age); compacted now and then. */
  private first = 0;
  /** When the newest sample dropped for age was taken: no answer for a moment before it. */
  private droppedAt: number | undefined;
  /** The revision of that sample: what had committed by any moment from then until the oldest sample kept. */
  private droppedRevision: number | undefined;
  private readonly controller = new AbortController();
  private running = false;

  constructor(private readonly store: Store, private readonly keepMs = 10 * 60_000) {}

  now(): number {
    return performance.now();
  }

  /** The value of the Revkit-Clock header: taken as late as possible, it is a lower bound of this clock when the client reads it. */
  reading(): string {
    return `${this.instance};${(Math.floor(this.now() * 1000) / 1000).toFixed(3)}`; // rounded down: a lower bound
  }

  /** Notes that `revision` had committed by now. */
  saw(revision: number): void {
    const n = this.revisions.length;
    if (!Number.isSafeInteger(revision) || (n > this.first && revision <= (this.revisions[n - 1] as number))) return;
    const t = this.now();
    // While within COALESCE_MS of the one before it, the last sample moves forward instead of a new one being added:
    // at most two samples per COALESCE_MS, and an answer is never more than COALESCE_MS older than the moment asked
    // about (losing a sample's fact only makes answers earlier, never wrong).
    if (n - this.first >= 2 && t - (this.times[n - 2] as number) < COALESCE_MS) {
      this.times[n - 1] = t;
      this.revisions[n - 1] = revision;
    } else {
      this.times.push(t);
      this.revisions.push(revision);
    }
    this.trim(t);
  }

  /**
   * The highest revision known to have committed by `at` (this clock):
   * every write that starts after `at` gets a higher one. For a moment
   * before this server's first sample, its oldest revision — unless `strict`
   * (the client heard this run only after the moment: the server may not
   * have been running then); undefined when no answer holds: the moment is
   * older than what is kept (keepMs), or strict and before the first sample.
   */
  revisionAt(at: number, strict = false): number | undefined {
    if (this.droppedAt !== undefined && at < this.droppedAt) return undefined;
    let lo = this.first;
    let hi = this.times.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((this.times[mid] as number) <= at) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found >= 0) return this.revisions[found];
    if (this.droppedRevision !== undefined) return this.droppedRevision;
    return strict ? undefined : this.revisions[this.first];
  }

  /**
   * Follows the store: its head, then every change after it (re-read after a
   * failure). Resolves once the first head is known (or could not be read):
   * the server answers nobody before, so every moment a client can name
   * (its clock comes from an answer) is covered by a sample.
   */
  start(): Promise<void> {
    if (this.running || !this.store.capabilities.watch) return Promise.resolve();
    const source = this.store as Store & { headRevision?: () => Promise<number> };
    if (typeof source.headRevision !== 'function') return Promise.resolve();
    const signal = this.controller.signal;
    this.running = true;
    let tried: () => void = () => {};
    const first = new Promise<void>((resolve) => (tried = resolve));
    void (async () => {
      let backoff = 0;
      while (!signal.aborted && !closed(this.store)) {
        try {
          const head = await source.headRevision!().catch((err: unknown) => {
            tried();
            throw err;
          });
          this.saw(head);
          tried();
          for await (const event of this.store.watch({ prefix: '', fromRevision: head, signal })) {
            this.saw(event.revision);
            backoff = 0;
          }
          backoff = 50; // it ended by itself: start again, not in a tight loop
        } catch (err) {
          if (signal.aborted || closed(this.store)) return;
          // Fell behind a trimmed log, or the store is unreachable for a while: read the head again.
          if (!HistoryGoneError.is(err)) backoff = Math.min(Math.max(backoff * 2, 50), 2000);
        }
        if (backoff > 0) await new Promise((resolve) => setTimeout(resolve, backoff).unref());
      }
      tried();
    })();
    return first;
  }

  stop(): void {
    this.controller.abort();
  }

  private trim(now: number): void {
    const before = this.first;
    while (this.first < this.times.length - 1 && (this.times[this.first] as number) < now - this.keepMs) this.first++;
    if (this.first === before) return;
    this.droppedAt = this.times[this.first - 1] as number;
    this.droppedRevision = this.revisions[this.first - 1] as number;
    if (this.first > 1024 && this.first * 2 > this.times.length) {
      this.times = this.times.slice(this.first);
      this.revisions = this.revisions.slice(this.first);
      this.first = 0;
    }
  }
}

const COALESCE_MS = 5;

function closed(store: Store): boolean {
  return (store as Store & { isClosed?: boolean }).isClosed === true;
}

/** `since` of a watch request: `<instance>;<ms>[;r]` (r: the client heard this run only after the moment). */
export function parseSince(value: string): { instance: string; at: number; strict: boolean } | undefined {
  const m = /^([A-Za-z0-9_-]{1,32});([0-9]{1,15}(?:\.[0-9]{1,6})?)(;r)?$/.exec(value);
  return m ? { instance: m[1] as string, at: Number(m[2]), strict: m[3] !== undefined } : undefined;
}
