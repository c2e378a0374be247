import type { Redis, RedisOptions } from 'ioredis';
import { ClosedError, RevkitError } from '../core/index.js';
import type { Script } from './scripts.js';

/**
 * A connection revkit owns: a command that was sent when the connection
 * closed is not sent again (InFlight reports it as "may have run" and the
 * caller re-reads), commands wait in the offline queue during a restart.
 */
export const OWN_CONNECTION: RedisOptions = { autoResendUnfulfilledCommands: false, enableOfflineQueue: true };

/** A command's answer is waited for this long by default (RedisStoreOptions.commandTimeoutMs). */
export const DEFAULT_COMMAND_TIMEOUT_MS = 5000;

interface Pending {
  /**
   * waiting: held by revkit until the connection is ready, never handed to ioredis (so it can be
   * failed as "not sent" and never runs); queued: handed to ioredis while not ready (its offline
   * queue); sent: written to a ready connection; orphaned: sent on a connection that closed.
   */
  state: 'waiting' | 'queued' | 'sent' | 'orphaned';
  /** A write: if it was sent, it may commit whatever the caller is told. */
  write: boolean;
  fail(err: Error): void;
}

/** How long a command may go unanswered, and what to do about a connection that stopped answering. */
export interface InFlightLimits {
  /**
   * A command (held for a connection, or sent) not answered within this many ms (plus its own
   * `extraMs`: WAIT's timeout, XREAD's BLOCK) fails: never sent → transient, sent → "may have run".
   */
  commandTimeoutMs: number;
  /** Called when a sent command got no answer in time: the owner cuts that connection, so that it is made again (through the sentinels). */
  onSilent?: () => void;
}

/** The name mapRedisError (records.ts) reads as "never sent": transient, not ambiguous. */
export const NOT_SENT = 'RevkitNotSentError';

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
 * then is it failed as "may have run".
 *
 * A command issued while the connection is not ready is held here, not in
 * ioredis' offline queue, and handed over when it is ready: a command that
 * times out there was never sent and never will be (ioredis would send a
 * timed-out command of its queue on the next connection), so it fails as
 * transient, not ambiguous. Every command has a deadline (issue 25: with
 * every sentinel down ioredis retries forever and never counts a request's
 * retries; a frozen or partitioned master never answers and never closes):
 * a sent one that passes it fails as "may have run" and the connection is
 * cut through `onSilent`.
 */
