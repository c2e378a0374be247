import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';
import { BackendError, RevkitError, toHttpStatus, type RevkitErrorCode } from '../src/core/errors.js';
import { HTTP_ERROR_CODES } from '../src/server/problem.js';

/** One entry per RevkitErrorCode: the compiler says so when a code is added and not listed here. */
const EVERY_CODE: Record<RevkitErrorCode, true> = {
  ERR_CONFLICT: true, ERR_VALIDATION: true, ERR_RETRY_EXHAUSTED: true, ERR_UNSUPPORTED: true, ERR_TOO_LARGE: true, ERR_INVALID_KEY: true,
  ERR_INVALID_ARGUMENT: true, ERR_BACKEND: true, ERR_HISTORY_GONE: true, ERR_FENCED: true, ERR_OUT_OF_ORDER: true, ERR_SEQUENCE_REUSED: true,
  ERR_ABORTED: true, ERR_CLOSED: true, ERR_OUTCOME_UNKNOWN: true, ERR_UNAUTHORIZED: true, ERR_FORBIDDEN: true,
  ERR_LOCK_LOST: true, ERR_LOCK_TIMEOUT: true, ERR_DATA_LOST: true,
};

// Every ```ts block of the README is a program a user may paste into an empty
// ESM app with `strict` on: it must type-check against the built package
// (dist/, through `import … from 'revkit'`) and run to completion, on an empty
// store, against memory and SQLite. Run `npm run build` first.
const repo = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(join(repo, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1] as string);

