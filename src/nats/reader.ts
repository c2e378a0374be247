/**
 * Reading a JetStream stream through ephemeral push consumers (ack none,
 * flow control, idle heartbeats), the way the KV client's own watchers do,
 * but with the resume logic in our hands:
 *
 * - `readOnce` delivers a finite snapshot (last value per subject, or every
 *   kept message of a subject) and ends when the consumer reports nothing
 *   pending;
 * - `ResumableReader` follows a filter from a stream sequence for as long as
 *   it is open. A delivery-sequence gap, missed heartbeats or a reconnect
 *   recreate the consumer at `last delivered stream sequence + 1`, so a
 *   server restart neither loses nor repeats a message (messages at or below
 *   the last delivered sequence are dropped as a second guard).
 */
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { ConsumerConfig, JetStreamManager } from '@nats-io/jetstream';

export interface ReaderContext {
  nc: NatsConnection;
  jsm: JetStreamManager;
  stream: string;
  timeoutMs: number;
}

export type DeliverFrom =
  | { policy: 'all' }
  | { policy: 'last_per_subject' }
  | { policy: 'by_start_sequence'; startSeq: number };

export interface DeliveryInfo {
  streamSeq: number;
  deliverySeq: number;
  pending: number;
  /** When the server stored the message (ms since epoch). */
  storedAtMs: number;
}

const NS_PER_MS = 1_000_000;

/** `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>` (v1) or the v2 form with domain and account hash. */
export function parseAckSubject(reply: string | undefined): DeliveryInfo | null {
  if (!reply || !reply.startsWith('$JS.ACK.')) return null;
  const t = reply.split('.');
  const off = t.length === 9 ? 4 : t.length >= 11 ? 6 : -1;
  if (off < 0) return null;
  const streamSeq = Number(t[off + 1]);
  const deliverySeq = Number(t[off + 2]);
  const pending = Number(t[off + 4]);
  if (!Number.isSafeInteger(streamSeq) || !Number.isSafeInteger(deliverySeq) || !Number.isSafeInteger(pending)) return null;
  return { streamSeq, deliverySeq, pending, storedAtMs: Math.floor(Number(t[off + 3]) / NS_PER_MS) };
}

function consumerConfig(filter: string, from: DeliverFrom, deliverSubject: string, heartbeatMs: number): Partial<ConsumerConfig> {
  const cfg: Record<string, unknown> = {
    deliver_subject: deliverSubject,
    ack_policy: 'none',
    filter_subject: filter,
    flow_control: true,
    idle_heartbeat: heartbeatMs * NS_PER_MS,
    mem_storage: true,
    num_replicas: 1,
    inactive_threshold: 30_000 * NS_PER_MS,
    deliver_policy: from.policy,
  };
  if (from.policy === 'by_start_sequence') cfg.opt_start_seq = Math.max(1, from.startSeq);
  return cfg as Partial<ConsumerConfig>;
}

/** Control messages (flow control requests, heartbeats) carry a status header and no ack subject. */
function handleControl(nc: NatsConnection, msg: Msg): { heartbeat: boolean; lastConsumerSeq?: number } | null {
  if (parseAckSubject(msg.reply) !== null) return null;
  const h = msg.headers;
  if (!h || h.code === 0) return null;
  if (h.code === 100 && msg.reply) {
    msg.respond();
    return { heartbeat: false };
  }
  if (h.code === 100) {
    const stalled = h.get('Nats-Consumer-Stalled');
    if (stalled) nc.publish(stalled);
    const last = Number(h.get('Nats-Last-Consumer') || '0');
    return { heartbeat: true, lastConsumerSeq: Number.isSafeInteger(last) ? last : 0 };
  }
  return { heartbeat: false };
}

/**
 * Every message of a finite snapshot, in stream order. Fails (never returns
 * a partial result) when the snapshot breaks: a delivery gap, no progress
 * for `timeoutMs`, or the connection dropping.
 */
