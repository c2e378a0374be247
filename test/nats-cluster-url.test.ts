/**
 * NATS URLs naming a cluster (several seed servers) and the bucket's replicas
 * (issue 25). Parsing is checked without a server; the replicas checks use
 * the machine's nats-server (REVKIT_NATS_PORT, default 4222), one server, so
 * its buckets have one replica.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RevkitError } from '../src/core/index.js';
import { NatsStore } from '../src/nats/index.js';
import { versionAtLeast } from '../src/nats/features.js';
import { parseNatsUrl } from '../src/nats/url.js';
import { NATS_PORT, natsBucketsThisFileMakes } from './support/nats-buckets.js';

const made = natsBucketsThisFileMakes();

describe('nats:// URLs with several servers', () => {
  it('reads every seed, with the default port, credentials and a token', () => {
    expect(parseNatsUrl('nats://127.0.0.1:4222,127.0.0.1:4223,h3/?bucket=b&replicas=3')).toMatchObject({
      servers: ['127.0.0.1:4222', '127.0.0.1:4223', 'h3:4222'],
    });
    const p = parseNatsUrl('nats://ops:p%40ss@h1:1,[::1]:2?bucket=b');
    expect(p).toMatchObject({ servers: ['h1:1', '[::1]:2'], user: 'ops', pass: 'p@ss' });
    expect(p.query.get('bucket')).toBe('b');
    expect(parseNatsUrl('nats://tok3n@h1:4222,h2:4222')).toMatchObject({ token: 'tok3n', servers: ['h1:4222', 'h2:4222'] });
    expect(parseNatsUrl('nats://').servers).toEqual(['127.0.0.1:4222']);
  });

  it.each([
    ['nats://h1:4222,,h2:4222', /empty host/],
    ['nats://h1:99999', /out of range/],
    ['nats://h1:4222/db', /path/],
    ['nats://h1 h2', /not host or host:port/],
    ['nats://ops:secret-pw@h1:4222#x', /fragment/],
  ])('refuses %s with InvalidArgumentError, never quoting a password', (url, why) => {
    let err: unknown;
    try {
      parseNatsUrl(url);
    } catch (e) {
      err = e;
    }
    expect(RevkitError.is(err) && err.code).toBe('ERR_INVALID_ARGUMENT');
    expect(String((err as Error).message)).toMatch(why);
    expect(String((err as Error).message)).not.toContain('secret-pw');
  });

  it.each([
    'nats://alice:S3CRETpw@127.0.0.1:4222,bad host:4222/',
    'nats://alice:pa/S3CRETpw@127.0.0.1:4222',
    'nats://alice:pa?S3CRETpw@127.0.0.1:4222/?bucket=x',
    'nats://alice:pa#S3CRETpw@127.0.0.1:4222/?bucket=x',
    'nats://alice:pa%ZZS3CRETpw@127.0.0.1:4222/?bucket=x',
    'nats://12:S3CRETpw@h1:4222/x@y',
    'nats://127.0.0.1:99999/?bucket=x&token=S3CRETpw',
    'nats://[::1:4222/?pass=S3CRETpw',
  ])('a malformed URL\'s message shows **** for the credentials, never a part of them: %s', (url) => {
    const err = (() => {
      try {
        parseNatsUrl(url);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(RevkitError.is(err) && err.code).toBe('ERR_INVALID_ARGUMENT');
    const message = String((err as Error).message);
    expect(message).not.toMatch(/S3CRET|pa\/|pa\?/);
    expect(message).toContain('****');
  });

  it('a URL with several servers opens a store (the unreachable seed is skipped)', async () => {
    const bucket = `curl_${randomBytes(5).toString('hex')}`;
    made.push(bucket);
    const store = await NatsStore.fromUrl(`nats://127.0.0.1:1,127.0.0.1:${NATS_PORT}/?bucket=${bucket}&timeoutMs=3000`);
    try {
      await store.put('k', 1);
      expect((await store.get('k'))?.value).toBe(1);
      const state = await store.replication();
      expect(state.serving).toContain(String(NATS_PORT));
      expect(state.durability).toBe(store.capabilities.durability);
      expect(state.note).toMatch(/replicas=1/);
      expect(state.failovers).toBe(0);
      await store.acceptLoss();
    } finally {
      await store.close();
    }
  });
});

describe('bucket replicas', () => {
  it.each(['0', '6', '1.5'])('replicas=%s is refused', async (r) => {
    await expect(NatsStore.fromUrl(`nats://127.0.0.1:${NATS_PORT}/?bucket=never_made&replicas=${r}`)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });

  it('an existing bucket with another replica count than the one asked for is refused, naming both', async () => {
    const bucket = `crep_${randomBytes(5).toString('hex')}`;
    made.push(bucket);
    await (await NatsStore.fromUrl(`nats://127.0.0.1:${NATS_PORT}/?bucket=${bucket}`)).close();
    const err = await NatsStore.fromUrl(`nats://127.0.0.1:${NATS_PORT}/?bucket=${bucket}&replicas=3`).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    expect(String((err as Error).message)).toMatch(/replicas=1.*replicas=3/);
    // Without the option it is used as it is.
    const store = await NatsStore.fromUrl(`nats://127.0.0.1:${NATS_PORT}/?bucket=${bucket}`);
    expect(store.capabilities.durability).not.toBe('replicated');
    await store.close();
  });

  it('knows which server versions keep compare-and-swap on replicated streams', () => {
    expect(versionAtLeast('2.9.10', 2, 9, 21)).toBe(false);
    expect(versionAtLeast('2.9.21', 2, 9, 21)).toBe(true);
    expect(versionAtLeast('v2.10.0', 2, 9, 21)).toBe(true);
    expect(versionAtLeast('2.8.99', 2, 9, 21)).toBe(false);
  });
});
