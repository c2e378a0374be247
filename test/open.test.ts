import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { open } from '../src/open.js';
import type { PostgresStore } from '../src/postgres/index.js';
import { createServer } from '../src/server/index.js';
import { tempDir, uniqueName } from './helpers.js';

describe('open(url)', () => {
  it('refuses an unknown scheme or a malformed URL with ERR_INVALID_ARGUMENT', async () => {
    for (const bad of ['', 'mongodb://x', 'no-scheme', 'postgres://[bad']) {
      const err = await open(bad).catch((e) => e);
      expect(err.code, bad).toBe('ERR_INVALID_ARGUMENT');
    }
  });

  it('opens memory: and a revkit server by http:// URL', async () => {
    const server = await createServer({ store: 'memory:', adminToken: 'a-long-enough-admin-token' });
    await server.listen({ host: '127.0.0.1', port: 0 });
    try {
      const remote = await open(`${server.url}?token=a-long-enough-admin-token`);
      const e = await remote.put('via/http', { ok: true }, { ifAbsent: true });
      expect((await remote.update<{ ok: boolean; n?: number }>('via/http', (v) => ({ ...v!, n: 1 })))?.revision).toBeGreaterThan(e.revision);
      expect((await server.store.get('via/http'))?.value).toEqual({ ok: true, n: 1 });
      await remote.close();
    } finally {
      await server.close();
    }
  });
});

// DESIGN §6: an unknown query option is an InvalidArgumentError naming it and what is accepted — never a
// silently ignored option that opens the default namespace (another application's data). The network
// backends are given a port nothing listens on: a URL that got past its options would fail to connect
// (BackendError) instead, so nothing is created anywhere either way.
describe('open(url): unknown URL options are refused on every backend, naming the option and what is accepted', () => {
  const dir = tempDir('open-options');
  const refusal = async (url: string) => {
    const err = await open(url).then(async (s) => {
      await s.close();
      return null;
    }, (e: unknown) => e as Error & { code?: string });
    expect(err, url).not.toBeNull();
    expect(err?.code, `${url}: ${err?.message}`).toBe('ERR_INVALID_ARGUMENT');
    return err?.message ?? '';
  };

  const typos: Array<[string, string, RegExp, string[]]> = [
    ['postgres://root@127.0.0.1:1/test?prefx=myapp', 'prefx', /did you mean "prefix"/, ['prefix', 'schema', 'sslmode', 'application_name', 'connect_timeout']],
    ['postgresql://root@127.0.0.1:1/test?keepalives=1', 'keepalives', /accepted: /, ['prefix', 'sslmode']],
    ['redis://127.0.0.1:1/0?prefx=myapp', 'prefx', /did you mean "prefix"/, ['prefix', 'historyDepth', 'closeTimeoutMs', 'family']],
    ['rediss://127.0.0.1:1/0?watchBlockMS=5', 'watchBlockMS', /did you mean "watchBlockMs"/, ['watchBlockMs']],
    ['redis://127.0.0.1:1/0?autoResendUnfulfilledCommands=true', 'autoResendUnfulfilledCommands', /accepted: /, ['prefix']],
    ['nats://127.0.0.1:1?buckett=myapp', 'buckett', /did you mean "bucket"/, ['bucket', 'replicas', 'token']],
    ['memory:?token=x', 'token', /accepted: /, ['historyDepth', 'changeLogSize', 'sweepIntervalMs']],
    ['memory:?historydepth=1', 'historydepth', /did you mean "historyDepth"/, ['historyDepth']],
    ['http://127.0.0.1:1?tokn=abc', 'tokn', /did you mean "token"/, ['token']],
  ];
  for (const [url, option, hint, accepted] of typos) {
    it(url, async () => {
      const message = await refusal(url);
      expect(message).toContain(`"${option}"`);
      expect(message).toMatch(hint);
      for (const a of accepted) expect(message).toContain(a);
    }, 20_000);
  }

  it('sqlite: and file: refuse an unknown option and create no file', async () => {
    for (const [url, path, option] of [
      [`sqlite:${join(dir, 'a.db')}?password=x`, join(dir, 'a.db'), 'password'],
      [`sqlite:${join(dir, 'b.db')}?synchronus=normal`, join(dir, 'b.db'), 'synchronus'],
      [`file:${join(dir, 'c.json')}?token=x`, join(dir, 'c.json'), 'token'],
      [`file:${join(dir, 'd.json')}?changelog=5`, join(dir, 'd.json'), 'changelog'],
    ] as const) {
      expect(await refusal(url)).toContain(`"${option}"`);
      expect(existsSync(path), path).toBe(false);
    }
    // A '?' in a file path is the query: the typo's path is not opened as a store.
    expect(await refusal(`file:${join(dir, 'e?f.json')}`)).toContain('"f.json"');
    expect(existsSync(join(dir, 'e'))).toBe(false);
  });

  it('sqlite: and file: refuse a path whose folder does not exist (a typo), creating nothing; a new file in an existing folder is a new store', async () => {
    for (const url of [`sqlite:${join(dir, 'dta', 'app.db')}`, `file:${join(dir, 'stat', 'state.json')}`, `sqlite:${join(dir, 'x', 'y', 'z.db')}`]) {
      const err = await open(url).then((s) => s.close().then(() => null), (e: unknown) => e);
      expect(err, url).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      expect((err as Error).message).toMatch(/does not exist — check the path for a typo/);
    }
    for (const missing of ['dta', 'stat', 'x']) expect(existsSync(join(dir, missing)), missing).toBe(false);
    for (const url of [`sqlite:${join(dir, 'new.db')}`, `file:${join(dir, 'new.json')}`]) {
      const store = await open(url);
      await store.put('k', 1);
      await store.close();
    }
  });

  it('memory: takes no name (each open is a new store), and its options work', async () => {
    expect(await refusal('memory:orders')).toMatch(/no path or name/);
    const s = await open('memory:?historyDepth=2&changeLogSize=100&sweepIntervalMs=50');
    try {
      for (let i = 0; i < 5; i++) await s.put('k', i);
      expect((await s.history('k')).length).toBe(2);
    } finally {
      await s.close();
    }
    expect(await refusal('memory:?historyDepth=0')).toMatch(/historyDepth must be a positive integer/);
  });

  it('a malformed value is refused too', async () => {
    for (const [url, what] of [
      [`sqlite:${join(dir, 'g.db')}?historyRetention=lots`, /historyRetention/],
      ['nats://127.0.0.1:1?create=fals', /create must be true or false/],
      ['nats://127.0.0.1:1?replicas=', /replicas must be an integer/],
      ['postgres://root@127.0.0.1:1/test?notify=nope', /notify must be true or false/],
      ['postgres://root@127.0.0.1:1/test?connect_timeout=5s', /connect_timeout must be a non-negative integer/],
      ['redis://127.0.0.1:1/0?historyDepth=10x', /historyDepth must be a non-negative integer/],
      ['redis://127.0.0.1:1/0?family=5', /family must be 4, 6 or 0/],
      ['redis://127.0.0.1:1/0?db=1', /db must be a non-negative integer, and not given as the path as well/],
    ] as const) {
      expect(await refusal(url)).toMatch(what);
    }
  }, 20_000);

  it('the error never shows a secret of the URL: a password, a secret option\'s value, a "?" in a password', async () => {
    const msg1 = await refusal('postgres://root:pw-secret-123@127.0.0.1:1/test?passwrd=hunter2-secret&prefx=a');
    expect(msg1).toContain('"passwrd"');
    expect(msg1).not.toMatch(/pw-secret-123|hunter2-secret/);
    const msg2 = await refusal('nats://tok-secret?en=x@127.0.0.1:1');
    expect(msg2).toMatch(/not shown/);
    expect(msg2).not.toMatch(/tok-secret|"en"/);
    const msg3 = await refusal('redis://:redis-secret-9@127.0.0.1:1/0?prefx=a');
    expect(msg3).not.toContain('redis-secret-9');
  });

  it('a misspelled scheme is refused naming the accepted ones', async () => {
    const message = await refusal('postgress://root@127.0.0.1:5432/test');
    for (const s of ['postgres:', 'sqlite:', 'file:', 'memory:', 'nats:', 'redis:', 'http:']) expect(message).toContain(s);
  });
});

