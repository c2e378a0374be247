/**
 * redis+sentinel:// URLs and the replication options (wait, waitTimeoutMs,
 * lossDetection): parsed exactly, anything malformed or unknown refused with
 * InvalidArgumentError, never a password in a message. No server needed
 * (the unreachable-sentinels case connects to a closed loopback port).
 */
import { describe, expect, it } from 'vitest';
import { BackendError, InvalidArgumentError } from '../src/core/index.js';
import { open } from '../src/open.js';
import { RedisStore } from '../src/redis/index.js';
import { parseRedisUrl, redisSettings } from '../src/redis/options.js';
import { parseSentinelUrl } from '../src/redis/sentinel-url.js';

function refused(fn: () => unknown, pattern: RegExp, secret?: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(InvalidArgumentError.is(err), String(err)).toBe(true);
  expect((err as Error).message).toMatch(pattern);
  if (secret) expect((err as Error).message).not.toContain(secret);
}

describe('redis+sentinel URLs', () => {
  it('sentinels, master name, credentials, db and revkit options', () => {
    const { client, options } = parseSentinelUrl(
      'redis+sentinel://app:p%40ss@10.0.0.1:26380,sentinel-b,[::1]:5000/my%2Dmaster?db=3&wait=1&waitTimeoutMs=500&prefix=orders&sentinelPassword=s3&lossDetection=on',
    );
    expect(client).toEqual({
      sentinels: [{ host: '10.0.0.1', port: 26380 }, { host: 'sentinel-b', port: 26379 }, { host: '::1', port: 5000 }],
      name: 'my-master', username: 'app', password: 'p@ss', db: 3, sentinelPassword: 's3',
    });
    expect(options).toEqual({ wait: 1, waitTimeoutMs: 500, prefix: 'orders', lossDetection: true });
    expect(parseSentinelUrl('redis+sentinel://:pw@h/m').client).toMatchObject({ password: 'pw', sentinels: [{ host: 'h', port: 26379 }] });
    expect(parseSentinelUrl('redis+sentinel://h/m?lossDetection=off').options).toEqual({ lossDetection: false });
  });

  it('refuses what it cannot read, naming it, without the password', () => {
    const secret = 'hunter2-secret';
    refused(() => parseSentinelUrl(`redis+sentinel://u:${secret}@h1:26379,h2:26379`), /malformed redis\+sentinel URL .*master-name/, secret);
    refused(() => parseSentinelUrl(`redis+sentinel://u:${secret}@h1:99999/m`), /"h1:99999" is not a host or host:port/, secret);
    refused(() => parseSentinelUrl(`redis+sentinel://u:${secret}@h1:26379,/m`), /"" is not a host/, secret);
    refused(() => parseSentinelUrl(`redis+sentinel://u:${secret}@h1/m?prefx=a`), /prefx/, secret);
    refused(() => parseSentinelUrl(`redis+sentinel://u:${secret}@h1/m?db=x`), /db must be a non-negative integer/, secret);
    refused(() => parseSentinelUrl(`redis+sentinel://u:${secret}@h1/m?wait=one`), /wait must be a non-negative integer/, secret);
    refused(() => parseSentinelUrl(`redis+sentinel://u:${secret}@h1/m?lossDetection=maybe`), /lossDetection must be on or off/, secret);
    refused(() => parseSentinelUrl(`redis+sentinel://u:${secret}@h1/m?wait=1&wait=2`), /wait is given more than once/, secret);
    refused(() => parseSentinelUrl('redis+sentinel://u:%E0%A4%A@h1/m'), /password is not valid percent-encoding/);
    // sentinelPassword is a secret too.
    refused(() => parseSentinelUrl(`redis+sentinel://h1/m?sentinelPassword=${secret}&bogus=1`), /bogus/, secret);
  });

  it('wait, waitTimeoutMs and lossDetection on plain redis:// URLs; wait is checked', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6379?wait=2&waitTimeoutMs=100&lossDetection=on').options).toEqual({ wait: 2, waitTimeoutMs: 100, lossDetection: true });
    refused(() => parseRedisUrl('redis://127.0.0.1:6379?wait=-1'), /wait must be a non-negative integer/);
    refused(() => parseRedisUrl('redis://127.0.0.1:6379?waitTimeoutMs=1e3'), /waitTimeoutMs must be a non-negative integer/);
    expect(() => redisSettings({ wait: 65 })).toThrow(/wait must be an integer from 0 to 64/);
    expect(() => redisSettings({ waitTimeoutMs: 0 })).toThrow(/waitTimeoutMs must be a positive integer/);
    expect(redisSettings({})).toMatchObject({ wait: 0, waitTimeoutMs: 2000 });
  });

  it('open() routes redis+sentinel:// to the Redis backend; sentinels that none answers fail the open at once, without the passwords', async () => {
    const started = Date.now();
    for (const attempt of [
      () => open('redis+sentinel://app:master-pw-1@127.0.0.1:1,127.0.0.1:2/mymaster?sentinelPassword=sentinel-pw-1'),
      () => RedisStore.fromUrl('redis+sentinel://app:master-pw-1@127.0.0.1:1/mymaster?sentinelPassword=sentinel-pw-1&wait=1'),
    ]) {
      const err = await attempt().then(() => undefined, (e: unknown) => e);
      expect(BackendError.is(err), String(err)).toBe(true);
      expect((err as Error).message).toMatch(/All sentinels are unreachable.*redis\+sentinel:\/\/app@127\.0\.0\.1:1/);
      expect((err as Error).message).not.toMatch(/master-pw-1|sentinel-pw-1/);
    }
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});
