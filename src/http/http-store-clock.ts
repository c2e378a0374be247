/**
 * What an HttpStore knows of its server's clock (see revision-clock.ts): a
 * response stamped `Revkit-Clock: <instance>;<ms>` before it left the server
 * and received at local time r says the server's clock read at least ms at
 * r, so at any local moment t it reads at least t + (ms − r). The best such
 * offset of the last minute places the moment a watch() was called on the
 * server's clock, a little early (by the response's one-way delay) — never
 * late. Older readings are let go: two monotonic clocks may drift apart by up
 * to a millisecond a second while NTP slews them, which MARGIN_MS covers for
 * a minute.
 */
export class ServerClock {
  private instance: string | undefined;
  /** When this process first heard the current run, and whether it had heard another run before. */
  private firstHeard = 0;
  private restarted = false;
  private best: { offset: number; at: number } | undefined;
  private previous: { offset: number; at: number } | undefined;

  /** A response's Revkit-Clock header, received at local time `receivedAt` (performance.now()). */
  observe(header: string | null, receivedAt: number): void {
    const m = header === null ? null : /^([A-Za-z0-9_-]{1,32});([0-9]{1,15}(?:\.[0-9]{1,6})?)$/.exec(header);
    if (!m) return;
    if (m[1] !== this.instance) {
      this.restarted = this.instance !== undefined;
      this.instance = m[1];
      this.firstHeard = receivedAt;
      this.best = this.previous = undefined;
    }
    const offset = Number(m[2]) - receivedAt;
    // Two windows of WINDOW_MS: the best offset of the current one and of the one before.
    if (this.best === undefined || receivedAt - this.best.at > WINDOW_MS) {
      this.previous = this.best;
      this.best = { offset, at: receivedAt };
    } else if (offset > this.best.offset) this.best = { offset, at: this.best.at };
  }

  /**
   * `since` for a watch called at local time `calledAt`: `<instance>;<ms>`, or
   * undefined when no reading of the last minute is known (read one first).
   * Suffixed `;r` when the server restarted (or another run answered) after
   * watch() was called: that run may not have existed then, and the server
   * refuses (410) a moment before its own records began rather than start
   * the watch later than asked.
   */
  since(calledAt: number, now = performance.now()): string | undefined {
    if (this.instance === undefined || this.best === undefined || now - this.best.at > 2 * WINDOW_MS) return undefined;
    let offset = this.best.offset;
    if (this.previous !== undefined && now - this.previous.at <= 2 * WINDOW_MS) offset = Math.max(offset, this.previous.offset);
    const moment = `${this.instance};${Math.max(0, calledAt + offset - MARGIN_MS).toFixed(3)}`;
    return this.restarted && calledAt < this.firstHeard ? `${moment};r` : moment;
  }
}

const WINDOW_MS = 30_000;
/** Rounding, and monotonic clocks drifting apart (NTP slews each by up to 0.05%) for up to a minute. */
const MARGIN_MS = 250;