export class InFlight {
  private readonly pending = new Set<Pending>();
  /** Commands held until the connection is ready. */
  private readonly held = new Set<() => void>();
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
    if (fenced === undefined) this.failOrphans();
    // Refused (ACL) or already gone: either way nothing more can be done for them.
    else void this.client.call('CLIENT', 'KILL', 'ID', fenced).then(() => this.failOrphans(), () => this.failOrphans());
    for (const send of [...this.held]) send();
  };
  /** Names the address and the cause in what fails for want of a connection. */
  private readonly errors: ConnectionErrors;
  private readonly onClose = () => {
    let any = false;
    for (const p of this.pending) {
      if (p.state !== 'sent') continue;
      p.state = 'orphaned';
      any = true;
    }
    if (any && this.orphanedOf === undefined) this.orphanedOf = this.clientId;
  };

  constructor(private readonly client: Redis, private readonly limits: InFlightLimits = { commandTimeoutMs: DEFAULT_COMMAND_TIMEOUT_MS }) {
    client.on('ready', this.onReady);
    client.on('close', this.onClose);
    this.errors = new ConnectionErrors(client);
    if (client.status === 'ready') this.learnId();
  }

  /** `extraMs`: how much longer than the command timeout this command may take by design (WAIT, XREAD BLOCK). */
  track<R>(call: () => Promise<R>, write = false, extraMs = 0): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const limitMs = this.limits.commandTimeoutMs + extraMs;
      const timer = setTimeout(() => this.timedOut(pending, limitMs), limitMs);
      const pending: Pending = {
        state: 'waiting',
        write,
        fail: (err) => {
          clearTimeout(timer);
          this.held.delete(send);
          this.settled(pending);
          reject(err);
        },
      };
      const send = () => {
        this.held.delete(send);
        if (!this.pending.has(pending)) return;
        pending.state = this.client.status === 'ready' ? 'sent' : 'queued';
        call().then(
          (value) => {
            // A resent command's answer is not trusted: "conflict" may mean its first sending ran.
            if (pending.state === 'orphaned') return pending.fail(this.errors.closedBeforeAnswer());
            clearTimeout(timer);
            this.settled(pending);
            resolve(value);
          },
          // Whatever ioredis says about an orphaned command (it was sent), it may have run.
          (err: Error) => pending.fail(pending.state === 'orphaned' ? this.errors.closedBeforeAnswer() : this.errors.describe(err)),
        );
      };
      this.pending.add(pending);
      // 'end' (closed for good): ioredis refuses at once. 'wait' (lazyConnect, never connected): connect it.
      if (this.client.status === 'ready' || this.client.status === 'end') return send();
      if (this.client.status === 'wait') this.client.connect().catch(() => undefined);
      this.held.add(send);
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

  /**
   * Runs a script as evalsha() does, then — on the same connection, in the same
   * round trip — `WAIT replicas timeoutMs`; with `barrier` (a channel name) a
   * PUBLISH to it first, so that the WAIT also covers every write the script
   * may have read (other clients' included: WAIT waits for the replication
   * offset of this connection's last propagated command). Answers the
   * script's reply and how many replicas confirmed.
   */
  evalshaWait(script: Script, keys: string[], args: Array<string | Buffer | number>, write: boolean, wait: { replicas: number; timeoutMs: number; barrier?: string }): Promise<[unknown, number]> {
    const send = async (command: 'EVALSHA' | 'EVAL'): Promise<[unknown, number]> => {
      const ran = this.client.callBuffer(command, command === 'EVALSHA' ? script.sha : script.lua, keys.length, ...keys, ...args);
      const published = wait.barrier === undefined ? undefined : this.client.call('PUBLISH', wait.barrier, '');
      const waited = this.client.call('WAIT', wait.replicas, wait.timeoutMs);
      // Each is settled: a refused script leaves its WAIT's answer unread, not unhandled.
      published?.catch(() => undefined);
      waited.catch(() => undefined);
      const reply = await ran;
      if (published !== undefined) await published;
      return [reply, Number(await waited)];
    };
    return this.track(async () => {
      try {
        return await send('EVALSHA');
      } catch (err) {
        if (!/^NOSCRIPT/.test(String((err as Error)?.message))) throw err;
        return send('EVAL');
      }
    }, write, wait.timeoutMs);
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
    this.errors.detach();
    this.held.clear();
    const left = [...this.pending];
    for (const p of left) {
      const ambiguous = p.write && p.state !== 'queued' && p.state !== 'waiting';
      const err = new ClosedError(backend, { ambiguous });
      if (ambiguous) err.message = `the ${backend} store was closed while a write was in flight (no answer within the close timeout): it may have committed`;
      p.fail(err);
    }
    return left.length;
  }

  private timedOut(pending: Pending, limitMs: number): void {
    if (!this.pending.has(pending)) return;
    if (pending.state === 'waiting') return pending.fail(this.errors.notReady(limitMs));
    // Sent (or queued in ioredis, which sends it later): it may run, now or when the server wakes up.
    const silent = pending.state === 'sent' && this.client.status === 'ready';
    pending.fail(this.errors.noAnswer(limitMs));
    if (silent) this.limits.onSilent?.();
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
    for (const p of [...this.pending]) if (p.state === 'orphaned') p.fail(this.errors.closedBeforeAnswer());
  }
}

/**
 * What fails for want of a connection names the address and the cause
 * (issue 22): ioredis' own "Connection is closed." and "Reached the max
 * retries per request limit" name neither, and the socket error behind them
 * (ECONNREFUSED, ECONNRESET, a DNS failure) went only to the 'error' event.
 * This remembers the client's last such error since it was last ready.
 *
 * It listens to 'error' only beside a listener already there: a client
 * without one has ioredis print its errors, and a listener of ours would
 * silence that (then the cause is not known; the address still is).
 *
 * Also for a connection that fails before a store exists on it (opening):
 * `const errors = new ConnectionErrors(client)` after the client's own
 * 'error' listener, then `errors.describe(err)` for what connect() rejects with.
 */
export class ConnectionErrors {
  private last: string | undefined;
  private readonly onError = (err: unknown) => {
    this.last = errorText(err);
  };
  private readonly onReady = () => {
    this.last = undefined;
  };
  private readonly listening: boolean;

  constructor(private readonly client: Redis) {
    this.listening = client.listenerCount('error') > 0;
    if (this.listening) client.on('error', this.onError);
    client.on('ready', this.onReady);
  }

  /** `redis://user@host:port/db` of the client, never a password. */
  get address(): string {
    return redisAddress(this.client);
  }

