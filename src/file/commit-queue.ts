import { BackendError, ClosedError, TooLargeError, sleep } from '../core/index.js';
import { MAX_FILE_LENGTH, serialize, textOver } from './format.js';
import type { ProcessLock } from './lock.js';
import type { StateReader } from './reader.js';
import { removeStaleTemps, replaceFile, tempName } from './replace.js';
import { Transaction, nextState, type EncodedValue } from './transaction.js';
import type { FileChanges } from './watch.js';

interface Pending {
  run: (tx: Transaction) => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  deadline: number;
}

/**
 * Stale temp files are looked for on every lock acquisition while the folder
 * holds up to this many names (listing them costs ~0.1 ms); in a larger folder,
 * on every ⌈names / LIST_NAMES⌉-th, so a commit never pays for listing more
 * than about this many (README.md has the figures).
 */
const LIST_NAMES = 200;

export interface CommitSettings {
  path: string;
  lockTimeoutMs: number;
  groupCommit: boolean;
  /** fsync the file and its folder on every commit. */
  sync: boolean;
  changeLogSize: number;
  maxFileLength: number;
}

/**
 * The write path: writes wait in this process's queue; under the
 * cross-process lock every write queued by then is checked against the state
 * on disk and committed in one rewrite (group commit), each with its own
 * result or error.
 */
export class CommitQueue {
  private readonly queue: Pending[] = [];
  private draining: Promise<void> | null = null;
  /** Lock acquisitions since this store last listed the folder for stale temp files, and how many apart it lists. */
  private sinceListing = 0;
  private listEvery = 1;
  /** How many times the file was rewritten (each rewrite commits a whole group of writes). */
  rewrites = 0;

  constructor(
    private readonly settings: CommitSettings,
    private readonly lock: ProcessLock,
    private readonly reader: StateReader,
    private readonly changes: FileChanges,
    private readonly isClosed: () => boolean,
  ) {}

  enqueue<R>(run: (tx: Transaction) => R): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject, deadline: Date.now() + this.settings.lockTimeoutMs });
      this.kick();
    });
  }

  /** The drain under way, if any (close waits for it). */
  get drained(): Promise<void> | null {
    return this.draining;
  }

  private kick(): void {
    if (this.draining !== null) return;
    this.draining = this.drain().finally(() => {
      this.draining = null;
      // A write queued between the loop's last check and here.
      if (this.queue.length > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    // Writes of a group whose file came out too long, still to commit one per rewrite.
    let ungrouped = 0;
    try {
      while (this.queue.length > 0) {
        const locked = await this.lock.acquire(() => this.dropTimedOut());
        if (!locked) continue;
        try {
          const one = !this.settings.groupCommit || ungrouped > 0;
          if (ungrouped > 0) ungrouped--;
          const batch = one ? this.queue.splice(0, 1) : this.queue.splice(0);
          if ((await this.commit(batch)) === 'split') {
            // Each write then gets the answer it gets alone: only those that do not fit are refused.
            const deadline = Date.now() + this.settings.lockTimeoutMs;
            for (const op of batch) op.deadline = deadline;
            this.queue.unshift(...batch);
            ungrouped = batch.length;
          }
        } finally {
          this.lock.release();
        }
        // Other processes wait by polling: a holder that took the lock straight back would starve them.
        if (this.lock.contended && this.queue.length > 0) await sleep(Math.random() * 5);
      }
    } catch (err) {
      for (const op of this.queue.splice(0)) op.reject(err);
    }
  }

  /** Rejects writes whose lock wait ran out; true when nothing is left waiting. */
  private dropTimedOut(): boolean {
    const now = Date.now();
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const op = this.queue[i] as Pending;
      if (this.isClosed()) op.reject(new ClosedError('file'));
      else if (op.deadline <= now) {
        op.reject(new BackendError(`the write lock ${this.settings.path}.lock was not free within ${this.settings.lockTimeoutMs} ms (another process holds it); nothing was written`, { transient: true }));
      } else continue;
      this.queue.splice(i, 1);
    }
    return this.queue.length === 0;
  }

  /**
   * Runs under the lock: one rewrite for the whole batch, each write with its
   * own result or error. 'split': the group's file would be too long, nothing
   * was written and nobody answered; commit its writes one by one.
   */
  private async commit(batch: Pending[]): Promise<void | 'split'> {
    const { path, sync, changeLogSize, maxFileLength } = this.settings;
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    // Temp files of this store left by a writer that died: looked for when the lock is taken (every time,
    // in a folder of up to LIST_NAMES names), alongside this commit's own work, done before the lock goes.
    const temp = tempName(path);
    const cleaning = ++this.sinceListing >= this.listEvery ? this.removeStaleTemps(temp) : undefined;
    try {
      const base = this.reader.read();
      const tx = new Transaction(base);
      for (const op of batch) {
        try {
          outcomes.push({ ok: true, value: op.run(tx) });
        } catch (error) {
          outcomes.push({ ok: false, error });
        }
      }
      if (tx.changes.length > 0) {
        const next = nextState(tx, changeLogSize);
        const bytes = serialize(next.revision, next.prunedBelow, next.records(), next.changes, next.current);
        const length = textOver(bytes, maxFileLength);
        if (length.over) {
          if (batch.length > 1) return 'split';
          throw this.tooLarge(bytes.length, length.length);
        }
        this.rewrites++;
        await replaceFile(path, bytes, sync, {
          // From here a read that finds the new file in place applies the commit itself, instead of parsing it.
          written: (stamp) => this.reader.written(base, () => next.apply(), stamp),
          replaced: () => {
            this.reader.replaced();
            this.changes.emit();
          },
        }, temp);
      }
    } catch (error) {
      this.reader.failed();
      // Nothing of this batch is known to be durable: every caller gets the error (ambiguous when the new file is in place).
      for (const op of batch) op.reject(error);
      return;
    } finally {
      await cleaning;
    }
    batch.forEach((op, i) => {
      const outcome = outcomes[i] as (typeof outcomes)[number];
      if (outcome.ok) op.resolve(outcome.value);
      else op.reject(outcome.error);
    });
  }

  private async removeStaleTemps(own: string): Promise<void> {
    this.sinceListing = 0;
    const { entries } = await removeStaleTemps(this.settings.path, own);
    this.listEvery = Math.max(1, Math.ceil(entries / LIST_NAMES));
  }

  /**
   * Throws what a commit of put(key, value) alone would throw for the file's length (TooLargeError),
   * writing nothing: the file that commit would leave now, built and measured.
   */
  assertWouldFit(key: string, value: EncodedValue, writer: string): void {
    const tx = new Transaction(this.reader.read());
    tx.put(key, value, tx.nextRevision(), undefined, writer);
    const next = nextState(tx, this.settings.changeLogSize);
    const bytes = serialize(next.revision, next.prunedBelow, next.records(), next.changes, next.current);
    const length = textOver(bytes, this.settings.maxFileLength);
    if (length.over) throw this.tooLarge(bytes.length, length.length);
  }

  private tooLarge(bytes: number, length: number): TooLargeError {
    const { path, maxFileLength } = this.settings;
    const err = new TooLargeError(path, length, maxFileLength);
    err.message = `this write would make ${path} ${bytes} bytes long, ${length} characters as text, over the limit of ${maxFileLength}`
      + `${maxFileLength === MAX_FILE_LENGTH ? ' (the longest string this engine can read the file back into)' : ' (maxFileLength)'}; nothing was written`;
    return err;
  }
}
