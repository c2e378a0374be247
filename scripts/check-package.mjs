#!/usr/bin/env node
// Packs revkit and installs the tarball into an empty app, as a user would:
// no npm warning (EBADENGINE…), LICENSE and docs in the tarball, `revkit` and
// `revkit/testing` import without vitest (and without the server's and CLI's
// dependencies on disk), and the types of `revkit/postgres` compile under
// strict with `pg` + `@types/pg`. Prints what the install costs.
// Needs the npm registry. Usage: node scripts/check-package.mjs
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'revkit-package-'));
const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
};
const run = (cmd, args, cwd) => {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
};

// Pack from a copy, so prepack's clean build never touches the working tree's dist/.
const src = join(work, 'src');
const tracked = execFileSync('git', ['ls-files', '-co', '--exclude-standard'], { cwd: repo, encoding: 'utf8' }).split('\n').filter(Boolean);
for (const file of tracked) {
  try {
    cpSync(join(repo, file), join(src, file));
  } catch {
    // listed but deleted in the working tree
  }
}
symlinkSync(join(repo, 'node_modules'), join(src, 'node_modules'), 'dir');
const pack = spawnSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: src, encoding: 'utf8' });
if (pack.status !== 0) {
  console.error(`npm pack failed:\n${pack.stdout}${pack.stderr}`);
  process.exit(1);
}
const packed = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('\n[') + 1))[0];
const files = packed.files.map((f) => f.path);
for (const f of ['LICENSE', 'README.md', 'docs/semantics.md', 'dist/index.js', 'dist/index.d.ts']) check(files.includes(f), `tarball has ${f}`);
check(!files.some((f) => f.startsWith('test/') || f.startsWith('src/') && !f.endsWith('README.md')), 'tarball has no tests or TypeScript sources');
const tarball = join(work, packed.filename);
// Doc comments ship in .d.ts files and show in editors: they should not cite a document users do not have.
const citing = files.filter((f) => f.endsWith('.d.ts') && /DESIGN §|\.\.\/shared\//.test(readFileSync(join(src, f), 'utf8')));
console.log(`note ${citing.length} shipped .d.ts file(s) cite the design document in doc comments${citing.length ? `: ${citing.join(', ')}` : ''}`);

// An empty app. Install scripts off: the SQLite binding's build is not what is measured here.
const app = join(work, 'app');
cpSync(join(repo, 'LICENSE'), join(app, 'LICENSE'));
writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
const install = run('npm', ['install', tarball, '--ignore-scripts', '--no-audit', '--no-fund'], app);
const warnings = install.out.split('\n').filter((l) => /npm warn/i.test(l) && !/install-scripts/.test(l));
check(install.code === 0, 'npm install <tarball> succeeds');
check(warnings.length === 0, `npm install prints no warning${warnings.length ? `:\n${warnings.join('\n')}` : ''}`);
const packages = JSON.parse(run('npm', ['ls', '--all', '--json'], app).out);
const names = new Set();
const walk = (deps) => Object.entries(deps ?? {}).forEach(([n, d]) => (names.add(n), walk(d.dependencies)));
walk(packages.dependencies);
const size = (dir) => readdirSync(dir, { withFileTypes: true }).reduce((t, e) => t + (e.isDirectory() ? size(join(dir, e.name)) : statSync(join(dir, e.name)).size), 0);
console.log(`     installed: ${names.size} packages, ${(size(join(app, 'node_modules')) / 1e6).toFixed(1)} MB (tarball ${(packed.size / 1e3).toFixed(0)} kB, unpacked ${(packed.unpackedSize / 1e6).toFixed(1)} MB)`);

// A library-only application: vitest absent, and the server's and CLI's dependencies moved away.
writeFileSync(join(app, 'lib.mjs'), `
import { open, SKIP } from 'revkit';
import * as testing from 'revkit/testing';
const store = await open('memory:');
const e = await store.update('n', (n) => (n ?? 0) + 1);
if (e.value !== 1 || typeof testing.CanaryStore !== 'function' || Object.keys(testing).length < 5 || typeof SKIP !== 'symbol') process.exit(1);
await store.close();
`);
check(run('node', ['-e', "import('vitest').then(() => process.exit(1), () => process.exit(0))"], app).code === 0, 'vitest is not installed in the app');
const moved = ['fastify', 'commander'].map((n) => [join(app, 'node_modules', n), join(app, `${n}.away`)]);
for (const [from, to] of moved) renameSync(from, to);
const lib = run('node', ['lib.mjs'], app);
for (const [from, to] of moved) renameSync(to, from);
check(lib.code === 0, `revkit and revkit/testing run without vitest, fastify or commander${lib.code ? `: ${lib.out}` : ''}`);

// The types of revkit/postgres, strict, with the packages the README names.
run('npm', ['install', 'pg', '@types/pg', '--ignore-scripts', '--no-audit', '--no-fund'], app);
writeFileSync(join(app, 'pg.mts'), "import { PostgresStore } from 'revkit/postgres';\nimport type { Store } from 'revkit';\nexport const make = (url: string): Promise<Store> => PostgresStore.fromUrl(url);\n");
writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, skipLibCheck: false, types: [] }, files: ['pg.mts'] }));
const tsc = run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], app);
check(tsc.code === 0, `revkit/postgres types compile under strict with pg + @types/pg${tsc.code ? `:\n${tsc.out}` : ''}`);

console.log(failures.length ? `${failures.length} check(s) failed (work folder ${work})` : `all checks passed (work folder ${work})`);
process.exit(failures.length ? 1 : 0);
