import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropPostgresStore } from '../src/postgres/index.js';
import { dropRedisStore } from '../src/redis/index.js';
import { uniqueName } from './helpers.js';
import { cli, serve, SPAWNS, type ServeOutcome } from './support/revkit-process.js';

// DESIGN §6: secrets in a URL never appear in a banner, log line or error message; they show as ****.
const PG_USER = process.env.PGUSER || 'root';
const UPSTREAM_TOKEN = 'upstream-admin-token-0123456789';

/** Every line a run printed must be free of `secret`, and the URL it quotes must show ****. */
function expectHidden(output: string, secret: string, what: string): void {
  expect(output, `${what} printed the secret:\n${output}`).not.toContain(secret);
  expect(output, `${what}: no **** in\n${output}`).toContain('****');
}

let upstream: Extract<ServeOutcome, { started: true }>;
beforeAll(async () => {
  const s = await serve(['--store', 'memory:', '--port', '0', '--admin-token', UPSTREAM_TOKEN]);
  if (!s.started) throw new Error(`upstream server did not start: ${s.stderr}`);
  upstream = s;
});
afterAll(() => upstream?.stop());

describe('revkit serve: the start banner shows store URLs with their secrets as ****', { timeout: SPAWNS }, () => {
  // Stores that open with these URLs on the loopback servers (no auth there: the secret is only carried).
  // Each names a store of this run's own (bucket, prefix), deleted afterwards: the shared servers keep
  // nothing (opening nats://… without ?bucket= would create the default bucket's stream KV_revkit).
  const name = uniqueName('srvredact').toLowerCase();
  const forms = (): Array<[string, string]> => [
    [`redis://:redis-banner-pw-1@127.0.0.1:6379/0?prefix=${name}`, 'redis-banner-pw-1'],
    [`redis://default:redis-banner-pw-2@127.0.0.1:6379/0?prefix=${name}`, 'redis-banner-pw-2'],
    [`nats://127.0.0.1:4222?token=nats-banner-token-1&bucket=${name}`, 'nats-banner-token-1'],
    [`nats://ops:nats-banner-pw-1@127.0.0.1:4222?bucket=${name}`, 'nats-banner-pw-1'],
    [`postgres://${PG_USER}:pg-banner-pw-1@127.0.0.1:5432/test?prefix=${name}_`, 'pg-banner-pw-1'],
    [`postgresql://${PG_USER}@127.0.0.1:5432/test?password=pg-banner-pw-2&prefix=${name}_`, 'pg-banner-pw-2'],
    [`${upstream.url}?token=${UPSTREAM_TOKEN}`, UPSTREAM_TOKEN],
  ];

  afterAll(async () => {
    const nc = await connect({ servers: '127.0.0.1:4222' });
    try {
      await (await jetstreamManager(nc)).streams.delete(`KV_${name}`).catch(() => undefined);
    } finally {
      await nc.close();
    }
    const pool = new pg.Pool({ connectionString: `postgres://${PG_USER}@127.0.0.1:5432/test`, max: 1 });
    try {
      await dropPostgresStore(pool, { prefix: `${name}_` });
    } finally {
      await pool.end();
    }
    const redis = new Redis('redis://127.0.0.1:6379/0', { lazyConnect: true, maxRetriesPerRequest: 2 });
    try {
      await dropRedisStore(redis, { prefix: name });
    } finally {
      redis.disconnect();
    }
  });

  it('every form, and the server then works', async () => {
    // The forms side by side: each start is independent of the others.
    await Promise.all(forms().map(async ([url, secret]) => {
      const s = await serve(['--store', url, '--port', '0', '--no-auth']);
      if (!s.started) throw new Error(`serve --store ${url.replace(secret, '****')} did not start: ${s.stderr.split(secret).join('****')}`);
      try {
        expectHidden(s.stdout, secret, url.replace(secret, '****'));
        expect(s.stdout.split('\n')[0]).toBe(`revkit serving ${url.replace(secret, '****')} at ${s.url}`);
        expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
      } finally {
        await s.stop();
        expect(s.stderr()).not.toContain(secret);
      }
    }));
  });
});

// Stores that cannot be opened: unreachable, malformed, or an unsupported scheme.
const FAILING: Array<[string, string]> = [
  ['redis://:redis-err-pw-1@127.0.0.1:1/0', 'redis-err-pw-1'],
  ['rediss://:redis-err-pw-2@127.0.0.1:1/0', 'redis-err-pw-2'],
  ['redis://:redis-err-pw-3@h1:6379,h2:6379/0', 'redis-err-pw-3'],
  ['redis+sentinel://:sentinel-err-pw-1@h1:26379,h2:26379/mymaster', 'sentinel-err-pw-1'],
  ['redis+sentinel://h1:26379/mymaster?sentinelPassword=sentinel-err-pw-2', 'sentinel-err-pw-2'],
  ['nats://127.0.0.1:1?token=nats-err-token-1&timeoutMs=1000', 'nats-err-token-1'],
  ['nats://127.0.0.1:1?user=ops&pass=nats-err-pw-1&timeoutMs=1000', 'nats-err-pw-1'],
  ['nats://nats-err-token-2@127.0.0.1:1?timeoutMs=1000', 'nats-err-token-2'],
  ['nats://ops:nats-err-pw-2@h1:4222,h2:4222', 'nats-err-pw-2'],
  ['postgres://app:pg-err-pw-1@127.0.0.1:1/test', 'pg-err-pw-1'],
  ['postgres://app@127.0.0.1:1/test?password=pg-err-pw-2', 'pg-err-pw-2'],
  ['postgresql://app:pg-err-pw-3@h1:5432,h2:5432/test', 'pg-err-pw-3'],
  ['http://127.0.0.1:1?token=http-err-token-1', 'http-err-token-1'],
  ['https://user:http-err-pw-1@127.0.0.1:1/', 'http-err-pw-1'],
];

