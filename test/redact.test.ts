import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { open } from '../src/open.js';
import { REDACTED, redactText, redactUrl, urlSecrets } from '../src/core/redact.js';

// Every secret form of every backend URL: [URL, what it must print, the secrets it holds].
const FORMS: Array<[string, string, string[]]> = [
  ['memory:', 'memory:', []],
  ['sqlite:./data/revkit.db?synchronous=normal', 'sqlite:./data/revkit.db?synchronous=normal', []],
  ['sqlite:./data/x.db?password=s3cret-sqlite', 'sqlite:./data/x.db?password=****', ['s3cret-sqlite']],
  ['file:./state.json', 'file:./state.json', []],
  ['file://./dir@home/state.json', 'file://./dir@home/state.json', []],
  ['postgres://app:pg-pass-1@db.example:5432/test', 'postgres://app:****@db.example:5432/test', ['pg-pass-1']],
  ['postgresql://app:pg-pass-2@h1:5432,h2:5432/test?target_session_attrs=read-write', 'postgresql://app:****@h1:5432,h2:5432/test?target_session_attrs=read-write', ['pg-pass-2']],
  ['postgres://app@db/test?password=pg-pass-3&schema=rk', 'postgres://app@db/test?password=****&schema=rk', ['pg-pass-3']],
  ['postgres://app@db/test?sslpassword=pg-key-pass&sslkey=/k.pem', 'postgres://app@db/test?sslpassword=****&sslkey=****', ['pg-key-pass', '/k.pem']],
  ['postgres://u:p%40ss%2Fw0rd@db/test', 'postgres://u:****@db/test', ['p%40ss%2Fw0rd', 'p@ss/w0rd']],
  ['redis://:redis-pass-1@127.0.0.1:6379/0', 'redis://:****@127.0.0.1:6379/0', ['redis-pass-1']],
  ['redis://default:redis-pass-2@127.0.0.1:6379', 'redis://default:****@127.0.0.1:6379', ['redis-pass-2']],
  ['rediss://:redis-pass-3@cache.example:6380?prefix=app', 'rediss://:****@cache.example:6380?prefix=app', ['redis-pass-3']],
  ['redis://:pa/ss#w@rd@127.0.0.1:6379/0', 'redis://:****@127.0.0.1:6379/0', ['pa/ss#w@rd']],
  ['redis+sentinel://:redis-pass-4@h1:26379,h2:26379/mymaster?sentinelPassword=sentinel-pass&wait=1', 'redis+sentinel://:****@h1:26379,h2:26379/mymaster?sentinelPassword=****&wait=1', ['redis-pass-4', 'sentinel-pass']],
  ['redis+sentinel://h1:26379/mymaster', 'redis+sentinel://h1:26379/mymaster', []],
  ['nats://127.0.0.1:4222?token=nats-token-1&bucket=b', 'nats://127.0.0.1:4222?token=****&bucket=b', ['nats-token-1']],
  ['nats://127.0.0.1:4222?user=ops&pass=nats-pass-1', 'nats://127.0.0.1:4222?user=ops&pass=****', ['nats-pass-1']],
  ['nats://ops:nats-pass-2@h1:4222,h2:4222?bucket=b', 'nats://ops:****@h1:4222,h2:4222?bucket=b', ['nats-pass-2']],
  ['nats://nats-token-2@127.0.0.1:4222', 'nats://****@127.0.0.1:4222', ['nats-token-2']],
  ['nats://127.0.0.1:4222?token=a#b&bucket=c', 'nats://127.0.0.1:4222?token=****&bucket=c', ['a#b']],
  ['http://127.0.0.1:8787?token=http-token-1', 'http://127.0.0.1:8787?token=****', ['http-token-1']],
  ['https://user:http-pass@revkit.example/base?token=http-token-2', 'https://user:****@revkit.example/base?token=****', ['http-pass', 'http-token-2']],
  ['https://http-token-3@revkit.example/', 'https://****@revkit.example/', ['http-token-3']],
  ['HTTP://127.0.0.1:8787/?Token=http-token-4', 'HTTP://127.0.0.1:8787/?Token=****', ['http-token-4']],
  ['http://127.0.0.1:8787?access_token=t1&auth=t2&secret=t3&apikey=t4', 'http://127.0.0.1:8787?access_token=****&auth=****&secret=****&apikey=****', ['t1', 't2', 't3', 't4']],
  ['http://127.0.0.1:8787?token=', 'http://127.0.0.1:8787?token=', []],
  // A host list no parser takes (a space in it): the refusal quotes the URL, and the password must not be in it.
  ['nats://alice:S3CRETpw@127.0.0.1:4222,bad host:4222/', 'nats://alice:****@127.0.0.1:4222,bad host:4222/', ['S3CRETpw']],
  ['postgres://u:pw-9@h1:5432, h2:5432/db', 'postgres://u:****@h1:5432, h2:5432/db', ['pw-9']],
  // A password with an unencoded '?' (review a39: it was printed whole, the first '?' taken for the query).
  ['postgres://root:s3cr3tPW?x@127.0.0.1:5432/test', 'postgres://root:****@127.0.0.1:5432/test', ['s3cr3tPW?x']],
  ['postgres://root:pw?a=b@db.example/test?sslmode=disable&password=pg-pass-4', 'postgres://root:****@db.example/test?sslmode=disable&password=****', ['pw?a=b', 'pg-pass-4']],
  ['postgres://app:pw?sock@/test?host=/var/run/postgresql', 'postgres://app:****@/test?host=/var/run/postgresql', ['pw?sock']],
  ['redis://:p@ss?w/rd#x@127.0.0.1:6379/0?prefix=app', 'redis://:****@127.0.0.1:6379/0?prefix=app', ['p@ss?w/rd#x']],
  ['nats://ops:nats?pass@h1:4222,h2:4222?bucket=b', 'nats://ops:****@h1:4222,h2:4222?bucket=b', ['nats?pass']],
  ['nats://tok?en@[::1]:4222', 'nats://****@[::1]:4222', ['tok?en']],
  ['https://user:pw?q@revkit.example', 'https://user:****@revkit.example', ['pw?q']],
  // An '@' in a query value is not a userinfo's end.
  ['nats://127.0.0.1:4222?bucket=a@b&user=ops', 'nats://127.0.0.1:4222?bucket=a@b&user=ops', []],
  ['postgres://app:pg-pass-5@db/test?application_name=me@host&schema=x', 'postgres://app:****@db/test?application_name=me@host&schema=x', ['pg-pass-5']],
];