const STORES = {
  sqlite: (source: string) => source, // as written: a sqlite: URL relative to the app folder
  memory: (source: string) => source.replace(/\bopen\((['"`])[^'"`]*\1/g, "open('memory:'"),
};

/** An empty app that has revkit (this repository, built) and the snippets' example dependencies installed. */
function emptyApp(): string {
  const app = mkdtempSync(join(tmpdir(), 'revkit-readme-'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'readme-app', private: true, type: 'module' }));
  mkdirSync(join(app, 'node_modules'));
  symlinkSync(repo, join(app, 'node_modules', 'revkit'), 'dir');
  symlinkSync(join(repo, 'node_modules', 'valibot'), join(app, 'node_modules', 'valibot'), 'dir');
  symlinkSync(join(repo, 'node_modules', '@nats-io'), join(app, 'node_modules', '@nats-io'), 'dir');
  return app;
}

const compilerOptions: ts.CompilerOptions = {
  strict: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  types: ['node'],
  typeRoots: [join(repo, 'node_modules', '@types')],
  skipLibCheck: true,
};

function compile(app: string, files: string[]): string[] {
  const program = ts.createProgram(files, { ...compilerOptions, outDir: join(app, 'out'), rootDir: app });
  const emitted = program.emit();
  return [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics].map((d) => {
    const where = d.file && d.start !== undefined ? `${d.file.fileName.slice(app.length + 1)}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : '';
    return `${where}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

describe('README code runs as written', () => {
  let app: string;
  let diagnostics: string[];
  beforeAll(() => {
    app = emptyApp();
    const files: string[] = [];
    blocks.forEach((source, i) => {
      for (const [store, adapt] of Object.entries(STORES)) {
        const file = join(app, `snippet-${i + 1}-${store}.mts`);
        writeFileSync(file, adapt(source));
        files.push(file);
      }
    });
    diagnostics = compile(app, files);
  }, 180_000);

  it('the README has TypeScript blocks, and none points at files a user does not have', () => {
    expect(blocks.length).toBeGreaterThan(0);
    expect(blocks.join('\n')).toMatch(/from 'revkit'/);
    expect(readme).not.toMatch(/DESIGN|\.\.\/shared|§/);
  });

  it('every block type-checks under strict against the built package', () => {
    expect(diagnostics).toEqual([]);
  });

  for (const [i] of blocks.entries()) {
    for (const store of Object.keys(STORES)) {
      it(`block ${i + 1} runs to completion on an empty ${store} store, with nothing on stderr`, () => {
        const cwd = mkdtempSync(join(app, `run-${i + 1}-${store}-`));
        const run = spawnSync(process.execPath, [join(app, 'out', `snippet-${i + 1}-${store}.mjs`)], { cwd, encoding: 'utf8', timeout: 50_000 });
        expect(run.stderr).toBe('');
        expect(run.status).toBe(0);
        // The exactly-once example publishes each order twice: it must charge once.
        if (/registerProducer/.test(blocks[i] as string)) expect(run.stdout).toMatch(/^balance 12$/m);
        if (store === 'sqlite' && /open\('sqlite:\.\/app\.db'\)/.test(blocks[i] as string)) expect(existsSync(join(cwd, 'app.db'))).toBe(true);
      }, 60_000);
    }
  }
});

describe('README and the library agree', () => {
  /** The rows of the error table: `Class` | `CODE` | statuses in the order they are described. */
  const rows = [...readme.matchAll(/^\| `(\w+Error)`[^|]*\| `(ERR_\w+)` \| ([^|]+)\|$/gm)].map((m) => ({
    name: m[1] as string,
    code: m[2] as RevkitErrorCode,
    statuses: [...(m[3] as string).matchAll(/\b[1-5]\d\d\b/g)].map((n) => Number(n[0])),
  }));
  const fake = (code: RevkitErrorCode, extra: object = {}) => ({ code, message: code, ...extra });

  it('the error table lists every error class a caller can receive, with its code, and no other', async () => {
    // Every RevkitError subclass exported by an entry point of the package (package.json "exports", read from src/).
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { exports: Record<string, string | { default: string }> };
    const exported = new Map<string, string>();
    for (const target of Object.values(pkg.exports)) {
      if (typeof target === 'string') continue; // ./package.json
      const mod = (await import(join(repo, target.default.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts')))) as Record<string, unknown>;
      for (const [name, value] of Object.entries(mod)) {
        if (typeof value === 'function' && value.prototype instanceof RevkitError) exported.set(name, (value as unknown as { code: string }).code);
      }
    }
    expect(exported.size).toBeGreaterThan(15);
    expect(exported.get('AbortedError')).toBe('ERR_ABORTED');
    expect(Object.fromEntries(rows.map((r) => [r.name, r.code]))).toEqual(Object.fromEntries(exported));
    // And every code a RevkitError can have.
    const codes: RevkitErrorCode[] = [...new Set(rows.map((r) => r.code))];
    expect(codes.sort()).toEqual(Object.keys(EVERY_CODE).sort());
  });

  it('the HTTP table lists every problem code of the server\'s own, with its status', () => {
    const httpRows = [...readme.matchAll(/^\| (\d{3}) \| `(ERR_\w+)` \| [^|]+\|$/gm)].map((m) => [m[2] as string, Number(m[1])] as const);
    expect(Object.fromEntries(httpRows)).toEqual(Object.fromEntries(Object.entries(HTTP_ERROR_CODES).map(([status, code]) => [code, Number(status)])));
  });

  it('each status in the table is what toHttpStatus() gives', () => {
    for (const { code, statuses } of rows) expect(toHttpStatus(fake(code)), code).toBe(statuses[0]);
    const status = (code: string) => rows.find((r) => r.code === code)?.statuses;
    expect(status('ERR_CONFLICT')).toEqual([412, 409]);
    expect(toHttpStatus(fake('ERR_CONFLICT', { atomic: true }))).toBe(409);
    expect(status('ERR_RETRY_EXHAUSTED')).toEqual([409, 503]);
    expect(toHttpStatus(fake('ERR_RETRY_EXHAUSTED', { lastError: new BackendError('down', { transient: true }) }))).toBe(503);
  });

  it('the server section documents SSE event ids as <revision>.<index>', () => {
    expect(readme).toMatch(/id: <revision>\.<index>/);
  });
});
