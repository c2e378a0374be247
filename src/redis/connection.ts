import type { Redis } from 'ioredis';
import { ClosedError } from '../core/index.js';
import type { Script } from './scripts.js';

interface Pending {
  state: 'queued' | 'sent' | 'orphaned';
  /** A write: if it was sent, it may commit whatever the caller is told. */
  write: boolean;
  fail(err: Error): void;
}

/**
 * Which commands may still run on the server, and when they no longer can.
 *
 * ioredis keeps the commands of a connection that closed: with
 * `autoResendUnfulfilledCommands` off it drops them on reconnect and their
 * promises never settle; with it on (its default) it sends them again, and a
 * conditional write that had already run then answers "conflict". Neither
 * may reach the caller. And a command that was sent may still sit in the
 * server's input buffer of the old connection and run after the caller has
 * re-read on a new one.
 *
 * So a command sent on a connection that closed is "orphaned": once a new
 * connection is ready, the old one is fenced with `CLIENT KILL ID` on it (an
 * orphaned command then either ran before the kill or never will), and only
 * then is it failed as "may have run". Should no connection come back, it is
 * failed when ioredis gives up on it. A command issued while disconnected
 * waits in the offline queue and joins the next connection.
 */
export class InFlight {
  private readonly pending = new Set<Pending>();
  /** The server's id of the current connection, learnt when it became ready. */
  private clientId: string | undefined;
  private orphanedOf: string | undefined;
  /** Called when the last pending command settles (drain() waits for it). */
  private onDrained: (() => void) | undefined;
  private readonly onReady = () => {
    for (const p of this.pending) if (p.state === 'queued') p.state = 'sent';
    const fenced = this.orphanedOf;
    this.orphanedOf = undefined;
    this.learnId();
    if (fenced === undefined) return this.failOrphans();
    // Refused (ACL) or already gone: either way nothing more can be done for them.
    void this.client.call('CLIENT', 'KILL', 'ID', fenced).then(() => this.failOrphans(), () => this.failOrphans());
  };
  private readonly onClose = () => {
    let any = false;
    for (const p of this.pending) {
      if (p.state !== 'sent') continue;
      p.state = 'orphaned';
      any = true;
    }
    if (any && this.orphanedOf === undefined) this.orphanedOf = this.clientId;
  };

  constructor(private readonly client: Redis) {
    client.on('ready', this.onReady);
    client.on('close', this.onClose);
    if (client.status === 'ready') this.learnId();
  }

  track<R>(call: () => Promise<R>, write = false): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const pending: Pending = {
        state: this.client.status === 'ready' ? 'sent' : 'queued',
        write,
        fail: (err) => {
          this.settled(pending);
          reject(err);
        },
      };
      this.pending.add(pending);
      call().then(
        (value) => {
          // A resent command's answer is not trusted: "conflict" may mean its first sending ran.
          if (pending.state === 'orphaned') return pending.fail(closedError());
          this.settled(pending);
          resolve(value);
        },
        // Whatever ioredis says about an orphaned command (it was sent), it may have run.
        (err: Error) => pending.fail(pending.state === 'orphaned' ? closedError() : err),
      );
    });
  }

  /** Runs a script by its SHA; a server that does not know it yet (new, restarted, flushed) gets the source. */
  evalsha(script: Script, keys: string[], args: Array<string | Buffer | number>, write = false): Promise<unknown> {
    return this.track(async () => {
      try {
        return await this.client.callBuffer('EVALSHA', script.sha, keys.length, ...keys, ...args);
      } catch (err) {
        // NOSCRIPT: refused before anything ran, so sending the source is safe.
        if (!/^NOSCRIPT/.test(String((err as Error)?.message))) throw err;
        return this.client.callBuffer('EVAL', script.lua, keys.length, ...keys, ...args);
      }
    }, write);
  }

  /** Resolves once no command is in flight (their answers came), or after `timeoutMs`, whichever is first. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.pending.size === 0 || timeoutMs <= 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.onDrained?.(), timeoutMs);
      this.onDrained = () => {
        clearTimeout(timer);
        this.onDrained = undefined;
        resolve();
      };
    });
  }

  /**
   * The store is closing: fails what is still waiting with ClosedError —
   * `ambiguous` for a write that was sent (it may still run on the server) —
   * and returns how many were left.
   */
  detach(backend: string): number {
    this.client.off('ready', this.onReady);
    this.client.off('close', this.onClose);
    const left = [...this.pending];
    for (const p of left) {
      const ambiguous = p.write && p.state !== 'queued';
      const err = new ClosedError(backend, { ambiguous });
      if (ambiguous) err.message = `the ${backend} store was closed while a write was in flight (no answer within the close timeout): it may have committed`;
      p.fail(err);
    }
    return left.length;
  }

  private settled(pending: Pending): void {
    this.pending.delete(pending);
    if (this.pending.size === 0) this.onDrained?.();
  }

  private learnId(): void {
    this.clientId = undefined;
    void this.client.call('CLIENT', 'ID').then((id) => (this.clientId = String(id)), () => undefined);
  }

  private failOrphans(): void {
    for (const p of [...this.pending]) if (p.state === 'orphaned') p.fail(closedError());
  }
}

function closedError(): Error {
  return new Error('the connection to redis closed before the answer came');
}
