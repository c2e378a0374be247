import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open } from '../src/open.js';
import { inProcess } from './support/revkit-process.js';

// Spawns the built CLI: run `npm run build` first.
const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const TOKEN = 'cli-admin-token-0123456789';
const children = new Set<ChildProcess>();

interface Served {
  child: ChildProcess;
  url: string;
  token: string | undefined;
  lines: string[];
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts `revkit serve …` and waits for its start-up lines. */
function serve(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    for (const [k, v] of Object.entries(env)) if (v === '') delete childEnv[k];
    const child = spawn(process.execPath, [MAIN, 'serve', ...args], { cwd: cwd ?? process.cwd(), env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => (children.delete(child), r(code))));
    child.stdout.on('data', (d) => {
      out += d;
      if (!out.includes('try: curl')) return;
      const lines = out.trim().split('\n');
      const url = /at (http:\/\/\S+)/.exec(lines[0] ?? '')?.[1];
      if (!url) return reject(new Error(`no URL in ${out}`));
      resolve({ child, url, token: /admin token[^:]*: (\S+)$/m.exec(out)?.[1], lines, stderr: () => err, exited });
    });
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => reject(new Error(`serve exited with ${code} before starting: ${err}`)));
  });
}

/** Runs `revkit …` to completion. */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** Runs the `try: curl …` line exactly as printed; returns curl's output (status line first). */
function runPrintedCurl(s: Served): Promise<string> {
  const example = (s.lines.find((l) => l.startsWith('try: ')) as string).slice(5);
  expect(example).toMatch(/^curl /);
  return new Promise((resolve, reject) => execFile('sh', ['-c', `${example} -s`], { timeout: 30_000 }, (e, out, err) => (e ? reject(new Error(`${e.message}: ${err}`)) : resolve(out))));
}

