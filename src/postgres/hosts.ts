/**
 * Several hosts in one URL, as libpq accepts them
 * (`postgres://u:p@h1:5432,h2:5433/db`), and connections that go to the one
 * that accepts writes (libpq's target_session_attrs=read-write): a new
 * connection tries the member that served last, and a member that refuses
 * it, cannot be reached, or is read-only (a standby: pg_is_in_recovery(), or
 * default_transaction_read_only) is skipped for the next one. node-postgres
 * reads one host only, so the URL is split here and every pooled client is
 * pointed at the member of the moment (MemberRing.clientClass).
 */
import pg from 'pg';
import { InvalidArgumentError } from '../core/index.js';
import { redactUrl } from '../core/redact.js';

export interface Member {
  host: string;
  port: number;
  /** host:port as messages and replication() name it. */
  address: string;
}

/** The error a read-only member's connection fails with: SQLSTATE 25006 read_only_sql_transaction, so mapPgError calls it transient, nothing written. */
export class ReadOnlyMemberError extends Error {
  readonly code = '25006';
}

/**
 * Splits the host list off a postgres URL: the members, and the URL with
 * the first member alone (what URL parsing and pg get). A URL of one host
 * comes back as it is, with that one member.
 */
export function splitHosts(url: string): { members: Member[]; url: string } {
  const m = /^(postgres(?:ql)?:\/\/)(.*)$/is.exec(url);
  if (!m) return { members: [], url };
  const [, scheme = '', afterScheme = ''] = m;
  // The user info ends at the last '@' before the path: a password may hold an unencoded '?' or '#', never a '/'.
  const slash = afterScheme.indexOf('/');
  let at = afterScheme.lastIndexOf('@', slash === -1 ? afterScheme.length : slash);
  // Without a path, an '@' after `?name=` is the query's (application_name=me@host), not the end of a password.
  if (slash === -1 && /[?#][^@]*=/.test(afterScheme.slice(0, at))) at = afterScheme.indexOf('@') < afterScheme.search(/[?#]/) ? afterScheme.indexOf('@') : -1;
  const auth = afterScheme.slice(0, at + 1);
  const [, hostPart = '', rest = ''] = /^([^/?#]*)(.*)$/s.exec(afterScheme.slice(at + 1)) ?? [];
  const params = hostParams(url);
  if (params) return params;
  if (!hostPart.includes(',')) {
    const one = hostPart === '' ? [] : [member(hostPart, url)];
    return { members: one, url };
  }
  const members = hostPart.split(',').map((h) => member(h, url));
  const seen = new Set<string>();
  for (const x of members) {
    if (seen.has(x.address)) throw new InvalidArgumentError(`postgres URL ${JSON.stringify(redactUrl(url))} names ${x.address} twice`);
    seen.add(x.address);
  }
  const first = members[0] as Member;
  return { members, url: `${scheme}${auth}${first.host.includes(':') ? `[${first.host}]` : first.host}:${first.port}${rest}` };
}

/**
 * libpq's other form: `postgres:///db?host=h1,h2&port=5432,5433` (one port
 * for all, or one per host). Answers undefined when the URL has no host list
 * there.
 */
function hostParams(url: string): { members: Member[]; url: string } | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  const hosts = parsed.searchParams.get('host');
  if (hosts === null || !hosts.includes(',')) return undefined;
  if (parsed.host !== '') throw new InvalidArgumentError(`postgres URL ${JSON.stringify(redactUrl(url))} names hosts both before the path and in ?host=: use one of the two`);
  const names = hosts.split(',');
  const ports = (parsed.searchParams.get('port') ?? '').split(',').filter((p) => p !== '');
  if (ports.length > 1 && ports.length !== names.length) {
    throw new InvalidArgumentError(`postgres URL ${JSON.stringify(redactUrl(url))}: ?port= lists ${ports.length} ports for ${names.length} hosts (give one port, or one per host)`);
  }
  const members = names.map((h, i) => member(`${h.includes(':') ? `[${h}]` : h}${ports.length === 0 ? '' : `:${ports[ports.length === 1 ? 0 : i]}`}`, url));
  parsed.searchParams.delete('host');
  parsed.searchParams.delete('port');
  const first = members[0] as Member;
  const text = parsed.toString().replace(/^(postgres(?:ql)?:\/\/)([^@/?#]*@)?/i, (_all, sch: string, auth = '') => `${sch}${auth}${first.host.includes(':') ? `[${first.host}]` : first.host}:${first.port}`);
  return { members, url: text };
}

function member(text: string, url: string): Member {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(text);
  const port = m?.[3] === undefined ? 5432 : Number(m[3]);
  if (!m || port < 1 || port > 65535) {
    // The piece itself is not quoted: in a URL it failed to split, it may be a password.
    throw new InvalidArgumentError(`postgres URL ${JSON.stringify(redactUrl(url))}: its host list is not host[:port],… (several hosts: h1:5432,h2:5433)`);
  }
  const host = decodeURIComponent(m[1] ?? m[2] ?? '');
  return { host, port, address: `${host.includes(':') ? `[${host}]` : host}:${port}` };
}

/** What a connection learned of its member when it was made: the member, and whether it was checked writable. */
export interface MemberInfo {
  member: Member;
}

/** Whether the member takes writes, and its WAL timeline (see TIMELINE_SQL in sql/lineage.ts). */
const CHECK_SQL = `SELECT pg_is_in_recovery() AS recovery, current_setting('transaction_read_only') AS ro,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END AS tli`;

/** How long a new member's check waits for each other member's answer (an unreachable one counts as no primary). */
export const PEER_PROBE_MS = 1500;

/** The members of a URL, and which one new connections try first (the last that accepted writes). */
export class MemberRing {
  private current = 0;
  /** The member the last writable connection was made to, for messages and replication(). */
  serving: Member | undefined;
  /** Times new connections found another member serving than the one before. */
  switches = 0;
  /**
   * The highest WAL timeline a writable member was found on. A primary on a
   * lower one is an old primary that kept running, or was restarted as a
   * primary, after a standby was promoted: writing there would diverge.
   */
  maxTimeline = 0;
  /** member address → the timeline it was checked against the other members on. */
  private readonly verified = new Map<string, number>();
  private readonly probing = new Map<string, Promise<number>>();

  constructor(readonly members: Member[]) {}

  /** The member a new connection tries. */
  pick(): Member {
    return this.members[this.current % this.members.length] as Member;
  }

  /** `m` refused, could not be reached or is read-only: the next connection tries the next member (unless another already moved on). */
  skip(m: Member): void {
    if (this.pick() === m) this.current = (this.current + 1) % this.members.length;
  }

  private accepted(m: Member): void {
    if (this.serving !== undefined && this.serving !== m) this.switches += 1;
    this.serving = m;
  }

  /**
   * The other members, asked at once (each bounded by PEER_PROBE_MS): the
   * highest timeline above `tli` that one of them serves writes on, 0 when
   * none does (a standby, unreachable, or not newer).
   */
  newerPrimary(config: string | pg.ClientConfig | undefined, self: Member, tli: number): Promise<number> {
    // Connections made together (a pool filling up) share one round of questions.
    const id = `${self.address}@${tli}`;
    let asking = this.probing.get(id);
    if (!asking) {
      asking = Promise.all(this.members.filter((x) => x !== self).map((x) => probeTimeline(config, x)))
        .then((answers) => Math.max(0, ...answers.filter((t) => t > tli)))
        .finally(() => this.probing.delete(id));
      this.probing.set(id, asking);
    }
    return asking;
  }

  /** pg's Client, pointed at the member of the moment; its connect() fails (ReadOnlyMemberError) on a read-only member and moves on. */
  clientClass(): typeof pg.Client {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const ring = this;
    class MemberClient extends pg.Client {
      revkitMember: Member;
      /** What the pool made it with: the other members are probed with the same (hosts.ts newerPrimary). */
      private readonly revkitConfig: string | pg.ClientConfig | undefined;
      constructor(config?: string | pg.ClientConfig) {
        super(config);
        this.revkitConfig = config;
        const m = ring.pick();
        this.revkitMember = m;
        pointAt(this, m);
        // A member dying while the check below runs emits 'error' before the pool listens: the check's query fails with it anyway.
        this.on('error', () => undefined);
      }

      override connect(): Promise<pg.Client>;
      override connect(callback: (err: Error) => void): void;
      override connect(callback?: (err: Error) => void): Promise<pg.Client> | void {
        const done = this.connectWritable().then(() => this as pg.Client);
        if (!callback) return done;
        // pg-pool's form: callback(null) on success.
        done.then(() => (callback as (err: Error | null) => void)(null), (err: Error) => callback(err));
      }

      private async connectWritable(): Promise<void> {
        const m = this.revkitMember;
        try {
          await super.connect();
        } catch (err) {
          ring.skip(m);
          throw err;
        }
        let row: { recovery?: unknown; ro?: unknown; tli?: unknown } | undefined;
        try {
          row = (await super.query(CHECK_SQL)).rows[0] as typeof row;
        } catch (err) {
          ring.skip(m);
          await this.end().catch(() => undefined);
          throw err;
        }
        if (row?.recovery === true || row?.ro === 'on') {
          ring.skip(m);
          await this.end().catch(() => undefined);
          throw new ReadOnlyMemberError(`postgres member ${m.address} is read-only (${row.recovery === true ? 'a standby in recovery' : 'default_transaction_read_only'}): trying the next host`);
        }
        const tli = parseInt(String(row?.tli), 16);
        if (Number.isFinite(tli)) {
          // Split brain: another member promoted since. Once per member and timeline, the others are asked.
          if (ring.verified.get(m.address) !== tli) {
            const peer = await ring.newerPrimary(this.revkitConfig, m, tli);
            if (peer > ring.maxTimeline) ring.maxTimeline = peer;
            if (peer === 0) ring.verified.set(m.address, tli);
          }
          if (tli < ring.maxTimeline) {
            ring.skip(m);
            await this.end().catch(() => undefined);
            throw new ReadOnlyMemberError(`postgres member ${m.address} is a primary on WAL timeline ${tli}, but a member on timeline ${ring.maxTimeline} was promoted since: ` +
              'an old primary that kept running or was restarted as a primary (split brain); refused, trying the next host (rebuild it as a standby of the new primary)');
          }
          if (tli > ring.maxTimeline) ring.maxTimeline = tli;
        }
        ring.accepted(m);
      }
    }
    return MemberClient;
  }
}

/** Points a pg.Client, before it connects, at a member: its host and port and those kept in its connectionParameters. */
function pointAt(client: pg.Client, m: Member): void {
  const self = client as unknown as { host: string; port: number; connectionParameters: { host: string; port: number } };
  self.host = m.host;
  self.port = m.port;
  self.connectionParameters.host = m.host;
  self.connectionParameters.port = m.port;
}

/** A member's timeline when it serves writes, else 0 (a standby, read-only, unreachable, or no answer within PEER_PROBE_MS). */
async function probeTimeline(config: string | pg.ClientConfig | undefined, m: Member): Promise<number> {
  const base: pg.ClientConfig = typeof config === 'string' ? { connectionString: config } : { ...(config ?? {}) };
  const client = new pg.Client({ ...base, connectionTimeoutMillis: PEER_PROBE_MS });
  pointAt(client, m);
  client.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  const ask = (async () => {
    await client.connect();
    const row = (await client.query(CHECK_SQL)).rows[0] as { recovery?: unknown; ro?: unknown; tli?: unknown } | undefined;
    if (!row || row.recovery === true || row.ro === 'on') return 0;
    const t = parseInt(String(row.tli), 16);
    return Number.isFinite(t) ? t : 0;
  })();
  try {
    return await Promise.race([ask, new Promise<number>((resolve) => (timer = setTimeout(() => resolve(0), PEER_PROBE_MS)))]);
  } catch {
    return 0;
  } finally {
    clearTimeout(timer);
    void client.end().catch(() => undefined);
    ask.catch(() => undefined);
  }
}