describe('redactUrl: every secret form of every backend URL shows as ****', () => {
  for (const [url, shown, secrets] of FORMS) {
    it(url, () => {
      expect(redactUrl(url)).toBe(shown);
      for (const s of secrets) expect(redactUrl(url)).not.toContain(s);
      for (const s of secrets) expect(urlSecrets(url)).toContain(s);
      if (secrets.length === 0) expect(urlSecrets(url)).toEqual([]);
    });
  }
});

describe('a password with an unencoded ? never shows in the CLI\'s error (dist/cli/main.js: build first)', () => {
  it('revkit get k --store postgres://root:s3cr3tPW?x@…: the error names the URL with ****', () => {
    const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
    const run = spawnSync(process.execPath, [cli, 'get', 'k', '--store', 'postgres://root:s3cr3tPW?x@127.0.0.1:5432/test'], { encoding: 'utf8', timeout: 30_000 });
    expect(run.status).not.toBe(0);
    expect(run.stderr).not.toContain('s3cr3tPW');
    expect(run.stdout).not.toContain('s3cr3tPW');
    expect(run.stderr).toContain('****');
  });
});

describe('redactText: messages that quote a URL or a secret', () => {
  it('hides URLs inside a message, quoted or not, and leaves the rest alone', () => {
    const text = 'malformed postgres URL "postgres://u:hunter2@h1:5432,h2/x" (Invalid URL); also redis://:pw@h and nats://h?token=t ok';
    expect(redactText(text)).toBe('malformed postgres URL "postgres://u:****@h1:5432,h2/x" (Invalid URL); also redis://:****@h and nats://h?token=**** ok');
  });

  it('keeps the punctuation after a URL', () => {
    expect(redactText('cannot open store postgres://u@h/db?password=pw-6: refused')).toBe('cannot open store postgres://u@h/db?password=****: refused');
    expect(redactText('(at nats://h:4222?token=t1), then redis://:pw@h:6379/0.')).toBe('(at nats://h:4222?token=****), then redis://:****@h:6379/0.');
  });

  it('hides given secrets wherever they appear, however a driver quoted them', () => {
    const url = 'postgres://u:p%40ss%2Fw0rd@db/test';
    const text = 'cannot open store postgres://u:p%40ss%2Fw0rd@db/test: the driver said password "p@ss/w0rd" was wrong';
    const out = redactText(text, urlSecrets(url));
    expect(out).not.toMatch(/p%40ss|p@ss/);
    expect(out).toBe(`cannot open store postgres://u:${REDACTED}@db/test: the driver said password "${REDACTED}" was wrong`);
  });

  it('hides a secret with a newline in it after the message was made one line', () => {
    expect(redactText('invalid header value "Bearer first-half second-half"', ['first-half\nsecond-half'])).toBe('invalid header value "Bearer ****"');
  });

  it('does not blank ordinary words for a very short secret (the URL itself is still redacted)', () => {
    expect(redactText('no store at redis://:ab@h: cannot reach', ['ab'])).toBe('no store at redis://:****@h: cannot reach');
  });
});

