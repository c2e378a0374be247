// The server's HTTP API as the console uses it. Same origin: every path is
// relative to the page (/ui/ → ../v1/…), so a proxy may mount the server under a path.

export type Access = 'read' | 'write' | 'admin';
export interface Scope { prefix: string; access: Access }
export interface Info {
  backend: string;
  requirePreconditions: boolean;
  limits: { maxPageSize: number; maxValueBytes: number };
  principal: { name: string; scopes: Scope[] };
  /** The store's replication state (null: none; absent: a server before issue 25). */
  replication?: Replication | null;
}

export interface Replication {
  serving: string | null;
  members: Array<{ address: string; role: string; state?: string }>;
  durability: string;
  note: string;
  failovers: number;
  lost?: { after?: number; upTo?: number; detectedAt?: string; message: string };
}

export interface Meta {
  key: string;
  revision: number;
  createdRevision: number;
  updatedAt: number;
  expiresAt?: number;
  writer?: string;
}
export interface Entry extends Meta { value: unknown }
export interface Tombstone { key: string; revision: number; deleted: true; writer?: string; updatedAt?: number }
export type HistoryRecord = Entry | Tombstone;

/** A failed call: the status and the server's problem+json body (code, detail, currentEtag…). */
export class ApiError extends Error {
  constructor(readonly status: number, readonly problem: Record<string, unknown>) {
    super(String(problem.detail ?? problem.title ?? `HTTP ${status}`));
  }
  get code(): string { return String(this.problem.code ?? ''); }
}

const RANK: Record<Access, number> = { read: 1, write: 2, admin: 3 };

/** The server's rule (src/server/auth.ts): one scope grants `need` on everything starting with `keyOrPrefix`. */
export function allows(scopes: Scope[], need: Access, keyOrPrefix: string): boolean {
  return scopes.some((s) => RANK[s.access] >= RANK[need] && keyOrPrefix.startsWith(s.prefix));
}

export const isTombstone = (r: HistoryRecord): r is Tombstone => (r as Tombstone).deleted === true;

/** `"12"` → 12; anything else → null. */
export function revisionOfEtag(etag: string | null | undefined): number | null {
  const m = /^"(\d+)"$/.exec(etag ?? '');
  return m ? Number(m[1]) : null;
}

const base = () => new URL('../', document.baseURI);
// The key travels as ?key=: no percent-encoding rules for `/`, `.` or `..` segments to get wrong.
const keyUrl = (key: string, history = false) => new URL(`v1/kv/${history ? '/history' : ''}?key=${encodeURIComponent(key)}`, base());

export interface WriteOptions { ifMatch?: number; ifNoneMatch?: '*'; ttlMs?: number; writer?: string }

export class Api {
  /** `onUnauthorized`: a 401 after sign-in (the token was revoked, or the server restarted with other tokens). */
  constructor(readonly token: string | null, private readonly onUnauthorized: (err: ApiError) => void = () => undefined) {}

  headers(extra: Record<string, string> = {}): Headers {
    const h = new Headers(extra);
    if (this.token) h.set('authorization', `Bearer ${this.token}`);
    return h;
  }

  url(path: string): URL { return new URL(path, base()); }

  private async call(method: string, url: URL, init: { headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
    const res = await fetch(url, { method, headers: this.headers(init.headers), body: init.body ?? null, cache: 'no-store' });
    if (!res.ok) {
      let problem: Record<string, unknown>;
      try { problem = await res.json(); } catch { problem = { detail: `HTTP ${res.status}` }; }
      const err = new ApiError(res.status, problem);
      if (res.status === 401) this.onUnauthorized(err);
      throw err;
    }
    return res;
  }

  async info(): Promise<Info> { return (await this.call('GET', this.url('v1/info'))).json(); }

  async list(prefix: string, after: string | undefined, limit: number): Promise<{ entries: Entry[]; cursor?: string }> {
    const u = this.url('v1/kv');
    u.searchParams.set('prefix', prefix);
    if (after !== undefined) u.searchParams.set('after', after);
    u.searchParams.set('limit', String(limit));
    return (await this.call('GET', u)).json();
  }

  /** The entry, read from the value body and the entry headers. */
  async get(key: string): Promise<Entry> {
    const res = await this.call('GET', keyUrl(key));
    const h = res.headers;
    const num = (name: string) => (h.get(name) === null ? undefined : Number(h.get(name)));
    const entry: Entry = {
      key,
      value: await res.json(),
      revision: revisionOfEtag(h.get('etag')) ?? 0,
      createdRevision: num('revkit-created-revision') ?? 0,
      updatedAt: num('revkit-updated-at') ?? 0,
    };
    const expiresAt = num('revkit-expires-at');
    if (expiresAt !== undefined) entry.expiresAt = expiresAt;
    const writer = h.get('revkit-writer');
    if (writer !== null) entry.writer = fromWriterHeader(writer);
    return entry;
  }

  /** PUT of JSON text as typed (validated by the caller), guarded by If-Match or If-None-Match. */
  async put(key: string, json: string, o: WriteOptions): Promise<Meta> {
    const u = keyUrl(key);
    if (o.ttlMs !== undefined) u.searchParams.set('ttlMs', String(o.ttlMs));
    return (await this.call('PUT', u, { headers: { 'content-type': 'application/json', ...guard(o) }, body: json })).json();
  }

  async delete(key: string, o: WriteOptions): Promise<{ revision: number }> {
    return (await this.call('DELETE', keyUrl(key), { headers: guard(o) })).json();
  }

  async history(key: string, limit: number): Promise<HistoryRecord[]> {
    const u = keyUrl(key, true);
    u.searchParams.set('limit', String(limit));
    const body = await (await this.call('GET', u)).json() as { records: HistoryRecord[] };
    return body.records.sort((a, b) => b.revision - a.revision);
  }
}

function guard(o: WriteOptions): Record<string, string> {
  const h: Record<string, string> = {};
  if (o.ifMatch !== undefined) h['if-match'] = `"${o.ifMatch}"`;
  if (o.ifNoneMatch !== undefined) h['if-none-match'] = o.ifNoneMatch;
  if (o.writer !== undefined) h['revkit-writer'] = encodeURIComponent(o.writer);
  return h;
}

/** Revkit-Writer is percent-encoded UTF-8; a header that is not is shown as it stands. */
function fromWriterHeader(header: string): string {
  try {
    return decodeURIComponent(header);
  } catch {
    return header;
  }
}
