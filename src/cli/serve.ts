import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Option, type Command } from 'commander';
import { InvalidArgumentError, RevkitError, type Store } from '../core/index.js';
import { redactText, redactUrl, urlSecrets } from '../core/redact.js';
import { open } from '../open.js';
import { loadTokensFile, MIN_TOKEN_LENGTH, TOKEN_RULE, tokenProblem, type TokenSpec } from '../server/auth.js';
import { parsePort, parsePositive } from './args.js';
import { DEFAULT_STORE, storeUrl } from './default-store.js';

export const DEFAULT_STORE_URL = DEFAULT_STORE;
export const DEFAULT_PORT = 8787;
const BOOLEAN_HELP = '; its variable: true/false, 1/0 or yes/no';

interface ServeOptions {
  store?: string;
  host: string;
  port: number;
  adminToken?: string;
  tokens?: string;
  requirePreconditions?: boolean;
  auth: boolean;
  maxValueBytes?: number;
  maxBodyBytes?: number;
  allowedHost?: string[];
  /** Where --admin-token's value came from, for the banner. */
  adminTokenFrom?: string;
}

/** `revkit serve`: the HTTP server (docs/semantics.md, "HTTP server"). */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the revkit HTTP server over a store: JSON API with ETag / If-Match, SSE watch, bearer tokens')
    .addOption(new Option('--store <url>', `store URL (default ${DEFAULT_STORE_URL})`).env('REVKIT_STORE'))
    .addOption(new Option('--host <host>', 'address to bind').env('REVKIT_HOST').default('127.0.0.1'))
    .addOption(new Option('--port <n>', 'port to listen on (0: any free port)').env('REVKIT_PORT').default(DEFAULT_PORT).argParser(parsePort))
    // Checked in the action, not by an argParser: commander quotes a refused value, and this one is a secret.
    .addOption(new Option('--admin-token <token>', `bearer token with admin access to every key (≥ ${MIN_TOKEN_LENGTH} visible ASCII characters)`).env('REVKIT_ADMIN_TOKEN'))
    .addOption(new Option('--tokens <file>', 'JSON tokens file: [{ "name", "token", "scopes": [{ "prefix", "access": "read|write|admin" }] }]').env('REVKIT_TOKENS_FILE'))
    .addOption(new Option('--require-preconditions', `refuse unconditional writes with 428${BOOLEAN_HELP}`).env('REVKIT_REQUIRE_PRECONDITIONS'))
    .addOption(new Option('--no-auth', `run without authentication (only allowed on a loopback address)${BOOLEAN_HELP}`).env('REVKIT_NO_AUTH'))
    .addOption(new Option('--max-value-bytes <n>', 'largest value').env('REVKIT_MAX_VALUE_BYTES').argParser(parsePositive))
    .addOption(new Option('--max-body-bytes <n>', 'largest request body').env('REVKIT_MAX_BODY_BYTES').argParser(parsePositive))
    .addOption(new Option('--allowed-host <name>', 'a Host name (no port) to answer besides loopback names; repeat or separate with commas. Any other Host gets 421 (DNS rebinding guard)').env('REVKIT_ALLOWED_HOSTS').argParser(parseHosts))
    .action(async (opts: ServeOptions, cmd: Command) => {
      // The main program may declare --store globally and take it first.
      const store = storeUrl(opts.store || (cmd.optsWithGlobals() as { store?: string }).store || DEFAULT_STORE_URL);
      // commander's .env() on a flag takes any value, "false" included, as set; it still decides that the command line wins.
      const fromEnv = (attribute: string, variable: string) => (cmd.getOptionValueSource(attribute) === 'env' ? parseBoolean(variable, process.env[variable]) : undefined);
      const requirePreconditions = fromEnv('requirePreconditions', 'REVKIT_REQUIRE_PRECONDITIONS') ?? opts.requirePreconditions === true;
      const auth = !(fromEnv('auth', 'REVKIT_NO_AUTH') ?? opts.auth === false);
      const adminTokenFrom = cmd.getOptionValueSource('adminToken') === 'env' ? 'REVKIT_ADMIN_TOKEN' : '--admin-token';
      if (opts.adminToken !== undefined) {
        const problem = tokenProblem(opts.adminToken);
        if (problem !== undefined) fail(`${adminTokenFrom}: the token ${problem}; an admin token is ${TOKEN_RULE}`, 2);
      }
      await serve({ ...opts, store, requirePreconditions, auth, adminTokenFrom });
    });
}

