// What the package says about itself, and what `npm pack` puts in the tarball.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from '../src/server/openapi.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string; description: string };

/** How each backend is named in prose; a backend added to open() without a name here fails the first test. */
const NAMES: Record<string, RegExp> = {
  memory: /\bmemory\b/i,
  sqlite: /\bSQLite\b/,
  file: /\bJSON file\b/,
  postgres: /\bPostgreSQL\b/,
  nats: /\bNATS JetStream KV\b/,
  redis: /\bRedis\b/,
};

describe('the package and OpenAPI descriptions', () => {
  // The backends open() knows: each loads ./<name>/index.js (./http is the HTTP client, a revkit server as a store).
  const backends = [...readFileSync(join(repo, 'src', 'open.ts'), 'utf8').matchAll(/import\('\.\/(\w+)\/index\.js'\)/g)].map((m) => m[1] as string).filter((b) => b !== 'http');

  it('name every backend', () => {
    expect(backends.length).toBeGreaterThanOrEqual(6);
    for (const b of backends) {
      expect(NAMES[b], `a name for the ${b} backend`).toBeDefined();
      expect(pkg.description, `package.json description: ${b}`).toMatch(NAMES[b] as RegExp);
      expect(openApiDocument.info.description, `OpenAPI info.description: ${b}`).toMatch(NAMES[b] as RegExp);
    }
  });

  it('the OpenAPI document carries the package version', () => {
    expect(openApiDocument.info.version).toBe(pkg.version);
  });
});

describe('npm pack', () => {
  it('the tarball carries the built library and its docs, and no screenshots, source maps or sourceMappingURL comments', () => {
    // --ignore-scripts: prepack would clear dist/ under every other test; this lists what dist/ holds now (npm test builds it first).
    const run = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    const [packed] = JSON.parse(run.stdout) as Array<{ files: Array<{ path: string }> }>;
    const files = (packed as { files: Array<{ path: string }> }).files.map((f) => f.path);
    for (const f of ['README.md', 'LICENSE', 'docs/semantics.md', 'docs/exactly-once.md', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/ui/index.html']) expect(files, f).toContain(f);
    expect(files.filter((f) => /\.(png|jpe?g|gif|webp|svg)$/i.test(f))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    // Without its map and the TypeScript it points at, a sourceMappingURL comment only makes tools look for them.
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.filter((f) => /\.(m?js|d\.ts)$/.test(f) && /^\/\/# sourceMappingURL=/m.test(readFileSync(join(repo, f), 'utf8')))).toEqual([]);
  }, 90_000);
});