export async function readOnce(ctx: ReaderContext, filter: string, from: DeliverFrom, headersOnly = false): Promise<Msg[]> {
  const { nc, jsm, stream } = ctx;
  const inbox = createInbox();
  const out: Msg[] = [];
  let sub: Subscription | undefined;
  let consumerName: string | undefined;
  try {
    return await new Promise<Msg[]>((resolve, reject) => {
      let expected = 1;
      let timer: NodeJS.Timeout | undefined;
      let finished = false;
      const finish = (err?: unknown) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(out);
      };
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => finish(new ReaderError(`no progress reading ${filter} for ${ctx.timeoutMs} ms`)), ctx.timeoutMs);
      };
      arm();
      sub = nc.subscribe(inbox, {
        callback: (err, msg) => {
          if (err) return finish(err);
          // Only data counts as progress: heartbeats keep coming from a consumer whose
          // messages were lost in a server restart, and re-arming on them hung update()
          // forever in the ambiguous-write path (seen in the restart fault test).
          const control = handleControl(nc, msg);
          if (control) {
            if (control.heartbeat && (control.lastConsumerSeq ?? 0) >= expected) finish(new ReaderError('a message of the snapshot was not delivered'));
            return;
          }
          const info = parseAckSubject(msg.reply);
          if (!info) return;
          if (info.deliverySeq !== expected) return finish(new ReaderError('a message of the snapshot was not delivered'));
          arm();
          expected++;
          out.push(msg);
          if (info.pending === 0) finish();
        },
      });
      const cfg = consumerConfig(filter, from, inbox, Math.max(250, Math.min(2000, Math.floor(ctx.timeoutMs / 3))));
      if (headersOnly) (cfg as Record<string, unknown>).headers_only = true;
      jsm.consumers.add(stream, cfg).then((ci) => {
        consumerName = ci.name;
        if (ci.num_pending === 0 && out.length === 0) finish();
      }, (err) => finish(err));
    });
  } finally {
    sub?.unsubscribe();
    if (consumerName) jsm.consumers.delete(stream, consumerName).catch(() => undefined);
  }
}

export class ReaderError extends Error {
  override name = 'ReaderError';
}

export interface ResumableReaderOptions {
  filter: string;
  /** First stream sequence to deliver. */
  startSeq: number;
  heartbeatMs?: number;
  /**
   * `after`: the stream sequence delivered before this one (or the start less 1): the consumer passed
   * over everything in between. `pending`: how many messages of the filter the stream held after this
   * one when the server sent it.
   */
  onMessage(msg: Msg, streamSeq: number, delivery: { after: number; pending: number }): void;
  /** Called once when the reader gives up (it stops itself first). */
  onError(err: unknown): void;
  /** Called before each re-creation with the sequence it resumes from (after a gap, missed heartbeats or a reconnect). */
  onResume?(fromSeq: number, why: string): void;
}

export class ResumableReader {
  private lastSeq: number;
  private expectedDelivery = 1;
  private serial = 0;
  private sub: Subscription | undefined;
  private consumerName: string | undefined;
  private stopped = false;
  /** Paused (pause()): no consumer until resumeFrom(). */
  private paused = false;
  private lastActivity = Date.now();
  private readonly monitor: NodeJS.Timeout;
  private readonly heartbeatMs: number;
  private restarting: Promise<void> | undefined;
  private pendingRestart = false;
  private createFailures = 0;

  constructor(private readonly ctx: ReaderContext, private readonly opts: ResumableReaderOptions) {
    this.lastSeq = Math.max(0, opts.startSeq - 1);
    this.heartbeatMs = opts.heartbeatMs ?? 1000;
    this.monitor = setInterval(() => {
      if (!this.stopped && !this.paused && !this.restarting && Date.now() - this.lastActivity > 3 * this.heartbeatMs) this.restart('missed heartbeats');
    }, this.heartbeatMs);
    this.monitor.unref();
    void this.watchStatus();
    this.restart('start');
  }

  /** Stream sequence of the last delivered message. */
  get position(): number {
    return this.lastSeq;
  }

  /**
   * Reads again from `seq`: the consumer is recreated there, and what the old one still sends is
   * dropped (the watch found that it passed over kept messages).
   */
  resumeFrom(seq: number, why = 'passed over kept messages'): void {
    this.paused = false;
    this.lastSeq = Math.max(0, seq - 1);
    this.restart(why);
  }