describe('revkit serve: a store that cannot be opened is named with its secrets as ****', { timeout: SPAWNS }, () => {
  it('every form: exit 1, one line, no secret', async () => {
    const runs = await Promise.all(FAILING.map(async ([url, secret]) => [url, secret, await serve(['--store', url, '--port', '0'])] as const));
    for (const [url, secret, s] of runs) {
      if (s.started) {
        await s.stop();
        throw new Error(`serve started on ${url.replace(secret, '****')}`);
      }
      expect(s.code, s.stderr).toBe(1);
      expect(s.stderr.trim().split('\n')).toHaveLength(1);
      expect(s.stderr).toMatch(/^revkit serve: cannot open store \S+: /);
      expectHidden(s.stderr, secret, url.replace(secret, '****'));
    }
  });
});

describe('revkit CLI: errors never print a store URL secret or the --token', { timeout: SPAWNS }, () => {
  it('get --store URL, every form', async () => {
    const runs = await Promise.all(FAILING.map(async ([url, secret]) => [url, secret, await cli(['get', 'k', '--store', url])] as const));
    for (const [url, secret, r] of runs) {
      expect(r.code, r.stderr.split(secret).join('****')).not.toBe(0);
      expect(r.stderr).toMatch(/^revkit: \S/);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr, `${url.replace(secret, '****')}: ${r.stderr.split(secret).join('****')}`).not.toContain(secret);
    }
  });

  it('the same through REVKIT_STORE', async () => {
    const runs = await Promise.all(FAILING.map(async ([url, secret]) => [url, secret, await cli(['get', 'k'], { REVKIT_STORE: url })] as const));
    for (const [url, secret, r] of runs) {
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/^revkit: \S/);
      expect(r.stderr, url.replace(secret, '****')).not.toContain(secret);
    }
  });

  it('--server URL --token T: a token the server refuses, one it cannot carry, one in the URL', async () => {
    const [wrong, broken, inUrl] = await Promise.all([
      cli(['get', 'k', '--server', upstream.url, '--token', 'wrong-token-0123456789abcdef']),
      cli(['get', 'k', '--server', upstream.url, '--token', 'broken-token\nsecond-half-0123']),
      cli(['get', 'k', '--server', `http://127.0.0.1:1/?token=url-token-0123456789`]),
    ]);
    expect(wrong.code, wrong.stderr).toBe(1);
    expect(wrong.stderr).toMatch(/ERR_UNAUTHORIZED/);
    expect(wrong.stderr).not.toContain('wrong-token-0123456789abcdef');
    // A newline cannot go in a header (fetch's error would quote the header): a usage error, without the token.
    expect(broken.code, broken.stderr).toBe(2);
    expect(broken.stderr).toMatch(/^revkit: --token .*control character/);
    expect(broken.stderr).not.toMatch(/broken-token|second-half-0123/);
    expect(inUrl.code).not.toBe(0);
    expect(inUrl.stderr).not.toContain('url-token-0123456789');
  });
});

describe('revkit check and revkit bench: the store line shows secrets as ****', { timeout: SPAWNS }, () => {
  const url = () => `${upstream.url}?token=${UPSTREAM_TOKEN}`;

  it('check, as text and as JSON', async () => {
    const [text, json] = await Promise.all([
      cli(['check', '--store', url(), '--processes', '1', '--clients', '2', '--ops', '5']),
      cli(['check', '--store', url(), '--processes', '1', '--clients', '2', '--ops', '5', '--json']),
    ]);
    expect(text.code, text.stderr).toBe(0);
    expectHidden(text.stdout, UPSTREAM_TOKEN, 'check');
    expect(text.stdout).toContain(`store        ${upstream.url}?token=****`);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout).store).toBe(`${upstream.url}?token=****`);
    expect(json.stdout + json.stderr + text.stderr).not.toContain(UPSTREAM_TOKEN);
  });

  it('bench, as text and as JSON', async () => {
    const [text, json] = await Promise.all([
      cli(['bench', '--store', url(), '--writers', '2', '--increments', '20']),
      cli(['bench', '--store', url(), '--writers', '2', '--increments', '20', '--json']),
    ]);
    expect(text.code, text.stderr).toBe(0);
    expectHidden(text.stdout, UPSTREAM_TOKEN, 'bench');
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout).store).toBe(`${upstream.url}?token=****`);
    expect(json.stdout + json.stderr + text.stderr).not.toContain(UPSTREAM_TOKEN);
  });
});