/** Host names as a Host header carries them: letters, digits, dots, dashes; or an IPv6 literal. */
function parseHosts(value: string, previous: string[] = []): string[] {
  const hosts = value.split(',').map((h) => h.trim()).filter((h) => h !== '');
  for (const h of hosts) {
    if (!/^(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+\.?$|^\[?[0-9A-Fa-f:.]+\]?$/.test(h)) fail(`--allowed-host: ${JSON.stringify(h)} is not a host name (give the name without scheme, port or path)`, 2);
  }
  return [...previous, ...hosts];
}

const BOOLEANS = new Map([['true', true], ['1', true], ['yes', true], ['false', false], ['0', false], ['no', false]]);

/**
 * A boolean environment variable, strictly: true/false, 1/0, yes/no in any
 * case. Anything else, the empty string included (it says neither), stops
 * the start with exit 2 rather than guessing which way a security switch goes.
 */
export function parseBoolean(variable: string, value = ''): boolean {
  const b = BOOLEANS.get(value.toLowerCase());
  if (b !== undefined) return b;
  const got = value === '' ? 'it is empty' : `got ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return fail(`${variable} must be true or false (accepted: true, false, 1, 0, yes, no, in any case; unset it for the default); ${got}`, 2);
}

/** One line on stderr; exit 1 (something could not be opened or read) or 2 (a usage error). */
function fail(message: string, exitCode: 1 | 2 = 1): never {
  process.stderr.write(`revkit serve: ${message}\n`);
  process.exit(exitCode);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

async function serve(opts: ServeOptions & { store: string }): Promise<void> {
  // Loaded here, not at the top: every other CLI command starts without fastify.
  const { createServer, DEFAULT_LIMITS } = await import('../server/app.js');
  const port = opts.port;
  const maxValueBytes = opts.maxValueBytes ?? DEFAULT_LIMITS.maxValueBytes;
  const maxBodyBytes = opts.maxBodyBytes ?? Math.max(DEFAULT_LIMITS.maxBodyBytes, maxValueBytes + 64 * 1024);

  // --- who may call
  const authOff = !opts.auth;
  const secrets = urlSecrets(opts.store);
  const shownStore = redactUrl(opts.store);
  if (authOff) {
    if (!isLoopback(opts.host)) fail(`--no-auth is only allowed on a loopback address, not ${opts.host}`, 2);
    if (opts.tokens || opts.adminToken) fail('--no-auth conflicts with --tokens and --admin-token', 2);
  }
  let tokens: TokenSpec[] | null = null;
  if (opts.tokens) {
    try {
      tokens = await loadTokensFile(opts.tokens);
    } catch (err) {
      // The file read but wrong is a usage error, like a bad flag; a file that cannot be read is not.
      fail((err as Error).message, InvalidArgumentError.is(err) ? 2 : 1);
    }
  }
  if (tokens && opts.adminToken !== undefined) {
    // The admin token would be taken for that entry and get its scopes only, not admin on every key.
    const same = tokens.find((t) => t.token === opts.adminToken);
    if (same) fail(`${opts.adminTokenFrom ?? '--admin-token'}: the admin token is also the token of ${JSON.stringify(same.name)} in ${opts.tokens}; give the admin token a token of its own`, 2);
  }
  const needsGenerated = !authOff && !tokens && opts.adminToken === undefined;

  // --- the store: one clear line and exit 1 when it cannot be opened or reached
  const dataDir = dataFolderOf(opts.store);
  if (dataDir !== undefined) {
    try {
      ensureDir(dataDir);
    } catch (err) {
      fail(redactText(`cannot create the folder for ${shownStore}: ${(err as Error).message}`, secrets));
    }
  }
  let store: Store;
  try {
    store = await open(opts.store, { maxValueBytes });
    await store.get('__revkit/readyz');
  } catch (err) {
    fail(redactText(`cannot open store ${shownStore}: ${describe(err)}`, secrets));
  }

  // A generated admin token is kept beside the data, so a restart keeps the same one.
  let generated: { token: string; keptIn?: string } | undefined;
  if (needsGenerated) {
    try {
      generated = dataDir === undefined ? { token: newToken() } : keptToken(join(dataDir, ADMIN_TOKEN_FILE));
    } catch (err) {
      await store.close().catch(() => undefined);
      fail(`cannot keep the admin token in ${join(dataDir as string, ADMIN_TOKEN_FILE)}: ${(err as Error).message}`);
    }
  }
  const adminToken = opts.adminToken ?? generated?.token;
  const requirePreconditions = opts.requirePreconditions === true;

  const server = await createServer({
    store,
    closeStore: true,
    storeHasServerLimits: true,
    tokens: authOff ? null : (tokens ?? []),
    ...(adminToken !== undefined && !authOff ? { adminToken } : {}),
    requirePreconditions,
    limits: { maxValueBytes, maxBodyBytes },
    ...(opts.allowedHost !== undefined ? { allowedHosts: opts.allowedHost } : {}),
  });
  let url: string;
  try {
    url = await server.listen({ host: opts.host, port });
  } catch (err) {
    await store.close().catch(() => undefined);
    fail(redactText(`cannot listen on ${opts.host}:${port}: ${describe(err)}`, secrets));
  }

  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`revkit serving ${shownStore} at ${url}`);
  if (authOff) out('authentication: OFF (--no-auth); anyone who can reach this loopback address can read and write every key');
  else if (generated?.keptIn) out(`admin token (kept in ${generated.keptIn}, readable only by you; choose your own with --admin-token or --tokens): ${generated.token}`);
  else if (generated) out(`admin token (generated for this run, as this store has no local data folder; choose your own with --admin-token or --tokens): ${generated.token}`);
  else out(`authentication: bearer tokens (${tokens ? `${tokens.length} from ${opts.tokens}` : ''}${tokens && opts.adminToken ? ' + ' : ''}${opts.adminToken ? `the admin token given in ${opts.adminTokenFrom}` : ''})`);
  // Where a browser goes, and what it signs in with.
  const signIn = authOff ? '' : adminToken !== undefined ? ' (sign in with the admin token)' : ` (sign in with a token from ${opts.tokens})`;
  out(`console: ${url}/ui/${signIn}`);
  const auth = authOff ? '' : ` -H 'Authorization: Bearer ${generated?.token ?? '<token>'}'`;
  // Works on every start: PUT creates then overwrites; PATCH (a server-side update loop) also passes --require-preconditions.
  const example = requirePreconditions
    ? `curl -i -X PATCH${auth} -H 'Content-Type: application/merge-patch+json' --data '{"hello":"world"}' ${url}/v1/kv/greeting`
    : `curl -i -X PUT${auth} -H 'Content-Type: application/json' --data '{"hello":"world"}' ${url}/v1/kv/greeting`;
  out(`try: ${example}`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      process.stderr.write(`revkit serve: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    process.stderr.write(`revkit serve: ${signal}: finishing in-flight requests\n`);
    server.close().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`revkit serve: error while closing: ${redactText(describe(err), secrets)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

export const ADMIN_TOKEN_FILE = 'admin-token';

const newToken = () => randomBytes(24).toString('base64url');

/** The folder of a store kept in local files (sqlite:, file:), where the admin token is kept too. */
function dataFolderOf(storeUrl: string): string | undefined {
  const path = /^(?:sqlite|file):(?!:memory:)(?:\/\/)?(.+?)(?:\?.*)?$/.exec(storeUrl)?.[1];
  return path === undefined ? undefined : dirname(path);
}

/** Reads the kept token, or creates it readable by its owner only (0600). */
function keptToken(path: string): { token: string; keptIn: string } {
  if (existsSync(path)) {
    const token = readFileSync(path, 'utf8').trim();
    if (!/^[A-Za-z0-9_-]{24,}$/.test(token)) throw new Error('the file does not hold a token; delete it to have a new one generated');
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    return { token, keptIn: path };
  }
  const token = newToken();
  writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return { token, keptIn: path };
}

function describe(err: unknown): string {
  if (RevkitError.is(err)) {
    const cause = (err as { cause?: unknown }).cause;
    const extra = cause instanceof Error && !err.message.includes(cause.message) ? ` (${cause.message})` : '';
    return `${err.message}${extra}`.replace(/\s+/g, ' ');
  }
  return (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ');
}

/** mkdir -p, one level at a time (node's recursive mkdir can spin forever on /proc-like paths). */
function ensureDir(dir: string): void {
  if (existsSync(dir)) return;
  const parent = dirname(dir);
  if (parent !== dir) ensureDir(parent);
  mkdirSync(dir);
}