  /**
   * Stops reading until resumeFrom(): the consumer is dropped and what the
   * old subscription still sends is ignored (a watch whose consumer has a
   * full backlog waiting).
   */
  pause(): void {
    if (this.stopped || this.paused) return;
    this.paused = true;
    this.serial += 1;
    this.sub?.unsubscribe();
    this.sub = undefined;
    this.dropConsumer();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.monitor);
    this.sub?.unsubscribe();
    this.dropConsumer();
  }

  private async watchStatus(): Promise<void> {
    const status = this.ctx.nc.status();
    const stopper = setInterval(() => {
      if (this.stopped) (status as unknown as { stop(): void }).stop();
    }, 500);
    stopper.unref();
    try {
      for await (const s of status) {
        if (this.stopped) break;
        if (s.type === 'reconnect') this.restart('reconnect');
      }
    } catch {
      // the status iterator ends with the connection
    } finally {
      clearInterval(stopper);
    }
  }

  private dropConsumer(): void {
    const name = this.consumerName;
    this.consumerName = undefined;
    if (name && !this.ctx.nc.isClosed()) this.ctx.jsm.consumers.delete(this.ctx.stream, name).catch(() => undefined);
  }

  private restart(why: string): void {
    if (this.stopped || this.paused) return;
    if (this.restarting) {
      this.pendingRestart = true;
      return;
    }
    this.restarting = this.recreate(why).finally(() => {
      this.restarting = undefined;
      if (this.pendingRestart && !this.stopped) {
        this.pendingRestart = false;
        this.restart(why);
      }
    });
  }

  private async recreate(why: string): Promise<void> {
    for (let attempt = 0; !this.stopped && !this.paused; attempt++) {
      this.sub?.unsubscribe();
      this.dropConsumer();
      if (why !== 'start') this.opts.onResume?.(this.lastSeq + 1, why);
      const serial = ++this.serial;
      const inbox = createInbox();
      this.expectedDelivery = 1;
      this.lastActivity = Date.now();
      this.sub = this.ctx.nc.subscribe(inbox, { callback: (err, msg) => this.onMsg(serial, err, msg) });
      try {
        const ci = await this.ctx.jsm.consumers.add(
          this.ctx.stream,
          consumerConfig(this.opts.filter, { policy: 'by_start_sequence', startSeq: this.lastSeq + 1 }, inbox, this.heartbeatMs),
        );
        if (this.stopped || this.paused || serial !== this.serial) {
          this.ctx.jsm.consumers.delete(this.ctx.stream, ci.name).catch(() => undefined);
          return;
        }
        this.consumerName = ci.name;
        this.createFailures = 0;
        this.lastActivity = Date.now();
        return;
      } catch (err) {
        if (this.ctx.nc.isClosed()) return this.fail(err);
        const message = String((err as Error)?.message ?? err);
        if (/stream not found/i.test(message) && ++this.createFailures >= 30) return this.fail(err);
        // At most 500 ms between tries: after a stream-leader change the writers go on as soon as a
        // new leader is elected, and every second this watch waits is ~50 writes per hot key that
        // the per-key history (64) may no longer hold when it resumes (HistoryGoneError).
        await new Promise((r) => setTimeout(r, Math.min(500, 50 * 2 ** Math.min(attempt, 6))));
      }
    }
  }

  private fail(err: unknown): void {
    if (this.stopped) return;
    this.stop();
    this.opts.onError(err);
  }

  private onMsg(serial: number, err: Error | null, msg: Msg): void {
    if (this.stopped || serial !== this.serial) return;
    if (err) {
      this.restart(`subscription error: ${err.message}`);
      return;
    }
    this.lastActivity = Date.now();
    const control = handleControl(this.ctx.nc, msg);
    if (control) {
      // A heartbeat that reports more deliveries than we saw means we missed some.
      if (control.heartbeat && (control.lastConsumerSeq ?? 0) >= this.expectedDelivery) this.restart('delivery gap (heartbeat)');
      return;
    }
    const info = parseAckSubject(msg.reply);
    if (!info) return;
    if (info.deliverySeq !== this.expectedDelivery) {
      this.restart('delivery gap');
      return;
    }
    this.expectedDelivery++;
    if (info.streamSeq <= this.lastSeq) return;
    const after = this.lastSeq;
    this.lastSeq = info.streamSeq;
    try {
      this.opts.onMessage(msg, info.streamSeq, { after, pending: info.pending });
    } catch (e) {
      this.fail(e);
    }
  }
}
