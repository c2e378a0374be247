/**
 * PostgreSQL with several hosts in the URL (issue 25): the URL forms libpq
 * accepts, writes going to the member that accepts them (a standby listed
 * first is skipped), 25006 read-only as a transient refusal, and the
 * durability / replication state the store reports for a synchronous and an
 * asynchronous standby. Private clusters on free ports (never the machine's
 * PostgreSQL); failovers themselves are in test/faults/replication-postgres.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, InvalidArgumentError } from '../src/core/index.js';
import { mapPgError, PostgresStore } from '../src/postgres/index.js';
import { splitHosts } from '../src/postgres/hosts.js';
import { urlSettings } from '../src/postgres/options.js';
// @ts-expect-error plain ESM launcher without types
import { startPostgresCluster } from './support/clusters/postgres.mjs';

interface Cluster { url: string; paramUrl: string; primary: { port: number }; standby: { port: number }; stop(): Promise<void> }

describe('postgres URL with several hosts', () => {
  it('splits h1:p1,h2:p2 and ?host=h1,h2&port=p1,p2 into members, keeping every other option', () => {
    const a = splitHosts('postgres://u:secret@h1:5432,h2:5433,[::1]/db?prefix=x_&sslmode=disable');
    expect(a.members.map((m) => m.address)).toEqual(['h1:5432', 'h2:5433', '[::1]:5432']);
    expect(a.url).toBe('postgres://u:secret@h1:5432/db?prefix=x_&sslmode=disable');
    const b = splitHosts('postgres:///db?user=u&host=h1,h2&port=6000,6001&prefix=y_');
    expect(b.members.map((m) => m.address)).toEqual(['h1:6000', 'h2:6001']);
    expect(b.url).toBe('postgres://h1:6000/db?user=u&prefix=y_');
    const c = splitHosts('postgres:///db?host=h1,h2&port=7000');
    expect(c.members.map((m) => m.address)).toEqual(['h1:7000', 'h2:7000']);
    const settings = urlSettings('postgres://u@h1:1,h2:2/db?historyDepth=5&target_session_attrs=read-write', {});
    expect(settings.members).toHaveLength(2);
    expect(settings.merged.historyDepth).toBe(5);
  });

  it('refuses malformed host lists and target_session_attrs it cannot honour, naming no password', () => {
    const bad = [
      'postgres://u:secret@h1:5432,h2:99999/db',
      'postgres://u:secret@h1:5432,h1:5432/db',
      'postgres://u:secret@h1:5432,/db',
      'postgres:///db?password=secret&host=h1,h2,h3&port=1,2',
      'postgres://u:secret@h1,h2/db?target_session_attrs=any',
      'postgres://u:secret@h1,h2/db?prefx=a_',
    ];
    for (const url of bad) {
      let err: unknown;
      try {
        urlSettings(url, {});
      } catch (e) {
        err = e;
      }
      expect(InvalidArgumentError.is(err), url).toBe(true);
      expect(String((err as Error).message)).not.toContain('secret');
    }
  });

  it('25006 read_only_sql_transaction is a transient refusal: nothing was written', () => {
    const err = mapPgError(Object.assign(new Error('cannot execute UPDATE in a read-only transaction'), { code: '25006' }), { writeSent: true, what: 'put' });
    expect(BackendError.is(err)).toBe(true);
    expect((err as BackendError).transient).toBe(true);
    expect((err as BackendError).ambiguous).toBe(false);
  });
});

describe.each([
  { synchronous: true, durability: 'replicated', sync: 'sync' },
  { synchronous: false, durability: 'fsync', sync: 'async' },
])('a private primary + standby (synchronous: $synchronous)', ({ synchronous, durability, sync }) => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = (await startPostgresCluster({ synchronous, single: false })) as Cluster;
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('writes go to the primary even with the standby listed first; durability and replication() say what an acknowledgement means', async () => {
    const url = `postgres://postgres@127.0.0.1:${cluster.standby.port},127.0.0.1:${cluster.primary.port}/test?prefix=mh_`;
    const store = await PostgresStore.fromUrl(url);
    try {
      const e = await store.put('k', { v: 1 });
      expect((await store.get('k'))?.revision).toBe(e.revision);
      expect(store.capabilities.durability).toBe(durability);
      const r = await store.replication();
      expect(r.serving).toBe(`127.0.0.1:${cluster.primary.port}`);
      expect(r.durability).toBe(durability);
      expect(r.failovers).toBe(0);
      expect(r.lost).toBeUndefined();
      expect(r.members[0]).toMatchObject({ role: 'primary' });
      expect(r.members.some((m) => m.role === 'standby' && m.state?.includes(sync))).toBe(true);
      expect(r.note).toMatch(synchronous ? /acknowledged once flushed on a synchronous standby/ : /asynchronous/);
    } finally {
      await store.drop().catch(() => undefined);
      await store.close();
    }
  }, 60_000);
});