describe('open(url): the options each backend documents are accepted (machine servers, fresh names)', () => {
  const PG = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test`;
  const REDIS = process.env.REVKIT_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
  const NATS = process.env.REVKIT_NATS_URL ?? 'nats://127.0.0.1:4222';

  it('postgres: revkit\'s options with pg\'s (sslmode, application_name, options, statement_timeout, connect_timeout) reach pg', async () => {
    const prefix = `${uniqueName('rk_opt').toLowerCase()}_`;
    const sep = PG.includes('?') ? '&' : '?';
    const s = (await open(`${PG}${sep}prefix=${prefix}&sslmode=disable&application_name=revkit-open-test&options=-c%20lock_timeout%3D4321&statement_timeout=60000&connect_timeout=5`)) as PostgresStore;
    try {
      await s.put('k', 1);
      const r = await s.pool.query(`SELECT current_setting('application_name') AS app, current_setting('lock_timeout') AS lt, current_setting('statement_timeout') AS st`);
      expect(r.rows[0]).toEqual({ app: 'revkit-open-test', lt: '4321ms', st: '1min' });
    } finally {
      await s.drop().catch(() => undefined);
      await s.close();
    }
  });

  it('redis: revkit\'s options with ioredis\'s family and connectionName', async () => {
    const prefix = uniqueName('rk_opt');
    const s = await open(`${REDIS}?prefix=${prefix}&family=4&connectionName=revkit-open-test&closeTimeoutMs=500`);
    try {
      await s.put('k', 1);
      expect((await s.get('k'))?.value).toBe(1);
    } finally {
      const { Redis } = await import('ioredis');
      const { dropRedisStore } = await import('../src/redis/index.js');
      const admin = new Redis(REDIS);
      await dropRedisStore(admin, { prefix }).finally(() => admin.disconnect());
      await s.close();
    }
  });

  it('nats: bucket, history, storage and timeoutMs', async () => {
    const bucket = uniqueName('rk_opt').replace(/[^A-Za-z0-9_-]/g, '_');
    const s = await open(`${NATS}?bucket=${bucket}&history=5&storage=memory&timeoutMs=3000&create=true`);
    try {
      await s.put('k', 1);
      expect((await s.get('k'))?.value).toBe(1);
    } finally {
      await s.close();
      const { connect } = await import('@nats-io/transport-node');
      const { jetstreamManager } = await import('@nats-io/jetstream');
      const nc = await connect({ servers: NATS.replace(/^nats:\/\//, '') });
      await (await jetstreamManager(nc)).streams.delete(`KV_${bucket}`).catch(() => undefined);
      await nc.close();
    }
  });
});
