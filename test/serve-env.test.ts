import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/memory/index.js';
import { createServer } from '../src/server/index.js';
import { serve, SPAWNS, type ServeOutcome } from './support/revkit-process.js';

const TOKEN = 'serve-env-admin-token-0123456789';
const BASE = ['--store', 'memory:', '--port', '0'];

function started(s: ServeOutcome): Extract<ServeOutcome, { started: true }> {
  if (!s.started) throw new Error(`serve exited with ${s.code} instead of starting: ${s.stderr}`);
  return s;
}

/** A refused start: exit 2, one line on stderr that says `what`, nothing on stdout. */
function expectRefused(s: ServeOutcome, ...what: RegExp[]): string {
  if (s.started) {
    void s.stop();
    throw new Error(`serve started instead of refusing: ${s.stdout}`);
  }
  expect(s.code, s.stderr).toBe(2);
  const lines = s.stderr.trim().split('\n');
  expect(lines, s.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^revkit serve: /);
  for (const re of what) expect(lines[0]).toMatch(re);
  expect(s.stdout).toBe('');
  return lines[0] as string;
}

const put = (url: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/v1/kv/env/a`, { method: 'PUT', headers: { 'content-type': 'application/json', ...headers }, body: '1' });

describe('boolean REVKIT_* variables are read strictly (true/false, 1/0, yes/no, any case)', { timeout: SPAWNS }, () => {
  const TRUE = ['true', 'TRUE', '1', 'yes', 'Yes'];
  const FALSE = ['false', 'False', '0', 'no', 'NO'];
  const GARBAGE = ['', ' true', 'true\n', 'on', 'off', 'y', '2', 'enabled', 'nope'];

  it('REVKIT_NO_AUTH: a true value turns authentication off', async () => {
    for (const v of TRUE) {
      const s = started(await serve(BASE, { REVKIT_NO_AUTH: v }));
      try {
        expect(s.stdout, v).toMatch(/authentication: OFF/);
        expect((await put(s.url)).status, v).toBe(201);
      } finally {
        await s.stop();
      }
    }
  });

  it('REVKIT_NO_AUTH: a false value leaves authentication on (a PUT without a token is 401)', async () => {
    for (const v of FALSE) {
      const s = started(await serve([...BASE, '--admin-token', TOKEN], { REVKIT_NO_AUTH: v }));
      try {
        expect(s.stdout, v).not.toMatch(/authentication: OFF/);
        expect((await put(s.url)).status, v).toBe(401);
        expect((await put(s.url, { authorization: `Bearer ${TOKEN}` })).status, v).toBe(201);
      } finally {
        await s.stop();
      }
    }
  });

  it('REVKIT_NO_AUTH: anything else stops the start with exit 2 and one line naming the variable and what it accepts', async () => {
    for (const v of GARBAGE) {
      const line = expectRefused(await serve(BASE, { REVKIT_NO_AUTH: v }), /REVKIT_NO_AUTH/, /true, false, 1, 0, yes, no/);
      expect(line, JSON.stringify(v)).toContain(v === '' ? 'empty' : JSON.stringify(v));
    }
  });

  it('REVKIT_REQUIRE_PRECONDITIONS: a true value refuses unconditional writes with 428', async () => {
    for (const v of TRUE) {
      const s = started(await serve([...BASE, '--admin-token', TOKEN], { REVKIT_REQUIRE_PRECONDITIONS: v }));
      try {
        expect((await put(s.url, { authorization: `Bearer ${TOKEN}` })).status, v).toBe(428);
        expect((await put(s.url, { authorization: `Bearer ${TOKEN}`, 'if-none-match': '*' })).status, v).toBe(201);
      } finally {
        await s.stop();
      }
    }
  });

  it('REVKIT_REQUIRE_PRECONDITIONS: a false value accepts unconditional writes', async () => {
    for (const v of FALSE) {
      const s = started(await serve([...BASE, '--admin-token', TOKEN], { REVKIT_REQUIRE_PRECONDITIONS: v }));
      try {
        expect((await put(s.url, { authorization: `Bearer ${TOKEN}` })).status, v).toBe(201);
      } finally {
        await s.stop();
      }
    }
  });

  it('REVKIT_REQUIRE_PRECONDITIONS: anything else stops the start with exit 2', async () => {
    for (const v of GARBAGE) expectRefused(await serve(BASE, { REVKIT_REQUIRE_PRECONDITIONS: v }), /REVKIT_REQUIRE_PRECONDITIONS/, /true, false, 1, 0, yes, no/);
  });

  it('the command line wins over the variable, as for every option', async () => {
    const s = started(await serve([...BASE, '--no-auth', '--require-preconditions'], { REVKIT_NO_AUTH: 'false', REVKIT_REQUIRE_PRECONDITIONS: 'false' }));
    try {
      expect(s.stdout).toMatch(/authentication: OFF/);
      expect((await put(s.url)).status).toBe(428);
    } finally {
      await s.stop();
    }
  });
});

describe('numeric REVKIT_* variables are validated strictly', { timeout: SPAWNS }, () => {
  it('REVKIT_PORT, REVKIT_MAX_VALUE_BYTES, REVKIT_MAX_BODY_BYTES: garbage stops the start with exit 2 naming the variable', async () => {
    const cases: Array<[string, string[]]> = [
      ['REVKIT_PORT', ['', 'abc', '80x', '-1', '1.5', '70000', ' 80', '0x50']],
      ['REVKIT_MAX_VALUE_BYTES', ['', 'abc', '0', '-5', '1e6', '10 ', '1.5']],
      ['REVKIT_MAX_BODY_BYTES', ['', 'abc', '0', '99999999999999999999', '1_000']],
    ];
    for (const [name, values] of cases) {
      for (const v of values) {
        const env: Record<string, string> = { REVKIT_STORE: 'memory:', [name]: v };
        if (name !== 'REVKIT_PORT') env.REVKIT_PORT = '0';
        const s = await serve([], env);
        if (s.started) await s.stop();
        expect(s.started, `${name}=${JSON.stringify(v)}`).toBe(false);
        if (s.started) continue;
        expect(s.code, `${name}=${JSON.stringify(v)}: ${s.stderr}`).toBe(2);
        expect(s.stderr.trim().split('\n'), s.stderr).toHaveLength(1);
        expect(s.stderr).toContain(name);
      }
    }
  });

  it('good numeric values are taken', async () => {
    const s = started(await serve([], { REVKIT_STORE: 'memory:', REVKIT_PORT: '0', REVKIT_MAX_VALUE_BYTES: '1024', REVKIT_MAX_BODY_BYTES: '4096', REVKIT_NO_AUTH: 'true' }));
    try {
      const big = await fetch(`${s.url}/v1/kv/big`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify('x'.repeat(2000)) });
      expect(big.status).toBe(413);
    } finally {
      await s.stop();
    }
  });
});

describe('tokens that no Authorization: Bearer header can carry are refused at start (exit 2), never printed', { timeout: SPAWNS }, () => {
  // Each one would be accepted and then never match: authenticate() reads visible ASCII only.
  const BAD: Array<[string, RegExp]> = [
    [' leading-space-admin-token-1234', /whitespace around it/],
    ['trailing-space-admin-token-1234 ', /whitespace around it/],
    ['trailing-newline-admin-token-12\n', /whitespace around it/],
    ['inner space admin token 0123456', /whitespace/],
    ['inner\ttab-admin-token-012345678', /control character/],
    ['control\x01char-admin-token-0123', /control character/],
    ['del\x7fchar-admin-token-012345678', /control character/],
    ['non-ascii-tökén-admin-0123456789', /outside visible ASCII/],
    ['nbsp\u00a0admin-token-0123456789', /whitespace/],
    ['short', /has 5 characters/],
  ];
  const core = (token: string) => token.trim().slice(0, 12);

  it('--admin-token', async () => {
    for (const [token, why] of BAD) {
      const line = expectRefused(await serve([...BASE, '--admin-token', token]), /--admin-token/, why, /visible ASCII/);
      expect(line, JSON.stringify(token)).not.toContain(core(token));
    }
  });

  it('REVKIT_ADMIN_TOKEN', async () => {
    for (const [token, why] of BAD) {
      const line = expectRefused(await serve(BASE, { REVKIT_ADMIN_TOKEN: token }), /REVKIT_ADMIN_TOKEN/, why);
      expect(line, JSON.stringify(token)).not.toContain(core(token));
    }
  });

  it('an empty REVKIT_ADMIN_TOKEN is refused, not taken as "generate one"', async () => {
    expectRefused(await serve(BASE, { REVKIT_ADMIN_TOKEN: '' }), /REVKIT_ADMIN_TOKEN/, /empty/);
  });

  it('a tokens-file entry, by its place in the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'revkit-serve-env-'));
    for (const [i, [token, why]] of BAD.entries()) {
      const file = join(dir, `tokens-${i}.json`);
      writeFileSync(file, JSON.stringify([
        { name: 'good', token: 'a-good-token-0123456789', scopes: [{ prefix: '', access: 'read' }] },
        { name: 'bad', token, scopes: [{ prefix: '', access: 'write' }] },
      ]));
      const line = expectRefused(await serve([...BASE, '--tokens', file]), /\[1\]\.token/, why);
      expect(line, JSON.stringify(token)).not.toContain(core(token));
    }
  });

  it('every visible ASCII character is allowed, and such a token works', async () => {
    const token = '!"#$%&\'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~';
    const s = started(await serve([...BASE, '--admin-token', token]));
    try {
      expect((await put(s.url, { authorization: `Bearer ${token}` })).status).toBe(201);
    } finally {
      await s.stop();
    }
  });
});

describe('an admin token that is also a tokens-file entry is refused at start (it would get that entry\'s scopes only)', { timeout: SPAWNS }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'revkit-serve-env-dup-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const SHARED = 'shared-token-between-admin-and-file-0123';
  const file = join(dir, 'tokens.json');
  writeFileSync(file, JSON.stringify([
    { name: 'viewer', token: 'a-viewer-token-0123456789', scopes: [{ prefix: 'public/', access: 'read' }] },
    { name: 'reader', token: SHARED, scopes: [{ prefix: 'app/', access: 'read' }] },
  ]));

  it('--admin-token equal to an entry: exit 2, one line naming the entry, no token printed', async () => {
    const line = expectRefused(await serve([...BASE, '--tokens', file, '--admin-token', SHARED]), /--admin-token/, /"reader"/, /token of its own/);
    expect(line).not.toContain(SHARED.slice(0, 12));
  });

  it('REVKIT_ADMIN_TOKEN equal to an entry: the same, naming the variable', async () => {
    const line = expectRefused(await serve([...BASE, '--tokens', file], { REVKIT_ADMIN_TOKEN: SHARED }), /REVKIT_ADMIN_TOKEN/, /"reader"/);
    expect(line).not.toContain(SHARED.slice(0, 12));
  });

  it('an admin token of its own next to the same file starts, and is admin on every key', async () => {
    const s = started(await serve([...BASE, '--tokens', file, '--admin-token', TOKEN]));
    try {
      expect((await put(s.url, { authorization: `Bearer ${TOKEN}` })).status).toBe(201);
      expect((await put(s.url, { authorization: `Bearer ${SHARED}` })).status).toBe(403);
    } finally {
      await s.stop();
    }
  });

  it('createServer() refuses the same token twice across adminToken and tokens (InvalidArgumentError naming both, not the token)', async () => {
    const err = await createServer({ store: new MemoryStore(), adminToken: SHARED, tokens: [{ name: 'reader', token: SHARED, scopes: [{ prefix: 'app/', access: 'read' }] }] })
      .then(() => null, (e: unknown) => e as Error & { code: string });
    expect(err?.code).toBe('ERR_INVALID_ARGUMENT');
    expect(err?.message).toMatch(/"reader" and "admin" are the same token/);
    expect(err?.message).not.toContain(SHARED);
  });
});
