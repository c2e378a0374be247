/**
 * A tiny Prometheus registry: counters, gauges and one histogram, rendered
 * in the text exposition format (version 0.0.4). Label values are escaped;
 * label sets are bounded by the route table, never by keys or tokens.
 */
type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string, readonly type: 'counter' | 'gauge' = 'counter') {}
  inc(labels: Labels = {}, by = 1): void {
    this.cell(labels).value += by;
  }
  /** The series of `labels` (created at 0), for a caller that counts on it often: `cell.value += n`. */
  cell(labels: Labels): { labels: Labels; value: number } {
    const id = labelText(labels);
    let v = this.values.get(id);
    if (!v) this.values.set(id, (v = { labels, value: 0 }));
    return v;
  }
  set(labels: Labels, value: number): void {
    this.values.set(labelText(labels), { labels, value });
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    if (this.values.size === 0 && this.type === 'counter') lines.push(`${this.name} 0`);
    for (const { labels, value } of this.values.values()) lines.push(`${this.name}${labelText(labels)} ${value}`);
    return lines.join('\n');
  }
}

interface Series {
  labels: Labels;
  counts: number[];
  sum: number;
  count: number;
}

class Histogram {
  private readonly series = new Map<string, Series>();
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {}
  observe(labels: Labels, value: number): void {
    this.observeIn(this.seriesOf(labels), value);
  }
  /** The series of `labels` (created empty), for a caller that observes on it often with observeIn(). */
  seriesOf(labels: Labels): Series {
    const id = labelText(labels);
    let s = this.series.get(id);
    if (!s) this.series.set(id, (s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    return s;
  }
  observeIn(s: Series, value: number): void {
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= (this.buckets[i] as number)) {
        s.counts[i] = (s.counts[i] as number) + 1;
        break;
      }
    }
    s.sum += value;
    s.count++;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += s.counts[i] as number;
        lines.push(`${this.name}_bucket${labelText({ ...s.labels, le: String(this.buckets[i]) })} ${cumulative}`);
      }
      lines.push(`${this.name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.count}`);
      lines.push(`${this.name}_sum${labelText(s.labels)} ${s.sum}`);
      lines.push(`${this.name}_count${labelText(s.labels)} ${s.count}`);
    }
    return lines.join('\n');
  }
}

export class ServerMetrics {
  readonly requests = new Counter('revkit_http_requests_total', 'HTTP requests by route, method and status.');
  readonly latency = new Histogram('revkit_http_request_duration_seconds', 'HTTP request latency by route.', [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
  readonly conflicts = new Counter('revkit_conflicts_total', 'Writes refused because a precondition or check failed (412 and 409 ERR_CONFLICT).');
  readonly retries = new Counter('revkit_update_retries_total', 'Conflict retries spent by server-side read-modify-write loops (PATCH, If-Match lists).');
  readonly watchers = new Counter('revkit_watch_streams', 'Open Server-Sent Events watch streams.', 'gauge');
  readonly watchOverflows = new Counter('revkit_watch_overflows_total', 'Watch streams closed because their reader fell too far behind (it resumes with Last-Event-ID).');
  private readonly watchBufferPeak = new Counter('revkit_watch_buffer_peak_bytes', 'Most bytes any watch stream has had queued for its reader.', 'gauge');
  private openWatchers = 0;
  /** Most bytes any watch stream has had queued for its reader since the server started. */
  watchBufferPeakBytes = 0;

  /**
   * What counts one answered request on `route` (a route of the server, never user
   * input), by method and status, and times it (a watch stream is counted when it
   * starts and not timed). The series it touches are looked up once and kept here,
   * so a request costs two map lookups and no label text.
   */
  forRoute(route: string): (method: string, status: number, seconds?: number) => void {
    const cells = new Map<string, Map<number, { value: number }>>();
    let timing: Series | undefined;
    return (method, status, seconds) => {
      let byStatus = cells.get(method);
      if (!byStatus) cells.set(method, (byStatus = new Map()));
      let cell = byStatus.get(status);
      if (!cell) byStatus.set(status, (cell = this.requests.cell({ route, method, status: String(status) })));
      cell.value++;
      if (seconds !== undefined) this.latency.observeIn((timing ??= this.latency.seriesOf({ route })), seconds);
    };
  }

  watchBuffered(bytes: number): void {
    if (bytes > this.watchBufferPeakBytes) this.watchBufferPeakBytes = bytes;
  }

  watchOpened(): void {
    this.watchers.set({}, ++this.openWatchers);
  }
  watchClosed(): void {
    this.watchers.set({}, --this.openWatchers);
  }

  render(): string {
    const mem = process.memoryUsage();
    const extra = [
      '# HELP process_resident_memory_bytes Resident memory size in bytes.',
      '# TYPE process_resident_memory_bytes gauge',
      `process_resident_memory_bytes ${mem.rss}`,
      '# HELP nodejs_heap_used_bytes V8 heap in use, in bytes.',
      '# TYPE nodejs_heap_used_bytes gauge',
      `nodejs_heap_used_bytes ${mem.heapUsed}`,
    ].join('\n');
    if (this.openWatchers === 0) this.watchers.set({}, 0);
    this.watchBufferPeak.set({}, this.watchBufferPeakBytes);
    return [
      this.requests.render(), this.latency.render(), this.conflicts.render(), this.retries.render(), this.watchers.render(),
      this.watchOverflows.render(), this.watchBufferPeak.render(), extra,
    ].join('\n') + '\n';
  }
}
