// The one text/event-stream parser: HttpStore's watch() and the web console's
// live view (ui/src/sse.ts, bundled by esbuild) both read the server's SSE
// stream with it. It imports nothing, so the browser bundle can take it as is.

export interface SseMessage { id: string | undefined; event: string; data: string }

/**
 * Incremental parser (WHATWG "event stream interpretation"). Only complete
 * events come out of feed(): an event cut in the middle by a dropped
 * connection is never returned.
 */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;
  /** The last id the stream named, also by an id-only block (the server announces its start that way). */
  lastId: string | undefined;
  retryMs: number | undefined;

  /** `onId`: called with the id of each complete block that names one, in stream order, data or not. */
  constructor(private readonly onId?: (id: string) => void) {}

  feed(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const nl = /\r\n|\r|\n/.exec(this.buffer);
      if (!nl) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (nl[0] === '\r' && nl.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, nl.index);
      this.buffer = this.buffer.slice(nl.index + nl[0].length);
      if (line === '') {
        if (this.id !== undefined) {
          this.lastId = this.id;
          this.onId?.(this.id);
        }
        if (this.data.length > 0) out.push({ id: this.lastId, event: this.event || 'message', data: this.data.join('\n') });
        this.data = [];
        this.event = '';
        this.id = undefined;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.data.push(value);
      else if (field === 'event') this.event = value;
      else if (field === 'id' && !value.includes('\0')) this.id = value;
      else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    return out;
  }
}
