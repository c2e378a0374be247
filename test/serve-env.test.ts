import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/memory/index.js';
import { createServer } from '../src/server/index.js';
import { parseBoolean } from '../src/cli/serve.js';
import { captured, inProcess, serve, SPAWNS, type ServeOutcome } from './support/revkit-process.js';

const TOKEN = 'serve-env-admin-token-0123456789';
const BASE = ['--store', 'memory:', '--port', '0'];

function started(s: ServeOutcome): Extract<ServeOutcome, { started: true }> {
  if (!s.started) throw new Error(`serve exited with ${s.code} instead of starting: ${s.stderr}`);
  return s;
}

/** A refused start: exit 2, one line on stderr that says `what`, nothing on stdout. */
function expectRefused(s: ServeOutcome | { code: number; stdout: string; stderr: string }, ...what: RegExp[]): string {
  if ('started' in s && s.started) {
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

/**
 * The value tables run in this process, through the CLI's own main() (inProcess) or the very function
 * it reads a variable with; a spawned `revkit serve` per value cost ~0.45 s of CPU. Processes are
 * spawned, side by side, for a few representatives of each variable: that the CLI wires it in.
 * IN_PROCESS's store cannot be opened: a start wrongly let through ends in exit 1, not in a server.
 */
const IN_PROCESS = ['serve', '--store', 'nope:', '--port', '0'];

const put = (url: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/v1/kv/env/a`, { method: 'PUT', headers: { 'content-type': 'application/json', ...headers }, body: '1' });

describe('boolean REVKIT_* variables are read strictly (true/false, 1/0, yes/no, any case)', { timeout: SPAWNS }, () => {
  const TRUE = ['true', 'TRUE', '1', 'yes', 'Yes'];
  const FALSE = ['false', 'False', '0', 'no', 'NO'];
  const GARBAGE = ['', ' true', 'true\n', 'on', 'off', 'y', '2', 'enabled', 'nope'];
  const VARIABLES = ['REVKIT_NO_AUTH', 'REVKIT_REQUIRE_PRECONDITIONS'];

  it('parseBoolean (what serve reads both with): every true and false spelling, and anything else stops with exit 2 and one line naming the variable and what it accepts', async () => {
    for (const variable of VARIABLES) {
      for (const [values, want] of [[TRUE, true], [FALSE, false]] as const) {
        for (const v of values) expect(await captured(() => parseBoolean(variable, v)), `${variable}=${v}`).toEqual({ value: want, exitCode: undefined, stdout: '', stderr: '' });
      }
      for (const v of GARBAGE) {
        const r = await captured(() => parseBoolean(variable, v));
        const line = expectRefused({ code: r.exitCode as number, stdout: r.stdout, stderr: r.stderr }, new RegExp(variable), /true, false, 1, 0, yes, no/);
        expect(line, JSON.stringify(v)).toContain(v === '' ? 'empty' : JSON.stringify(v));
      }
    }
  });

  it('revkit serve (in this process): anything else in either variable stops the start with exit 2 and that line', async () => {
    for (const variable of VARIABLES) {
      for (const v of GARBAGE) {
        const line = expectRefused(await inProcess(IN_PROCESS, { [variable]: v }), new RegExp(variable), /true, false, 1, 0, yes, no/);
        expect(line, `${variable}=${JSON.stringify(v)}`).toContain(v === '' ? 'empty' : JSON.stringify(v));
      }
    }
  });

  it('REVKIT_NO_AUTH: a true value turns authentication off; a false one leaves it on (a PUT without a token is 401)', async () => {
    await Promise.all([
      (async () => {
        const s = started(await serve(BASE, { REVKIT_NO_AUTH: 'Yes' }));
        try {
          expect(s.stdout).toMatch(/authentication: OFF/);
          expect((await put(s.url)).status).toBe(201);
        } finally {
          await s.stop();
        }
      })(),
      (async () => {
        const s = started(await serve([...BASE, '--admin-token', TOKEN], { REVKIT_NO_AUTH: 'False' }));
        try {
          expect(s.stdout).not.toMatch(/authentication: OFF/);
          expect((await put(s.url)).status).toBe(401);
          expect((await put(s.url, { authorization: `Bearer ${TOKEN}` })).status).toBe(201);
        } finally {
          await s.stop();
        }
      })(),
    ]);
  });

  it('REVKIT_REQUIRE_PRECONDITIONS: a true value refuses unconditional writes with 428; a false one accepts them', async () => {
    await Promise.all([
      (async () => {
        const s = started(await serve([...BASE, '--admin-token', TOKEN], { REVKIT_REQUIRE_PRECONDITIONS: '1' }));
        try {
          expect((await put(s.url, { authorization: `Bearer ${TOKEN}` })).status).toBe(428);
          expect((await put(s.url, { authorization: `Bearer ${TOKEN}`, 'if-none-match': '*' })).status).toBe(201);
        } finally {
          await s.stop();
        }
      })(),
      (async () => {
        const s = started(await serve([...BASE, '--admin-token', TOKEN], { REVKIT_REQUIRE_PRECONDITIONS: 'no' }));
        try {
          expect((await put(s.url, { authorization: `Bearer ${TOKEN}` })).status).toBe(201);
        } finally {
          await s.stop();
        }
      })(),
    ]);
  });

  it('REVKIT_NO_AUTH, REVKIT_REQUIRE_PRECONDITIONS (a process each): anything else stops the start with exit 2 and one line', async () => {
    const [empty, on] = await Promise.all([serve(BASE, { REVKIT_NO_AUTH: '' }), serve(BASE, { REVKIT_REQUIRE_PRECONDITIONS: 'on' })]);
    expect(expectRefused(empty, /REVKIT_NO_AUTH/, /true, false, 1, 0, yes, no/)).toContain('it is empty');
    expect(expectRefused(on, /REVKIT_REQUIRE_PRECONDITIONS/, /true, false, 1, 0, yes, no/)).toContain('got "on"');
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
  const cases: Array<[string, string[]]> = [
    ['REVKIT_PORT', ['', 'abc', '80x', '-1', '1.5', '70000', ' 80', '0x50']],
    ['REVKIT_MAX_VALUE_BYTES', ['', 'abc', '0', '-5', '1e6', '10 ', '1.5']],
    ['REVKIT_MAX_BODY_BYTES', ['', 'abc', '0', '99999999999999999999', '1_000']],
  ];
  /** Exit 2 and one line naming the variable; never a start. */
  const expectNamed = (s: ServeOutcome | { code: number; stdout: string; stderr: string }, name: string, v: string) => {
    if ('started' in s && s.started) void s.stop();
    expect('started' in s && s.started, `${name}=${JSON.stringify(v)}`).toBe(false);
    expect(s.code, `${name}=${JSON.stringify(v)}: ${String(s.stderr)}`).toBe(2);
    expect(String(s.stderr).trim().split('\n'), String(s.stderr)).toHaveLength(1);
    expect(s.stderr).toContain(name);
  };

  it('REVKIT_PORT, REVKIT_MAX_VALUE_BYTES, REVKIT_MAX_BODY_BYTES (in this process): garbage stops the start with exit 2 naming the variable', async () => {
    for (const [name, values] of cases) {
      for (const v of values) {
        const env: Record<string, string> = { REVKIT_STORE: 'nope:', [name]: v };
        if (name !== 'REVKIT_PORT') env.REVKIT_PORT = '0';
        expectNamed(await inProcess(['serve'], env), name, v);
      }
    }
  });

  it('the same, a process each for one value of each variable', async () => {
    const picked: Array<[string, string]> = [['REVKIT_PORT', '80x'], ['REVKIT_MAX_VALUE_BYTES', '0'], ['REVKIT_MAX_BODY_BYTES', '1_000']];
    const runs = await Promise.all(picked.map(([name, v]) => serve([], { REVKIT_STORE: 'memory:', [name]: v, ...(name !== 'REVKIT_PORT' ? { REVKIT_PORT: '0' } : {}) })));
    for (const [i, [name, v]] of picked.entries()) expectNamed(runs[i] as ServeOutcome, name, v);
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
  const dir = mkdtempSync(join(tmpdir(), 'revkit-serve-env-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  /** A tokens file whose entry [1] has `token`. */
  const tokensFile = (i: number, token: string) => {
    const file = join(dir, `tokens-${i}.json`);
    writeFileSync(file, JSON.stringify([
      { name: 'good', token: 'a-good-token-0123456789', scopes: [{ prefix: '', access: 'read' }] },
      { name: 'bad', token, scopes: [{ prefix: '', access: 'write' }] },
    ]));
    return file;
  };
  // A refusal for each way a token comes in, one way per process: the whole table is run in this process.
  const adminFlag = (token: string, why: RegExp) => [[...BASE, '--admin-token', token], {}, [/--admin-token/, why, /visible ASCII/]] as const;
  const adminVariable = (token: string, why: RegExp) => [BASE, { REVKIT_ADMIN_TOKEN: token }, [/REVKIT_ADMIN_TOKEN/, why]] as const;
  const fileEntry = (token: string, why: RegExp, i: number) => [[...BASE, '--tokens', tokensFile(i, token)], {}, [/\[1\]\.token/, why]] as const;
  const inProcessArgs = (args: readonly string[]) => [...IN_PROCESS, ...args.slice(BASE.length)];

  it('--admin-token (in this process)', async () => {
    for (const [token, why] of BAD) {
      const [args, env, what] = adminFlag(token, why);
      const line = expectRefused(await inProcess(inProcessArgs(args), env), ...what);
      expect(line, JSON.stringify(token)).not.toContain(core(token));
    }
  });

  it('REVKIT_ADMIN_TOKEN (in this process)', async () => {
    for (const [token, why] of BAD) {
      const [args, env, what] = adminVariable(token, why);
      const line = expectRefused(await inProcess(inProcessArgs(args), env), ...what);
      expect(line, JSON.stringify(token)).not.toContain(core(token));
    }
  });

  it('a tokens-file entry, by its place in the file (in this process)', async () => {
    for (const [i, [token, why]] of BAD.entries()) {
      const [args, env, what] = fileEntry(token, why, i);
      const line = expectRefused(await inProcess(inProcessArgs(args), env), ...what);
      expect(line, JSON.stringify(token)).not.toContain(core(token));
    }
  });

  it('--admin-token, REVKIT_ADMIN_TOKEN, a tokens-file entry: a process each, one kind of bad token each', async () => {
    const picked = [adminFlag(...(BAD[2] as [string, RegExp])), adminVariable(...(BAD[7] as [string, RegExp])), fileEntry(...(BAD[5] as [string, RegExp]), 100)];
    const tokens = [BAD[2], BAD[7], BAD[5]].map((b) => (b as [string, RegExp])[0]);
    const runs = await Promise.all(picked.map(([args, env]) => serve([...args], { ...env })));
    for (const [i, [, , what]] of picked.entries()) {
      const line = expectRefused(runs[i] as ServeOutcome, ...what);
      expect(line, JSON.stringify(tokens[i])).not.toContain(core(tokens[i] as string));
    }
  });

  it('an empty REVKIT_ADMIN_TOKEN is refused, not taken as "generate one"', async () => {
    expectRefused(await serve(BASE, { REVKIT_ADMIN_TOKEN: '' }), /REVKIT_ADMIN_TOKEN/, /empty/);
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