describe('revkit serve: start-up', () => {
  it('with no configuration: binds 127.0.0.1, default store sqlite:./data/revkit.db, prints the URL, an admin token and a curl that works', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'revkit-cli-'));
    const s = await serve(['--port', '0'], { REVKIT_STORE: '', REVKIT_PORT: '' }, cwd);
    try {
      expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(s.lines[0]).toContain('sqlite:./data/revkit.db');
      expect(s.token).toMatch(/^[A-Za-z0-9_-]{24,}$/);
      expect(existsSync(join(cwd, 'data', 'revkit.db'))).toBe(true);
      expect((await fetch(`${s.url}/v1/kv/x`)).status).toBe(401);
      expect(await runPrintedCurl(s)).toMatch(/^HTTP\/1\.1 201/);
      const g = await fetch(`${s.url}/v1/kv/greeting`, { headers: { authorization: `Bearer ${s.token}` } });
      expect(await g.json()).toEqual({ hello: 'world' });
    } finally {
      s.child.kill('SIGTERM');
      expect(await s.exited).toBe(0);
    }
  });

  it('npm start\'s banner names the console (/ui/) and where the admin token is; a browser at / is sent to the console', async () => {
    // npm start is a build, then this command: its banner is this one's.
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8'));
    expect(pkg.scripts.start).toMatch(/&& node dist\/cli\/main\.js serve$/);
    const cwd = mkdtempSync(join(tmpdir(), 'revkit-cli-'));
    const s = await serve(['--port', '0'], { REVKIT_STORE: '', REVKIT_PORT: '', REVKIT_ADMIN_TOKEN: '', REVKIT_TOKENS_FILE: '' }, cwd);
    try {
      const text = s.lines.join('\n');
      expect(text).toContain(`admin token (kept in data/admin-token, readable only by you`);
      expect(s.lines).toContain(`console: ${s.url}/ui/ (sign in with the admin token)`);
      const page = await fetch(`${s.url}/ui/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      // The root: a redirect to the console for a browser, and the same for anyone else — not a bare 401.
      for (const [method, accept] of [['GET', 'text/html'], ['HEAD', 'text/html'], ['GET', 'application/json'], ['GET', '*/*']] as const) {
        const root = await fetch(`${s.url}/`, { method, redirect: 'manual', headers: { accept } });
        expect(root.status, `${method} / (${accept})`).toBe(302);
        expect(new URL(root.headers.get('location') as string, `${s.url}/`).href).toBe(`${s.url}/ui/`);
      }
      // Only GET and HEAD of exactly /: anything else is the API's as before.
      expect((await fetch(`${s.url}/`, { method: 'POST', redirect: 'manual' })).status).toBe(401);
      expect((await fetch(`${s.url}/v1`, { redirect: 'manual' })).status).toBe(401);
      const followed = await fetch(`${s.url}/`);
      expect(followed.url).toBe(`${s.url}/ui/`);
      expect(followed.status).toBe(200);
    } finally {
      s.child.kill('SIGTERM');
      expect(await s.exited).toBe(0);
    }
  });

  it('the banner says where a given admin token came from, and what the console signs in with', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'revkit-cli-')), 'tokens.json');
    writeFileSync(file, JSON.stringify([{ name: 'ops', token: TOKEN, scopes: [{ prefix: '', access: 'admin' }] }]));
    // Four independent starts, side by side.
    const check = async (args: string[], env: Record<string, string>, expectations: (s: Served) => void) => {
      const s = await serve(['--store', 'memory:', '--port', '0', ...args], env);
      try {
        expectations(s);
      } finally {
        s.child.kill('SIGTERM');
        await s.exited;
      }
    };
    await Promise.all([
      check([], { REVKIT_ADMIN_TOKEN: TOKEN, REVKIT_TOKENS_FILE: '' }, (given) => {
        expect(given.lines.join('\n')).toContain('authentication: bearer tokens (the admin token given in REVKIT_ADMIN_TOKEN)');
        expect(given.lines.join('\n')).not.toContain(TOKEN);
        expect(given.lines).toContain(`console: ${given.url}/ui/ (sign in with the admin token)`);
      }),
      check(['--admin-token', TOKEN], { REVKIT_ADMIN_TOKEN: '', REVKIT_TOKENS_FILE: '' }, (flag) => {
        expect(flag.lines.join('\n')).toContain('authentication: bearer tokens (the admin token given in --admin-token)');
      }),
      check(['--tokens', file], { REVKIT_ADMIN_TOKEN: '', REVKIT_TOKENS_FILE: '' }, (tokens) => {
        expect(tokens.lines).toContain(`console: ${tokens.url}/ui/ (sign in with a token from ${file})`);
      }),
      check(['--no-auth'], { REVKIT_ADMIN_TOKEN: '', REVKIT_TOKENS_FILE: '' }, (noAuth) => {
        expect(noAuth.lines).toContain(`console: ${noAuth.url}/ui/`);
      }),
    ]);
  });

  it('npm start twice in a row works the same: the generated admin token is kept in the data folder (0600) and the printed curl works again', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'revkit-cli-'));
    const starts: Array<{ token: string | undefined; lines: string[]; curl: string }> = [];
    for (let i = 0; i < 2; i++) {
      const s = await serve(['--port', '0'], { REVKIT_STORE: '', REVKIT_PORT: '' }, cwd);
      try {
        starts.push({ token: s.token, lines: s.lines, curl: await runPrintedCurl(s) });
      } finally {
        s.child.kill('SIGTERM');
        expect(await s.exited).toBe(0);
      }
    }
    const [first, second] = starts as [(typeof starts)[0], (typeof starts)[0]];
    expect(first.token).toMatch(/^[A-Za-z0-9_-]{24,}$/);
    expect(second.token).toBe(first.token);
    const file = join(cwd, 'data', 'admin-token');
    expect(readFileSync(file, 'utf8').trim()).toBe(first.token);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    for (const start of starts) expect(start.lines.join('\n')).toContain('admin token (kept in data/admin-token');
    expect(first.curl).toMatch(/^HTTP\/1\.1 201/);
    expect(second.curl).toMatch(/^HTTP\/1\.1 200/);
  });

  it('a store with no local data folder (memory:) gets a token for this run, and says so', async () => {
    const s = await serve(['--store', 'memory:', '--port', '0']);
    try {
      expect(s.lines.join('\n')).toMatch(/admin token \(generated for this run, as this store has no local data folder/);
      expect(await runPrintedCurl(s)).toMatch(/^HTTP\/1\.1 201/);
    } finally {
      s.child.kill('SIGTERM');
      await s.exited;
    }
  });

  it('under --require-preconditions the printed example still works on every start', async () => {
    const s = await serve(['--store', 'memory:', '--port', '0', '--require-preconditions']);
    try {
      expect(await runPrintedCurl(s)).toMatch(/^HTTP\/1\.1 200/);
      expect(await runPrintedCurl(s)).toMatch(/^HTTP\/1\.1 200/);
    } finally {
      s.child.kill('SIGTERM');
      await s.exited;
    }
  });

  it('a store that cannot be opened or reached: one clear line on stderr and exit 1', async () => {
    const stores = ['postgres://127.0.0.1:1/nothing', 'nope:', 'sqlite:/etc/hostname/cannot/x.db', 'sqlite:/proc/revkit/cannot.db'];
    const runs = await Promise.all(stores.map((store) => cli(['serve', '--store', store, '--port', '0'])));
    for (const [i, store] of stores.entries()) {
      const r = runs[i] as Awaited<ReturnType<typeof cli>>;
      expect(r.code, `${store}: ${r.stderr}`).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^revkit serve: cannot (open store|create the folder)/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('a tokens file that cannot be read (exit 1) or is read but wrong (a usage error, exit 2): one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'revkit-cli-'));
    writeFileSync(join(dir, 'bad.json'), '{ "not": "an array" }');
    const cases = [[['--tokens', join(dir, 'bad.json')], 2], [['--tokens', join(dir, 'missing.json')], 1]] as const;
    const runs = await Promise.all(cases.map(([args]) => cli(['serve', '--store', 'memory:', '--port', '0', ...args])));
    for (const [i, [args, code]] of cases.entries()) {
      const r = runs[i] as Awaited<ReturnType<typeof cli>>;
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  const USAGE_ERRORS = [['--port', 'abc'], ['--port', '70000'], ['--admin-token', 'short'], ['--host', '0.0.0.0', '--no-auth'], ['--no-auth', '--admin-token', TOKEN], ['--max-value-bytes', '0'], ['--bogus']];
  const expectUsageError = (r: { code: number; stdout: string; stderr: string }, args: string[]) => {
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
    expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    expect(r.stderr).toMatch(/^revkit( serve)?: /);
    expect(r.stderr).not.toMatch(/Usage:|Options:/);
    expect(r.stdout).toBe('');
  };

  it('usage errors (in this process, through the CLI\'s main()): exit 2 with one line on stderr, never the full help', async () => {
    // A store that cannot be opened: a usage error wrongly let through ends in exit 1 here, not in a server.
    for (const args of USAGE_ERRORS) expectUsageError(await inProcess(['serve', '--store', 'nope:', ...args]), args);
    expect((await inProcess(['serve', '--store', 'nope:'], { REVKIT_PORT: 'abc' })).code).toBe(2);
  });

  it('usage errors, a process each for one of each kind (a flag commander refuses, an unknown flag, one serve refuses before and one after loading the server): the same', async () => {
    const picked = [['--port', 'abc'], ['--bogus'], ['--admin-token', 'short'], ['--host', '0.0.0.0', '--no-auth']];
    const [env, ...runs] = await Promise.all([cli(['serve', '--store', 'memory:'], { REVKIT_PORT: 'abc' }), ...picked.map((args) => cli(['serve', '--store', 'memory:', ...args]))]);
    for (const [i, args] of picked.entries()) expectUsageError(runs[i] as Awaited<ReturnType<typeof cli>>, args);
    expect(env?.code, env?.stderr).toBe(2);
  });

  it('environment variables: REVKIT_STORE, REVKIT_PORT, REVKIT_ADMIN_TOKEN, REVKIT_TOKENS_FILE, REVKIT_REQUIRE_PRECONDITIONS', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'revkit-cli-'));
    const file = join(dir, 'tokens.json');
    writeFileSync(file, JSON.stringify([{ name: 'reader', token: 'reader-token-0123456789', scopes: [{ prefix: 'pub/', access: 'read' }] }]));
    const s = await serve([], { REVKIT_STORE: 'memory:', REVKIT_PORT: '0', REVKIT_ADMIN_TOKEN: TOKEN, REVKIT_TOKENS_FILE: file, REVKIT_REQUIRE_PRECONDITIONS: '1' });
    try {
      expect(s.token).toBeUndefined();
      expect(s.lines[0]).toContain('memory:');
      const put = (headers: Record<string, string>) => fetch(`${s.url}/v1/kv/pub/a`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...headers }, body: '1' });
      expect((await put({})).status).toBe(428);
      expect((await put({ 'if-none-match': '*' })).status).toBe(201);
      expect((await fetch(`${s.url}/v1/kv/pub/a`, { headers: { authorization: 'Bearer reader-token-0123456789' } })).status).toBe(200);
      expect((await fetch(`${s.url}/v1/kv/pub/a`, { method: 'DELETE', headers: { authorization: 'Bearer reader-token-0123456789' } })).status).toBe(403);
    } finally {
      s.child.kill('SIGTERM');
      await s.exited;
    }
  });

  it('--no-auth on loopback says so plainly', async () => {
    const s = await serve(['--store', 'memory:', '--port', '0', '--no-auth']);
    try {
      expect(s.lines.join('\n')).toMatch(/authentication: OFF/);
      expect((await fetch(`${s.url}/v1/kv/x`)).status).toBe(404);
    } finally {
      s.child.kill('SIGTERM');
      await s.exited;
    }
  });
});

describe('revkit serve: graceful shutdown on SIGTERM', () => {
  it('stops accepting, finishes the in-flight write, closes the store, exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'revkit-cli-'));
    const storeUrl = `sqlite:${join(dir, 'graceful.db')}`;
    const s = await serve(['--store', storeUrl, '--port', '0', '--admin-token', TOKEN]);
    const { port } = new URL(s.url);
    const body = JSON.stringify({ written: 'during shutdown', pad: 'x'.repeat(1000) });
    const socket = connect(Number(port), '127.0.0.1');
    let response = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => (response += d));
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    await new Promise<void>((r) => socket.on('connect', () => r()));
    // Expect: 100-continue: the server's "100 Continue" says it has read the headers and is handling the request.
    socket.write(`PUT /v1/kv/inflight HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`);
    await new Promise<void>((r) => {
      const check = () => (/^HTTP\/1\.1 100 /.test(response) ? (socket.off('data', check), r()) : undefined);
      socket.on('data', check);
      check();
    });
    socket.write(body.slice(0, 100));
    s.child.kill('SIGTERM');
    // No new connections once shutdown has begun: the server stops listening while the in-flight request is still
    // open (it has not sent its body's end yet). Retried until refused, so the verdict never depends on how soon.
    let refused = false;
    while (!refused && s.child.exitCode === null) {
      refused = await new Promise<boolean>((resolve) => {
        const c = connect(Number(port), '127.0.0.1');
        c.on('connect', () => (c.destroy(), resolve(false)));
        c.on('error', () => resolve(true));
      });
      if (!refused) await new Promise((r) => setTimeout(r, 20));
    }
    expect(refused).toBe(true);
    expect(s.child.exitCode, 'the server waits for the in-flight write before it exits').toBe(null);
    // the in-flight write completes
    socket.end(body.slice(100));
    await closed;
    expect(response).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201/);
    expect(await s.exited).toBe(0);
    expect(s.stderr()).toMatch(/SIGTERM/);
    const store = await open(storeUrl);
    try {
      expect((await store.get('inflight'))?.value).toMatchObject({ written: 'during shutdown' });
    } finally {
      await store.close();
    }
  });

  it('ends watch streams so shutdown is not held up by them', async () => {
    const s = await serve(['--store', 'memory:', '--port', '0', '--admin-token', TOKEN]);
    const res = await fetch(`${s.url}/v1/watch?prefix=`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    const reading = (async () => {
      for await (const _ of res.body as unknown as AsyncIterable<Uint8Array>) void _;
    })();
    s.child.kill('SIGTERM');
    // Held up by the stream, the server would never exit and the test would end at its timeout.
    expect(await s.exited).toBe(0);
    await reading.catch(() => undefined);
  });
});

describe('revkit get|put|rm|update|list|history|watch --server URL --token T', () => {
  let s: Served;
  beforeAll(async () => {
    s = await serve(['--store', 'memory:', '--port', '0', '--admin-token', TOKEN]);
  });
  afterAll(async () => {
    s.child.kill('SIGTERM');
    await s.exited;
  });
  const remote = () => ['--server', s.url, '--token', TOKEN];

  it('put, get, update, list, history, rm over HTTP; exit 3 on a failed precondition (412)', async () => {
    // The commands run in this process, through the CLI's own main(); a process each for the exit codes 3, 4 and 1.
    const run = (args: string[]) => inProcess([...args, ...remote()]);
    const put = await run(['put', 'cli/a', '{"n":1}']);
    expect(put.code, put.stderr).toBe(0);
    const entry = JSON.parse(put.stdout);
    expect(entry).toMatchObject({ key: 'cli/a', value: { n: 1 } });
    expect(JSON.parse((await run(['get', 'cli/a'])).stdout)).toEqual({ n: 1 });
    // None of these writes anything; the first two in processes of their own, side by side.
    const [stale, noToken] = await Promise.all([
      cli(['put', 'cli/a', '2', '--if-revision', String(entry.revision + 100), ...remote()]),
      cli(['get', 'cli/c', '--server', s.url]),
    ]);
    expect(stale.code, stale.stderr).toBe(3);
    expect(stale.stderr).toMatch(/ERR_CONFLICT/);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr.trim().split('\n')).toHaveLength(1);
    expect(noToken.stderr).toMatch(/401|ERR_UNAUTHORIZED/);
    const staleInProcess = await run(['put', 'cli/a', '2', '--if-revision', String(entry.revision + 100)]);
    expect(staleInProcess.code, staleInProcess.stderr).toBe(3);
    expect(staleInProcess.stderr).toMatch(/ERR_CONFLICT/);
    expect((await run(['put', 'cli/a', '2', '--if-absent'])).code).toBe(3);
    expect((await run(['put', 'cli/a', '{"n":5}', '--if-revision', String(entry.revision)])).code).toBe(0);
    expect((await run(['update', 'cli/c', '--incr', '2'])).code).toBe(0);
    expect(JSON.parse((await run(['update', 'cli/c', '--incr', '3'])).stdout)).toMatchObject({ value: 5 });
    const list = await run(['list', '--prefix', 'cli/']);
    expect(list.stdout.trim().split('\n').map((l) => JSON.parse(l).key)).toEqual(['cli/a', 'cli/c']);
    const hist = await run(['history', 'cli/a']);
    expect(hist.stdout.trim().split('\n')).toHaveLength(2);
    expect((await run(['rm', 'cli/a', '--if-revision', '1'])).code).toBe(3);
    expect((await run(['rm', 'cli/a'])).code).toBe(0);
    const gone = await cli(['get', 'cli/a', ...remote()]);
    expect(gone.code, gone.stderr).toBe(4);
    expect((await run(['get', 'cli/a'])).code).toBe(4);
  }, 120_000);

  it('not found and rm of a missing key: exit 4 over HTTP exactly as directly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'revkit-cli-'));
    const direct = ['--store', `sqlite:${join(dir, 'direct.db')}`];
    // Over HTTP and directly side by side, a process each for the exit-4 runs; the writes between them in this process.
    const vias = [remote(), direct];
    const missing = await Promise.all(vias.map((via) => Promise.all([cli(['get', 'nf/never', ...via]), cli(['rm', 'nf/never', ...via])])));
    for (const [missingGet, missingRm] of missing) {
      expect({ code: missingGet.code, stderr: missingGet.stderr }).toEqual({ code: 4, stderr: 'revkit: not found: "nf/never" (no live value)\n' });
      expect({ code: missingRm.code, stderr: missingRm.stderr, stdout: missingRm.stdout }).toEqual({ code: 4, stderr: 'revkit: not found: "nf/never" (nothing to delete)\n', stdout: '' });
    }
    for (const via of vias) {
      for (const args of [['put', 'nf/once', '1'], ['rm', 'nf/once']]) {
        const r = await inProcess([...args, ...via]);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      }
    }
    for (const again of await Promise.all(vias.map((via) => cli(['rm', 'nf/once', ...via])))) {
      expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 4, stderr: 'revkit: not found: "nf/once" (nothing to delete)\n' });
    }
  }, 120_000);

  it('watch prints changes as JSON lines', { timeout: 90_000 }, async () => {
    const child = spawn(process.execPath, [MAIN, 'watch', '--prefix', 'cw/', ...remote()], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    // The child's watch starts "from now" whenever it gets there (a busy machine may take seconds): write until
    // a change is printed — a liveness bound, not a timing verdict.
    const deadline = Date.now() + 60_000;
    while (!out.includes('\n') && Date.now() < deadline) {
      await cli(['put', 'cw/x', '"hello"', ...remote()]);
      for (let i = 0; i < 20 && !out.includes('\n'); i++) await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGTERM');
    expect(JSON.parse(out.split('\n')[0] as string)).toMatchObject({ type: 'put', key: 'cw/x', entry: { value: 'hello' } });
  });
});