describe('library errors about a URL never quote its secrets, in the message or in a log of the error', () => {
  const refused = async (attempt: Promise<unknown>, secret: string) => {
    const err = await attempt.then(() => undefined, (e: unknown) => e);
    expect(err, 'the URL should be refused').toBeInstanceOf(Error);
    expect((err as Error).message).not.toContain(secret);
    expect((err as Error).message).toContain(REDACTED);
    expect(inspect(err, { depth: 5 })).not.toContain(secret);
  };

  it('open(): host lists it cannot parse (a bad port among several hosts; several hosts where only one is taken)', async () => {
    await refused(open('redis+sentinel://:sentinel-pw-1@h1:26379,h2:99999/mymaster?sentinelPassword=sentinel-pw-2'), 'sentinel-pw-');
    await refused(open('postgresql://app:pg-pw-1@h1:5432,h2:99999/test'), 'pg-pw-1');
    await refused(open('postgresql://app:pg-pw?3@h1:5432,h2:x/test'), 'pg-pw?3');
    await refused(open('redis://:redis-pw-1@h1:6379,h2:6379/0'), 'redis-pw-1');
    await refused(open('nats://ops:nats-pw-1@h1:4222,h2:99999'), 'nats-pw-1');
  });

  it('PostgresStore.fromUrl and NatsStore.fromUrl on a URL they cannot parse', async () => {
    const { PostgresStore } = await import('../src/postgres/index.js');
    const { NatsStore } = await import('../src/nats/index.js');
    await refused(PostgresStore.fromUrl('postgres://app:pg-pw-2@h1:5432,h2:0/test'), 'pg-pw-2');
    await refused(NatsStore.fromUrl('nats://ops:nats-pw-2@h1:4222,h2:99999?token=nats-token-9'), 'nats-');
  });

  it('HttpStore on a server URL it cannot parse', async () => {
    const { HttpStore } = await import('../src/server/index.js');
    await refused(HttpStore.fromUrl('http://[bad-host?token=http-token-7'), 'http-token-7');
    await refused(Promise.resolve().then(() => new HttpStore({ url: 'http://u:http-pw-8@[bad', token: 't' })), 'http-pw-8');
  });
});