  /**
   * A failure of the connection (not a reply of the server to a command:
   * that is returned as it is) with the address and the last socket error.
   * Keeps the error's name (MaxRetriesPerRequestError: the command was never
   * sent) and the original as its cause.
   */
  describe(err: Error): Error {
    if (RevkitError.is(err) || err?.name === 'ReplyError' || typeof err?.message !== 'string') return err;
    const described = new Error(`${err.message || errorText(err)} — ${this.address}${this.cause()}`, { cause: err });
    described.name = err.name;
    return described;
  }

  /** A command was held for a connection that did not become ready in time: never sent. */
  notReady(limitMs: number): Error {
    const err = new Error(`no ready connection to ${this.address} within ${limitMs} ms; the command was not sent${this.cause()}`);
    err.name = NOT_SENT;
    return err;
  }

  /** A command was sent and no answer came in time (a frozen or partitioned server): it may have run. */
  noAnswer(limitMs: number): Error {
    return new Error(`no answer from ${this.address} within ${limitMs} ms (the server may be stalled or cut off): the command may have run${this.cause()}`);
  }

  /** A command was sent and its connection closed before the answer came. */
  closedBeforeAnswer(): Error {
    return new Error(`the connection to ${this.address} closed before the answer came${this.cause()}`);
  }

  detach(): void {
    if (this.listening) this.client.off('error', this.onError);
    this.client.off('ready', this.onReady);
  }

  private cause(): string {
    return this.last === undefined ? '' : `; last connection error: ${this.last}`;
  }
}

/**
 * `redis://user@host:port/db` (or `rediss://`, a socket path, the sentinels
 * and master name) of an ioredis client, for error messages: never its
 * password, nor any other option.
 */
export function redisAddress(client: Redis): string {
  const o = (client.options ?? {}) as {
    host?: string; port?: number; path?: string | null; username?: string | null; db?: number; tls?: unknown;
    sentinels?: Array<{ host?: string; port?: number }> | null; name?: string | null;
  };
  const user = typeof o.username === 'string' && o.username !== '' ? `${encodeURIComponent(o.username)}@` : '';
  const db = typeof o.db === 'number' && o.db !== 0 ? `/${o.db}` : '';
  const hostPort = (host: string | undefined, port: number | undefined) => `${host?.includes(':') ? `[${host}]` : host ?? 'localhost'}:${port ?? 6379}`;
  if (Array.isArray(o.sentinels) && o.sentinels.length > 0) {
    return `redis+sentinel://${user}${o.sentinels.map((s) => hostPort(s.host, s.port ?? 26379)).join(',')}/${o.name ?? ''}${db}`;
  }
  if (typeof o.path === 'string' && o.path !== '') return `redis socket ${o.path}${db}`;
  return `${o.tls ? 'rediss' : 'redis'}://${user}${hostPort(o.host, o.port)}${db}`;
}

function errorText(err: unknown): string {
  const e = err as { message?: unknown; code?: unknown; errors?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (message !== '') return message;
  if (Array.isArray(e?.errors)) return e.errors.map(errorText).join('; ');
  return typeof e?.code === 'string' ? e.code : 'unknown error';
}

/**
 * Cuts a connection at once (the socket destroyed, not ended: a frozen peer
 * never answers a FIN, so `disconnect()` would wait on it); ioredis then
 * makes it again — through the sentinels for a Sentinel client.
 */
export function cutConnection(client: Redis): void {
  (client as unknown as { stream?: { destroy(): void } }).stream?.destroy();
}

/**
 * A connection whose socket is open but whose handshake (AUTH, SELECT, the
 * ready check) gets no answer within `timeoutMs` — a frozen master a
 * reconnect was sent to — is cut, so that ioredis tries again (and asks the
 * sentinels again); ioredis itself would wait on it forever. Returns the
 * function that stops watching.
 */
export function watchHandshake(client: Redis, timeoutMs: number): () => void {
  let timer: NodeJS.Timeout | undefined;
  const clear = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  const onConnect = () => {
    clear();
    timer = setTimeout(() => {
      timer = undefined;
      if (client.status === 'connect') cutConnection(client);
    }, timeoutMs);
    timer.unref();
  };
  client.on('connect', onConnect);
  client.on('ready', clear);
  client.on('close', clear);
  return () => {
    clear();
    client.off('connect', onConnect);
    client.off('ready', clear);
    client.off('close', clear);
  };
}

/** `promise`, or a rejection with `timeout()` after `ms`, whichever is first. */
export function withinMs<R>(promise: Promise<R>, ms: number, timeout: () => Error): Promise<R> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeout()), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
