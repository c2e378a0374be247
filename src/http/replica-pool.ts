import { RevkitError } from '../core/index.js';
import { replicaUnusable } from './transport-errors.js';
import type { HttpTransport } from './transport.js';

/** How often a replica left as unable to serve is asked GET /readyz until it answers 200. */
export const DEFAULT_PROBE_INTERVAL_MS = 250;
const PROBE_TIMEOUT_MS = 2_000;

/** One revkit server of the list, as the client sees it now. */
export interface ReplicaView {
  /** Its URL, secrets redacted. */
  server: string;
  /** Known unable to serve (no answer, or an answer saying so): left until a probe of /readyz answers 200. */
  down: boolean;
}

/**
 * The revkit servers an HttpStore may talk to (replicas over one shared
 * store), in the order given: the first is its home. Every call goes to the
 * first replica not known to be down; one that cannot serve — no HTTP answer,
 * or an answer that says the server itself is unable: shutting down, its
 * store unreachable from it, its gateway's 502/503/504 (replicaUnusable) —
 * is left for the next, and probed in the background until /readyz answers
 * 200, when the calls go back to it. The probes cost the callers nothing: no
 * call waits for a dead replica twice.
 */
export class ReplicaPool {
  readonly transports: readonly HttpTransport[];
  private readonly down = new Set<number>();
  private readonly probing = new Map<number, AbortController>();
  private readonly probeIntervalMs: number;
  private lastServed: number | undefined;
  private closed = false;
  /** Times the serving replica changed (away from a dead one, or back home). */
  failovers = 0;

  constructor(transports: readonly HttpTransport[], probeIntervalMs = DEFAULT_PROBE_INTERVAL_MS) {
    if (transports.length === 0) throw new RangeError('a replica pool needs at least one server');
    this.transports = transports;
    this.probeIntervalMs = probeIntervalMs;
  }

  /** The replica calls go to now: the first not known to be down (all down: home, which fails fast). */
  pick(): number {
    let chosen = 0;
    for (let i = 0; i < this.transports.length; i++) {
      if (!this.down.has(i)) {
        chosen = i;
        break;
      }
    }
    if (this.lastServed !== undefined && this.lastServed !== chosen) this.failovers++;
    this.lastServed = chosen;
    return chosen;
  }

  /** The transport of the replica serving now. */
  current(): HttpTransport {
    return this.transports[this.pick()] as HttpTransport;
  }

  /** The replicas and which are down, in order. */
  view(): ReplicaView[] {
    return this.transports.map((t, i) => ({ server: t.server, down: this.down.has(i) }));
  }

  /**
   * Runs `op` on the serving replica; when that replica is unusable
   * (replicaUnusable) it is left, and `op` runs on the next one — unless it
   * was a write that may have reached the store through it (ambiguous: cut on
   * its way, a gateway's 502/504, the store's unconfirmed commit): that is the
   * caller's to resolve (update() does, by its writer token, on the next
   * replica), never sent twice here. A write refused before anything was done
   * (refused connection, shutting down, a store unreachable from that server)
   * runs on the next one. Each replica is tried at most once.
   */
  async run<R>(op: (transport: HttpTransport) => Promise<R>): Promise<R> {
    const tried = new Set<number>();
    for (;;) {
      const index = this.pick();
      tried.add(index);
      try {
        return await op(this.transports[index] as HttpTransport);
      } catch (err) {
        if (!replicaUnusable(err)) throw err;
        this.leave(index);
        const ambiguous = RevkitError.is(err) && (err as { ambiguous?: unknown }).ambiguous === true;
        if (ambiguous || this.transports.length === 1 || tried.has(this.pick())) throw err;
      }
    }
  }

  /** Replica `index` cannot serve: leave it until it answers a probe. */
  leave(index: number): void {
    if (this.transports.length === 1 || this.closed || this.down.has(index)) return;
    this.down.add(index);
    const stop = new AbortController();
    this.probing.set(index, stop);
    void this.probe(index, stop.signal);
  }

  /** Stops the probes. */
  close(): void {
    this.closed = true;
    for (const stop of this.probing.values()) stop.abort();
    this.probing.clear();
  }

  private async probe(index: number, signal: AbortSignal): Promise<void> {
    const transport = this.transports[index] as HttpTransport;
    while (!signal.aborted) {
      await pause(this.probeIntervalMs, signal);
      if (signal.aborted) return;
      if (await transport.probe(signal, PROBE_TIMEOUT_MS)) {
        this.down.delete(index);
        this.probing.delete(index);
        return;
      }
    }
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref?.();
    signal.addEventListener('abort', done, { once: true });
  });
}
