import type { Redis } from 'ioredis';
import type { Script } from './scripts.js';

interface Pending {
  fail(err: Error): void;
}

/**
 * Which commands may have reached the server. ioredis keeps the commands of a
 * connection that closed: with `autoResendUnfulfilledCommands` off it drops
 * them on reconnect and their promises never settle; with it on it sends them
 * again. Either way the caller would wait or learn the wrong thing, so a
 * command that was sent on a connection that closed is failed here, at the
 * close, as "may have run". A command issued while disconnected waits in the
 * offline queue: it joins the connection that becomes ready next.
 */
export class InFlight {
  private sent = new Set<Pending>();
  private queued = new Set<Pending>();
  private readonly onReady = () => {
    for (const p of this.queued) this.sent.add(p);
    this.queued.clear();
  };
  private readonly onClose = () => {
    const lost = [...this.sent];
    this.sent.clear();
    for (const p of lost) p.fail(new Error('the connection to redis closed before the answer came'));
  };

  constructor(private readonly client: Redis) {
    client.on('ready', this.onReady);
    client.on('close', this.onClose);
  }

  track<R>(call: () => Promise<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const pending: Pending = {
        fail: (err) => {
          this.sent.delete(pending);
          this.queued.delete(pending);
          reject(err);
        },
      };
      (this.client.status === 'ready' ? this.sent : this.queued).add(pending);
      call().then(
        (value) => {
          this.sent.delete(pending);
          this.queued.delete(pending);
          resolve(value);
        },
        (err: Error) => pending.fail(err),
      );
    });
  }

  /** Runs a script by its SHA; a server that does not know it yet (new, restarted, flushed) gets the source. */
  evalsha(script: Script, keys: string[], args: Array<string | Buffer | number>): Promise<unknown> {
    return this.track(async () => {
      try {
        return await this.client.callBuffer('EVALSHA', script.sha, keys.length, ...keys, ...args);
      } catch (err) {
        // NOSCRIPT: refused before anything ran, so sending the source is safe.
        if (!/^NOSCRIPT/.test(String((err as Error)?.message))) throw err;
        return this.client.callBuffer('EVAL', script.lua, keys.length, ...keys, ...args);
      }
    });
  }

  detach(): void {
    this.client.off('ready', this.onReady);
    this.client.off('close', this.onClose);
  }
}
